"""GRPO rollout throughput on CPU with the tiny offline Qwen2.5-VL (run by hand):

    python benchmarks/rollout_throughput.py [--episodes 8] [--turn-tokens 64]

Episodes run through ``policy_training.rollout.GeoRollout`` exactly as in training (free sampling from
random weights, so turns are parse errors until the turn budget ends them). Prints episodes/s,
generated tokens/s, and the overhead of the Episode and tools over plain generation of the same
number of tokens per turn from the same prompts with the same sampling (TRL's GRPO without tools).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--turn-tokens", type=int, default=64)
    ap.add_argument("--max-turns", type=int, default=4)
    args = ap.parse_args()

    from trl.data_utils import prepare_multimodal_messages

    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.agent.state import Budget
    from geolocate.evals.datasets import load_osv5m
    from geolocate.policy_training.labels import build_dataset
    from geolocate.policy_training.rollout import GeoRollout
    from tests import tiny_vlm

    tools = ["ocr", "clues", "gazetteer", "geocode"]
    ckpt = tiny_vlm.build(Path(tempfile.mkdtemp()) / "tiny", "qwen2_5_vl")
    model, processor = load_vlm(ckpt, device="cpu")
    budget = Budget(max_turns=args.max_turns, max_tool_calls=4)
    data = build_dataset(
        load_osv5m(REPO.parent / "shared" / "data" / "osv5m-sample").subset(args.episodes),
        tools,
        budget,
        max_pixels=56 * 56 * 4,
    )
    prompts = [prepare_multimodal_messages(r["prompt"], images=[r["image"]]) for r in data]
    from accelerate import Accelerator

    trainer = SimpleNamespace(
        processing_class=processor,
        model=model,
        model_wrapped=model,
        accelerator=Accelerator(cpu=True),
        args=SimpleNamespace(temperature=1.0, top_p=1.0, top_k=0),
        use_vllm=False,
    )
    rollout = GeoRollout(tools, budget, max_turn_tokens=args.turn_tokens)
    rollout(prompts[:1], trainer)  # warm-up
    rollout.stats = {"episodes": 0, "generated_tokens": 0, "seconds": 0.0}
    t = time.perf_counter()
    out = rollout(prompts, trainer)
    dt = time.perf_counter() - t
    n_tok = rollout.stats["generated_tokens"]
    total = sum(len(c) for c in out["completion_ids"])
    print(
        f"{len(prompts)} episodes x {args.max_turns} turns x {args.turn_tokens} tokens in {dt:.1f} s: "
        f"{len(prompts) / dt:.2f} episodes/s, {n_tok / dt:.0f} generated tokens/s "
        f"({total - n_tok} observation tokens masked out of {total})"
    )
    # Plain generation: the same turns' worth of tokens from the turn-0 prompts, no Episode, no tools.
    import torch

    cfg = rollout.generation_config(trainer)
    t = time.perf_counter()
    plain_tokens = 0
    from geolocate.agent.episode import Episode
    from geolocate.policy_training.rollout import _loaded
    from geolocate.prompts.render import render_prompt
    from geolocate.tools.registry import ToolSet

    ts = ToolSet.from_names(tools)
    for r in data:
        text = render_prompt(processor, Episode(_loaded(r["image"]), ts, budget=budget).state, ts.schemas())
        enc = processor(text=[text], images=[r["image"]], return_tensors="pt")
        for _ in range(args.max_turns):
            with torch.no_grad():
                out_ids = model.generate(**enc, generation_config=cfg)
            plain_tokens += out_ids.shape[1] - enc["input_ids"].shape[1]
    dp = time.perf_counter() - t
    print(
        f"plain generation of {plain_tokens} tokens in {dp:.1f} s ({plain_tokens / dp:.0f} tokens/s); "
        f"Episode + tools overhead: {100 * (dt / n_tok - dp / plain_tokens) / (dp / plain_tokens):.0f}% "
        "per generated token"
    )


if __name__ == "__main__":
    main()
