"""GRPO at research scale (issue 26): batched rollouts equal one-at-a-time ones, LoRA trains only the
adapters and ``--model`` runs on them, stalling pays less than answering, rollout metrics reach
``metrics.jsonl``, and what runs is what was trained. On CPU with the tiny offline Qwen2.5-VL."""

from __future__ import annotations

import json

import pytest

from geolocate.agent.state import Budget
from geolocate.evals.datasets import load_osv5m
from geolocate.policy_training.labels import build_dataset
from geolocate.policy_training.rewards import renormalised, reward_functions
from geolocate.policy_training.tiny import build
from tests.conftest import tiny_grpo_config

torch = pytest.importorskip("torch")
TOOLS = ["clues", "gazetteer"]  # no OCR: these tests are about the trainer, not the photo


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("tiny") / "ckpt")


def _cfg(tmp_path, ckpt, **kw):
    return tiny_grpo_config(tmp_path, ckpt, TOOLS, max_turns=2, max_tool_calls=2, max_turn_tokens=12, **kw)


def _data(osv_dir, n=2):
    return build_dataset(
        load_osv5m(osv_dir).subset(n), TOOLS, Budget(max_turns=2, max_tool_calls=2), 56 * 56 * 4
    )


def test_batched_rollout_equals_one_at_a_time_with_greedy_decoding(osv_dir, tmp_path, monkeypatch):
    """All live episodes of a step in one left-padded generate call per turn give the same tokens and
    log-probabilities as one call per episode (greedy, so sampling noise is out)."""
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.policy_training.train import make_trainer

    ckpt = build(tmp_path / "tiny")
    model, processor = load_vlm(ckpt, device="cpu")
    data = _data(osv_dir, 3)
    trainer = make_trainer(_cfg(tmp_path, ckpt), model=model, processor=processor, dataset=data)
    from trl.data_utils import prepare_multimodal_messages

    prompts = [prepare_multimodal_messages(row["prompt"], [row["image"]]) for row in data]  # as TRL does
    calls = []
    real = model.generate

    def counting(*a, **k):
        calls.append(k["input_ids"].shape[0])
        return real(*a, **k)

    monkeypatch.setattr(model, "generate", counting)
    outs = {}
    for batched in (False, True):
        rollout = trainer.geo_rollout
        rollout.batched, rollout.greedy = batched, True
        calls.clear()
        outs[batched] = (rollout(prompts, trainer), list(calls))
    (one, one_calls), (bat, bat_calls) = outs[False], outs[True]
    assert one_calls and set(one_calls) == {1}
    assert max(bat_calls) == 3 and len(bat_calls) < len(one_calls)  # one call per turn for all live ones
    assert one["completion_ids"] == bat["completion_ids"]
    assert one["env_mask"] == bat["env_mask"]
    for a, b in zip(one["logprobs"], bat["logprobs"], strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    for ta, tb in zip(one["trajectory"], bat["trajectory"], strict=True):
        assert [t["completion"] for t in json.loads(ta)["turns"]] == [
            t["completion"] for t in json.loads(tb)["turns"]
        ]
    m = trainer.geo_rollout.last_metrics
    assert {"turns", "tool_calls", "answer_rate", "fallback_rate", "parse_errors", "truncated_turns"} <= set(
        m
    )
    assert m["truncated_turns"] > 0  # 12 tokens per turn: a random model runs into the budget


def _episode(source: str) -> str:
    return json.dumps(
        {
            "answer": {"lat": 59.9, "lon": 10.7, "radius_km": 25.0, "localizability": 0.6, "source": source},
            "chain": {
                "continent": {"code": "EU", "value": "Europe"},
                "country": {"code": "NO", "value": "Norway"},
            },
            "turns": [{"thought": "read the sign", "completion": "x", "observations": [], "actions": []}],
            "evidence": [],
        }
    )


def test_stalling_scores_strictly_less_than_answering_the_same_point():
    """A fallback answer (the budget ran out) at the deepest commitment earns less in total than the
    policy answering that same point itself, under the default weights."""
    funcs, weights = reward_functions()
    funcs = renormalised(funcs, weights)
    kw = dict(
        trajectory=[_episode("answer"), _episode("fallback")],
        lat=[59.91, 59.91],
        lon=[10.75, 10.75],
        continent=["EU", "EU"],
        country=["NO", "NO"],
        region=["Oslo", "Oslo"],
        city=["Oslo", "Oslo"],
        entities=[[], []],
    )
    totals = [0.0, 0.0]
    for f, w in zip(funcs, weights, strict=True):
        for i, v in enumerate(f(["p", "p"], ["c", "c"], **kw)):
            totals[i] += w * (v or 0.0)
    assert totals[1] < totals[0]
    # and each distance-like reward alone is lower for the fallback
    from geolocate.policy_training.rewards import chain_of_region, geo_r_distance

    d = geo_r_distance(None, None, **kw)
    c = chain_of_region(None, None, **kw)
    assert d[1] < d[0] and c[1] < c[0]


def vowel_share(prompts, completions, **kwargs):
    """A reward that differs between a random model's samples (so a group has a non-zero advantage)."""
    return [sum(ch in "aeiou" for ch in str(c)) / max(1, len(str(c))) for c in completions]


def test_lora_step_changes_only_adapters_and_logs_rollout_metrics(osv_dir, tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    pytest.importorskip("peft")
    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.policy_training.train import make_trainer

    model, processor = load_vlm(tiny, device="cpu")
    cfg = _cfg(
        tmp_path,
        tiny,
        peft={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        reward_weights_by_name="geo_r_distance=1.0,tests.test_grpo_scale:vowel_share=1.0",
        geo_eval_steps=1,
    )
    held_out = load_osv5m(osv_dir).subset(3)
    held_out.samples = held_out.samples[2:]  # one photo the training rows do not hold
    trainer = make_trainer(
        cfg, model=model, processor=processor, dataset=_data(osv_dir), eval_dataset=held_out
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed and all("lora_" in n for n in changed), changed
    assert not any("visual" in n for n, p in trainer.model.named_parameters() if p.requires_grad)
    rows = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"rollout/turns", "rollout/answer_rate", "rollout/truncated_turns", "frac_reward_zero_std"} <= keys
    assert any(k.startswith("rewards_raw/") for k in keys)
    # the project's evals ran during training on the held-out photo, and the best checkpoint was kept
    ev = next(r for r in rows if "eval_geo/geoscore" in r)
    assert 0.0 <= ev["eval_geo/geoscore"] <= 5000.0 and 0.0 <= ev["eval_geo/answer_rate"] <= 1.0
    assert (tmp_path / "out" / "best" / "adapter_config.json").is_file()


def test_train_cli_with_lora_then_locate_runs_on_the_adapters_within_the_trained_tokens(
    osv_dir, tmp_path, tiny, plain_photo
):
    """``geolocate train --config`` with a ``peft:`` section and ``--output-dir``; ``locate --model``
    loads the adapter folder and generates at most the trained per-turn tokens."""
    pytest.importorskip("peft")
    from geolocate.agent.cli import main
    from geolocate.agent.policies.transformers_policy import TransformersPolicy

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"model_name_or_path: {tiny}\ndataset: osv5m\ndata: {osv_dir}\nlimit: 2\ntools: clues,gazetteer\n"
        "max_turns: 2\nmax_tool_calls: 2\nmax_turn_tokens: 9\nmax_pixels: 12544\nnum_generations: 2\n"
        "per_device_train_batch_size: 2\nmax_steps: 1\nlogging_steps: 1\nsave_strategy: 'no'\n"
        "report_to: none\ndataloader_num_workers: 0\npeft: {r: 4, lora_alpha: 8}\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output-dir", str(out)]) == 0
    assert (out / "adapter_config.json").is_file() and (out / "merged" / "config.json").is_file()
    meta = json.loads((out / "geolocate_training.json").read_text())
    assert meta["max_turn_tokens"] == 9 and meta["max_pixels"] == 12544 and meta["peft"]["r"] == 4
    assert meta["max_turn_tokens"] * meta["max_turns"] == 18
    policy = TransformersPolicy(model=str(out), device="cpu")
    assert policy.max_new_tokens == 9 and policy.max_pixels == 12544
    t = tmp_path / "t.json"
    assert (
        main(
            ["locate", str(plain_photo), "--model", str(out), "--device", "cpu", "--quiet", "--json", str(t)]
        )
        == 0
    )
    traj = json.loads(t.read_text())
    assert traj["tools"] == ["clues", "gazetteer"] or "clues" in json.dumps(traj["tools"])
    assert 1 <= len(traj["turns"]) <= 2


def test_config_problems_are_one_line_errors(tmp_path, capsys):
    from geolocate.agent.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("peft: {rank: 4}\n", encoding="utf-8")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "peft: unknown key(s) rank" in capsys.readouterr().err
    cfg.write_text(
        f"resume: true\noutput_dir: {tmp_path / 'none'}\nmodel_name_or_path: x\n", encoding="utf-8"
    )
    assert main(["train", "--config", str(cfg)]) in (1, 2)
    assert "holds no checkpoint" in capsys.readouterr().err


def test_rollouts_read_the_photo_and_state_its_size_as_inference_does(osv_dir):
    """A training row's image is the photo shrunk to ``max_pixels`` (what the model sees), and it names
    the photo: the rollout's Episode runs its tools on the photo itself and the prompt states the
    photo's size, as ``geolocate locate --model`` does (rows once held only the thumbnail, so OCR in
    training read a 112-pixel image and the prompt said 112x84 where inference says 682x512)."""
    from geolocate.policy_training.labels import PHOTO_KEY
    from geolocate.policy_training.rollout import _loaded
    from geolocate.tools.image import load_image

    samples = load_osv5m(osv_dir)
    ds = build_dataset(samples, ["ocr", "clues"], Budget(max_turns=2), max_pixels=112 * 112)
    for row, sample in zip(ds, samples):
        im = row["image"]
        assert im.size[0] * im.size[1] <= 112 * 112 and im.info[PHOTO_KEY].endswith(f"{sample.id}.jpg")
        photo = _loaded(im)
        full = load_image(sample.image)
        assert (photo.sha256, photo.width, photo.height) == (full.sha256, full.width, full.height)
        assert f"The image is {full.width}x{full.height} pixels" in row["prompt"][1]["content"][-1]["text"]
