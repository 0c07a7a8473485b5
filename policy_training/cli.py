"""``geolocate train --config FILE [--sft]``: SFT warm start and GRPO training of the planner."""

from __future__ import annotations

import argparse

from geolocate.agent.cli_common import fail


def register(sub) -> None:
    """Add the ``train`` command to the root parser's sub-parsers."""
    tr = sub.add_parser("train", help="GRPO training of the planner (see policy_training/configs/)")
    tr.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON GeoGRPOConfig (any trl.GRPOConfig field too); examples/train/cpu-tiny.yaml "
        "is a CPU quick start",
    )
    tr.add_argument(
        "--output-dir", metavar="DIR", help="where checkpoints and the final model go (overrides the config)"
    )
    tr.add_argument(
        "--make-tiny-model",
        metavar="DIR",
        help="write a tiny random Qwen2.5-VL checkpoint to DIR (built offline, for CPU trials) and exit",
    )
    tr.add_argument(
        "--sft",
        action="store_true",
        help="SFT warm start on teacher trajectories (sft_source in the config) into <output_dir>/sft, "
        "instead of GRPO; then point model_name_or_path there for GRPO",
    )
    tr.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from geolocate.policy_training.train import load_config, train
    except ImportError as e:
        return fail(
            f"training needs the 'train' extra ({e.name} missing): pip install 'geolocate-agent[train]'"
        )
    if args.make_tiny_model:
        from geolocate.policy_training.tiny import build

        out = build(args.make_tiny_model)
        print(f"tiny random Qwen2.5-VL checkpoint written to {out} (use it as model_name_or_path or --model)")
        return 0
    if not args.config:
        return fail("give --config FILE (or --make-tiny-model DIR)")
    overrides = {"output_dir": args.output_dir} if args.output_dir else None
    try:
        cfg = load_config(args.config, overrides)
    except (FileNotFoundError, ValueError) as e:
        return fail(e)
    if args.sft:
        from geolocate.policy_training.sft import train_sft

        try:
            out = train_sft(cfg)
        except ValueError as e:
            return fail(e)
        print(f"SFT model and processor saved in {out}; for GRPO set model_name_or_path: {out}")
        return 0
    try:
        out = train(cfg)
    except ValueError as e:
        return fail(e)
    print(f"trained model and processor saved in {out}")
    return 0
