"""SFT warm start (issue 15): the heuristic planner's episodes on real photos become pre-tokenized rows
in GRPO's exact token layout, TRL's SFTTrainer trains 2 steps on CPU with the tiny offline
Qwen2.5-VL, and a GRPO run continues from the SFT model."""

from __future__ import annotations

import json
import math

import pytest

from geolocate.evals.datasets import load_osv5m
from tests import tiny_vlm

torch = pytest.importorskip("torch")
TOOLS = "ocr,clues,gazetteer,geocode"


def _cfg(tmp_path, ckpt, **kw):
    from geolocate.policy_training.config import GeoGRPOConfig

    base = dict(
        output_dir=str(tmp_path / "out"), model_name_or_path=str(ckpt), tools=TOOLS, max_turns=3,
        max_tool_calls=4, max_turn_tokens=12, num_generations=2, per_device_train_batch_size=2,
        gradient_accumulation_steps=1, max_steps=2, learning_rate=1e-2, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, seed=0, beta=0.0, temperature=1.0, bf16=False, fp16=False,
        dataloader_num_workers=0, max_pixels=56 * 56 * 4, sft_max_error_km=20000.0,
    )  # fmt: skip
    return GeoGRPOConfig(**{**base, **kw})


def test_sft_two_steps_then_grpo_from_it(osv_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from geolocate.agent.policies.transformers_policy import TRAINING_METADATA, load_vlm
    from geolocate.policy_training.labels import build_dataset
    from geolocate.policy_training.sft import sft_rows, teacher_trajectories, train_sft
    from geolocate.policy_training.train import make_trainer

    ckpt = tiny_vlm.build(tmp_path / "tiny", "qwen2_5_vl")
    model, processor = load_vlm(ckpt, device="cpu")
    cfg = _cfg(tmp_path, ckpt)
    data = load_osv5m(osv_dir).subset(4)
    pairs = teacher_trajectories(cfg, dataset=data)
    assert pairs and all(s.answer.source == "answer" for s, _ in pairs)

    # The token layout: loss exactly on each turn's completion and its end-of-turn token.
    rows = sft_rows(pairs, processor, cfg)
    tok = processor.tokenizer
    for (state, _), row in zip(pairs, rows, strict=True):
        trained = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != -100]
        want = []
        for turn in state.turns:
            want += tok(turn.completion, add_special_tokens=False)["input_ids"] + [
                tok.convert_tokens_to_ids("<|im_end|>")
            ]
        assert trained == want
        assert row["labels"][0] == -100 and len(row["input_ids"]) > len(want)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = train_sft(cfg, model=model, processor=processor, pairs=pairs)
    assert (out / TRAINING_METADATA).is_file() and (out / "config.json").is_file()
    assert json.loads((out / TRAINING_METADATA).read_text())["tools"] == TOOLS
    assert any(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())

    # GRPO continues from the SFT model (free sampling: episodes end at their budget).
    from geolocate.agent.state import Budget

    grpo_cfg = _cfg(tmp_path, out, output_dir=str(tmp_path / "grpo"))
    sft_model, sft_processor = load_vlm(out, device="cpu")
    ds = build_dataset(
        data.subset(2), TOOLS.split(","), Budget(max_turns=3, max_tool_calls=4), max_pixels=56 * 56 * 4
    )
    trainer = make_trainer(grpo_cfg, model=sft_model, processor=sft_processor, dataset=ds)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)


def test_approved_investigator_sessions_are_teacher_trajectories(tmp_path, plain_photo):
    """A session whose analyst approved the answer is a teacher trajectory; one still waiting for
    review, or whose answer was never approved, is not."""
    from geolocate.agent.session import SessionStore
    from geolocate.policy_training.sft import approved_sessions
    from tests.conftest import render_sign

    store_url = str(tmp_path / "sessions.sqlite")
    store = SessionStore(store_url)
    sign = render_sign(plain_photo, ["WELCOME TO KALAMUNDA"], tmp_path / "sign.jpg", size=40)
    approved = store.create(sign, review=["answer"], tools="all,-exif")
    assert approved.status == "review"
    approved = store.move(approved.info.id, {"kind": "approve"})
    waiting = store.create(sign, review=["answer"], tools="all,-exif")
    unreviewed = store.create(sign, tools="all,-exif")
    assert approved.episode.answer is not None and unreviewed.episode.answer is not None
    got = list(approved_sessions(store_url))
    assert [ep.image.sha256 for ep, _ in got] == [approved.episode.image.sha256]
    assert got[0][1].size == (approved.episode.image.width, approved.episode.image.height)
    assert waiting.info.id != approved.info.id


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_sft_batches_place_image_tokens_as_inference_does(tmp_path, plain_photo, family):
    """An SFT batch and the planner's own inputs give the model the same prompt at the same positions:
    identical token ids, pixels and image-token types, so identical logits. (SFT batches once lacked
    ``mm_token_type_ids``: the model placed the image tokens by 1D text positions in training and by
    3D rope positions at inference, and an SFT model that had learnt its teacher by heart wrote
    garbage when it ran.)"""
    from geolocate.agent.episode import Episode
    from geolocate.agent.graph import run_episode
    from geolocate.agent.policies.heuristic import HeuristicPolicy
    from geolocate.agent.policies.transformers_policy import TransformersPolicy, load_vlm
    from geolocate.agent.state import Budget
    from geolocate.policy_training.sft import TrajectoryCollator, sft_rows
    from geolocate.tools.image import load_image
    from geolocate.tools.registry import ToolSet

    ckpt = tiny_vlm.build(tmp_path / family, family)
    model, processor = load_vlm(ckpt, device="cpu")
    cfg = _cfg(tmp_path, ckpt, tools="clues,gazetteer", max_pixels=56 * 56 * 4)
    image = load_image(plain_photo)
    budget = Budget(max_turns=3, max_tool_calls=4)
    state = run_episode(image, ToolSet.parse_spec(cfg.tools), HeuristicPolicy(), budget)
    (row,) = sft_rows([(state, image.image)], processor, cfg)
    batch = TrajectoryCollator(processor)([row])
    first = int((batch["labels"][0] != -100).nonzero()[0])

    policy = TransformersPolicy(loaded=(model, processor), max_pixels=cfg.max_pixels)
    inputs = policy.inputs(Episode(image, ToolSet.parse_spec(cfg.tools), budget=budget))
    assert inputs["input_ids"][0].tolist() == batch["input_ids"][0, :first].tolist()
    assert torch.equal(inputs["pixel_values"], batch["pixel_values"])
    assert torch.equal(inputs["mm_token_type_ids"][0], batch["mm_token_type_ids"][0, :first])
    with torch.no_grad():
        ours = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, :first]
        theirs = model(**inputs).logits[0]
    assert torch.allclose(ours, theirs, atol=1e-4)
