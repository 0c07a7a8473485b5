"""Rollout throughput: batched multi-turn rollouts vs one episode at a time vs TRL's plain GRPOTrainer.

    python benchmarks/rollout_throughput.py                 # tiny offline model, CPU, batches 4, 8, 16
    python benchmarks/rollout_throughput.py --model DIR --batches 8,16 --turn-tokens 128   # a real one

For each batch size B (B episodes: B/group prompts x group size), on the same model, photos and
completion length, times one rollout of:

* **batched**: :class:`geolocate.policy_training.rollout.GeoRollout` as training runs it, all live
  episodes of a turn in one left-padded ``generate`` call;
* **one-at-a-time**: the same rollout with ``batched=False`` (one ``generate`` per episode and turn);
* **TRL plain**: ``trl.GRPOTrainer``'s own single-turn generation (``_generate``) of the same prompts
  with ``max_completion_length`` = turns x tokens per turn (TRL's path without tools or turns).

Prints seconds, generated tokens per second and the ratios. Batched must beat one-at-a-time at
B >= 8 (the exit status says whether it did). Photos: ../shared/data/osv5m-sample (CC-BY-SA 4.0).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a Qwen-VL checkpoint (default: a tiny random one)")
    ap.add_argument("--batches", default="4,8,16")
    ap.add_argument("--group", type=int, default=4, help="group size (num_generations)")
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--turn-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per setting (best kept)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "osv5m-sample"))
    ap.add_argument("--out", default="rollout-throughput-out")
    args = ap.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    import torch
    from trl import GRPOTrainer
    from trl.data_utils import prepare_multimodal_messages

    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.agent.state import Budget
    from geolocate.evals.datasets import load_osv5m
    from geolocate.policy_training.config import GeoGRPOConfig
    from geolocate.policy_training.labels import build_dataset
    from geolocate.policy_training.tiny import build
    from geolocate.policy_training.train import make_trainer

    torch.manual_seed(0)
    out = Path(args.out)
    ckpt = args.model or str(out / "tiny" if (out / "tiny" / "config.json").exists() else build(out / "tiny"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, processor = load_vlm(ckpt, device=device)
    tools = ["clues", "gazetteer"]
    budget = Budget(max_turns=args.turns, max_tool_calls=args.turns)
    rows: list[tuple] = []
    ok = True
    for b in [int(x) for x in args.batches.split(",")]:
        n_prompts = max(1, b // args.group)
        data = build_dataset(load_osv5m(args.data).subset(n_prompts), tools, budget, max_pixels=112 * 112)
        cfg = GeoGRPOConfig(
            output_dir=str(out / "run"),
            model_name_or_path=str(ckpt),
            tools=",".join(tools),
            max_turns=args.turns,
            max_tool_calls=args.turns,
            max_turn_tokens=args.turn_tokens,
            max_completion_length=args.turns * args.turn_tokens,
            num_generations=args.group,
            per_device_train_batch_size=n_prompts * args.group,
            max_steps=1,
            report_to="none",
            use_cpu=device == "cpu",
            bf16=False,
            temperature=1.0,
            dataloader_num_workers=0,
        )
        prompts = [
            prepare_multimodal_messages(r["prompt"], [r["image"]]) for r in data for _ in range(args.group)
        ]
        geo = make_trainer(cfg, model=model, processor=processor, dataset=data)
        times: dict[str, tuple[float, int]] = {}
        for name, batched in (("batched", True), ("one-at-a-time", False)):
            geo.geo_rollout.batched = batched
            best = None
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = geo.geo_rollout(prompts, geo)
                dt = time.perf_counter() - t
                tokens = sum(sum(m) for m in res["env_mask"])
                best = (dt, tokens) if best is None or dt < best[0] else best
            times[name] = best
        cfg.reward_weights = None  # make_trainer set the project's weights; TRL's own run has one reward
        plain = GRPOTrainer(
            model=model,
            reward_funcs=[lambda prompts, completions, **k: [0.0] * len(completions)],
            args=cfg,
            train_dataset=data,
            processing_class=processor,
        )
        plain.model.train()
        best = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = plain._generate(prompts)
            dt = time.perf_counter() - t
            tokens = int(sum(len(c) for c in res[1]))
            best = (dt, tokens) if best is None or dt < best[0] else best
        times["TRL plain"] = best
        for name, (dt, tokens) in times.items():
            rows.append((b, name, dt, tokens, tokens / dt))
        ratio = times["one-at-a-time"][0] / times["batched"][0]
        vs_trl = times["TRL plain"][0] / times["batched"][0]
        tb, to, tp = times["batched"][0], times["one-at-a-time"][0], times["TRL plain"][0]
        print(
            f"B={b:3d}: batched {tb:.2f} s, one-at-a-time {to:.2f} s ({ratio:.2f}x), "
            f"TRL plain single-turn {tp:.2f} s (TRL/batched {vs_trl:.2f})"
        )
        if b >= 8 and ratio <= 1.0:
            ok = False
    print("\n| B | rollout | seconds | generated tokens | tokens/s |\n|---|---|---|---|---|")
    for b, name, dt, tokens, tps in rows:
        print(f"| {b} | {name} | {dt:.2f} | {tokens} | {tps:.0f} |")
    print("\nPASS: batched beats one-at-a-time at B >= 8" if ok else "\nFAIL: batched not faster at B >= 8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
