"""``geolocate train --config FILE [--sft]``: SFT warm start and GRPO training of the planner."""

from __future__ import annotations

import argparse

from geolocate.agent.cli_common import fail


def register(sub) -> None:
    """Add the ``train`` command to the root parser's sub-parsers."""
    tr = sub.add_parser("train", help="GRPO training of the planner (see policy_training/configs/)")
    tr.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML or JSON GeoGRPOConfig (any trl.GRPOConfig field too)",
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
    try:
        cfg = load_config(args.config)
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
    out = train(cfg)
    print(f"trained model and processor saved in {out}")
    return 0
