"""Does the project's GRPO path learn? A tiny policy, a reward it can raise, and a learning-rate-0 control.

    python benchmarks/grpo_learning.py --quick      # ~5 min on 2 CPU cores
    python benchmarks/grpo_learning.py --steps 60   # longer

Both runs go through ``geolocate.policy_training.train.make_trainer`` (the real multi-turn rollout,
``env_mask``, group advantages, TRL's GRPO loss) with the tiny offline Qwen2.5-VL
(:mod:`geolocate.policy_training.tiny`) on real OSV-5M photos (``../shared/data/osv5m-sample``,
CC-BY-SA 4.0). The reward is :func:`digit_share`, the share of digits in what the policy writes (a
random tiny model writes a few; coordinates are digits, so it is a crude stand-in for "answers with
numbers"; observations between turns do not count), alone, so that its mean per step is the learning
curve. The control is the same run with
learning rate 0 and the same seed.

Prints the mean reward per step of both runs and exits 0 only when the trained run's mean over its
last 5 steps is at least 3x its first-5 mean and at least 2x the control's last-5 mean. Writes both
curves to ``--out`` (``curves.csv``, and ``curves.png`` with matplotlib).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def digit_share(prompts, completions, trajectory, **kwargs) -> list[float]:
    """Share of the characters the policy generated (every turn's completion, not the observations
    between turns) that are digits."""
    import json

    out = []
    for t in trajectory:
        turns = (json.loads(t) if isinstance(t, str) else t).get("turns", [])
        text = "".join(turn.get("completion") or "" for turn in turns)
        out.append(sum(ch.isdigit() for ch in text) / max(1, len(text)))
    return out


def run(lr: float, steps: int, ckpt: Path, data, out: Path, seed: int) -> list[float]:
    """Mean reward per step of one GRPO run (``lr`` 0: the control)."""
    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.policy_training.config import GeoGRPOConfig
    from geolocate.policy_training.train import make_trainer

    model, processor = load_vlm(ckpt, device="cpu")
    cfg = GeoGRPOConfig(
        output_dir=str(out),
        model_name_or_path=str(ckpt),
        tools="clues,gazetteer",
        max_turns=2,
        max_tool_calls=2,
        max_turn_tokens=16,
        max_completion_length=32,
        num_generations=8,
        per_device_train_batch_size=16,
        max_steps=steps,
        learning_rate=lr,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=seed,
        beta=0.0,
        temperature=1.0,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        reward_weights_by_name=(
            "geo_r_distance=0,chain_of_region=0,localizability=0,cue_grounding=0,format=0,tool_use=0,"
            "benchmarks.grpo_learning:digit_share=1.0"
        ),
        zero_std_warning=1.1,
    )
    trainer = make_trainer(cfg, model=model, processor=processor, dataset=data)
    trainer.train()
    key = "rewards_raw/digit_share/mean"  # TRL names a reward by its function
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return [float(h.get(key, h.get("reward", 0.0))) for h in logs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 steps per run")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=2e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "osv5m-sample"))
    ap.add_argument("--out", default="grpo-learning-out")
    args = ap.parse_args()
    steps = args.steps or (30 if args.quick else 60)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    sys.path.insert(0, str(REPO))  # the reward is named benchmarks.grpo_learning:digit_share

    from geolocate.agent.state import Budget
    from geolocate.evals.datasets import load_osv5m
    from geolocate.policy_training.labels import build_dataset
    from geolocate.policy_training.tiny import build

    out = Path(args.out)
    ckpt = out / "tiny" if (out / "tiny" / "config.json").exists() else build(out / "tiny", seed=args.seed)
    data = build_dataset(
        load_osv5m(args.data).subset(args.photos),
        ["clues", "gazetteer"],
        Budget(max_turns=2, max_tool_calls=2),
        max_pixels=56 * 56 * 4,
    )
    t0 = time.perf_counter()
    trained = run(args.lr, steps, ckpt, data, out / "trained", args.seed)
    t1 = time.perf_counter()
    control = run(0.0, steps, ckpt, data, out / "control", args.seed)
    t2 = time.perf_counter()

    print("step  trained  control")
    for i, (a, b) in enumerate(zip(trained, control, strict=False), 1):
        print(f"{i:4d}  {a:7.4f}  {b:7.4f}")
    with open(out / "curves.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["step", "trained", "control"])
        w.writerows([(i, a, b) for i, (a, b) in enumerate(zip(trained, control, strict=False), 1)])
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.figure(figsize=(6, 3.5))
        plt.plot(trained, label=f"GRPO (lr {args.lr:g})")
        plt.plot(control, label="control (lr 0)")
        plt.xlabel("step")
        plt.ylabel("mean reward (digit share)")
        plt.legend()
        plt.tight_layout()
        plt.savefig(out / "curves.png", dpi=120)
    except ImportError:
        pass
    first, last, ctrl = (sum(x) / len(x) for x in (trained[:5], trained[-5:], control[-5:]))
    ok = last >= 3 * first and last >= 2 * ctrl
    print(
        f"\ntrained: first-5 mean {first:.4f}, last-5 mean {last:.4f} ({last / max(first, 1e-9):.1f}x); "
        f"control last-5 mean {ctrl:.4f} (trained/control {last / max(ctrl, 1e-9):.1f}x); "
        f"{t1 - t0:.0f} s + {t2 - t1:.0f} s"
    )
    print("PASS" if ok else "FAIL: the trained run did not reach 3x its start and 2x the control")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
