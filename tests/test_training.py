"""GRPO over tool-augmented Chain-of-Region episodes on CPU, with the tiny offline Qwen2.5-VL."""

from __future__ import annotations

import json
import math

import pytest

from geolocate.agent.actions import Answer, Commit, ToolCall, render_turn
from geolocate.agent.state import Budget
from geolocate.evals.datasets import load_osv5m
from geolocate.policy_training.labels import build_dataset, labels_from_gps
from geolocate.policy_training.rewards import REWARDS
from tests import tiny_vlm
from tests.conftest import tiny_grpo_config
from tests.test_vlm import ForceTokens

torch = pytest.importorskip("torch")
TOOLS = ["ocr", "clues", "gazetteer", "geocode"]


def test_labels_agree_with_every_osv5m_country(labels):
    rows = list(labels.values())
    got = labels_from_gps([(float(r["latitude"]), float(r["longitude"])) for r in rows])
    assert [g.country for g in got] == [r["country"] for r in rows]
    assert all(g.continent in ("AF", "AS", "EU", "NA", "OC", "SA") for g in got)


def script_for(label, good: bool) -> list[str]:
    """Two tool turns, the chain, an answer: on the label's town (good) or 3,000 km away."""
    lat, lon = label["lat"], label["lon"]
    far = (lat + (27 if lat < 50 else -27), lon)
    commits = [Commit(level="continent", value=label["continent"], confidence=0.6, evidence=["image"])]
    if good:
        commits.append(Commit(level="country", value=label["country"], confidence=0.6, evidence=["e2"]))
    return [
        render_turn('Read the signs; the road says "Main".', [ToolCall(name="ocr")]),
        render_turn(
            "Check the guess.",
            [ToolCall(name="geocode", arguments={"op": "reverse", "lat": lat, "lon": lon})],
        ),
        render_turn("Commit.", commits),
        render_turn(
            "Answer.",
            [
                Answer(
                    lat=lat if good else far[0],
                    lon=lon if good else far[1],
                    radius_km=25.0,
                    localizability=0.7 if good else 0.2,
                )
            ],
        ),
    ]


def test_two_grpo_steps_over_four_real_photos(osv_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.policy_training.train import make_trainer

    ckpt = tiny_vlm.build(tmp_path / "tiny", "qwen2_5_vl")
    model, processor = load_vlm(ckpt, device="cpu")
    model.train()
    data = build_dataset(
        load_osv5m(osv_dir).subset(4), TOOLS, Budget(max_turns=5, max_tool_calls=4), max_pixels=56 * 56 * 4
    )
    rows = {r["id"]: r for r in data}
    cfg = tiny_grpo_config(
        tmp_path, ckpt, TOOLS, max_turns=5, max_tool_calls=4, max_turn_tokens=200, max_steps=2,
        gradient_accumulation_steps=1,
    )  # fmt: skip
    seen_prompts: list = []
    scripts: dict = {}

    def hook(index, turn):
        return {"logits_processor": [scripts[index][turn]]} if index in scripts else {}

    trainer = make_trainer(cfg, model=model, processor=processor, dataset=data, generation_hook=hook)
    rollout = trainer.geo_rollout
    original = rollout.__call__

    def scripted_rollout(prompts, tr):
        seen_prompts.append(len(prompts))
        scripts.clear()
        tok = processor.tokenizer
        eos = tok.convert_tokens_to_ids("<|im_end|>")
        for i, _prompt in enumerate(prompts):
            # which row? match by image size and the task text is not enough: use the order of the batch
            rid = ordered_ids[i]
            lab = {**rows[rid], "lat": rows[rid]["lat"], "lon": rows[rid]["lon"]}
            scripts[i] = [
                ForceTokens(tok(t, add_special_tokens=False).input_ids, eos)
                for t in script_for(lab, good=i % 2 == 0)
            ]
        out = original(prompts, tr)
        captured.append(out)
        return out

    captured: list = []
    ordered_ids: list = []
    trainer.rollout_func = scripted_rollout
    orig_prepare = trainer._generate_and_score_completions

    def remember(inputs):
        ordered_ids[:] = [x["id"] for x in inputs]
        return orig_prepare(inputs)

    trainer._generate_and_score_completions = remember
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()

    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed, "no parameter changed after two GRPO steps"
    for name in REWARDS:
        assert any(f"rewards/{name}/mean" in h for h in logs), f"reward {name} not logged"
    # Each rollout batch: 4 episodes (2 prompts x group size 2), every one scripted to its end.
    assert seen_prompts == [4, 4]
    for out in captured:
        for ids, mask, traj in zip(out["completion_ids"], out["env_mask"], out["trajectory"]):
            t = json.loads(traj)
            assert t["status"] == "answered" and len(t["turns"]) == 4
            assert len(ids) == len(mask)
            # mask 1 exactly on the generated tokens: each turn's script plus its end-of-turn token
            tok = processor.tokenizer
            gen_len = sum(
                len(tok(turn["completion"], add_special_tokens=False).input_ids) + 1 for turn in t["turns"]
            )
            assert sum(mask) == gen_len
            # and the masked-out spans decode to the observations the Episode produced
            spans, cur = [], []
            for i_, m in zip(ids, mask):
                if m == 0:
                    cur.append(i_)
                elif cur:
                    spans.append(tok.decode(cur))
                    cur = []
            assert len(spans) == 3  # observations after turns 0, 1, 2 (the answer ends the episode)
            for span, turn in zip(spans, t["turns"][:3]):
                assert span.startswith("\n<|im_start|>user\n<tool_response>") and span.endswith(
                    "<|im_start|>assistant\n"
                )
                for obs in turn["observations"]:
                    assert (
                        json.dumps(obs["text"], ensure_ascii=False)[1:-1]
                        .replace("<", "\\u003c")
                        .replace(">", "\\u003e")[:40]
                        in span
                    )
