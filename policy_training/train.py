"""``geolocate train --config FILE``: GRPO of the planner over Chain-of-Region episodes.

Loads the checkpoint and its processor (:func:`geolocate.agent.policies.transformers_policy.load_vlm`), builds
the dataset with rule-based labels (:mod:`geolocate.policy_training.labels`), the rewards with their weights
(:mod:`geolocate.policy_training.rewards`), and runs ``trl.GRPOTrainer`` with :class:`GeoRollout`. Checkpoints
are written every ``save_steps``; ``resume: true`` continues from the last one. TRL logs each reward
component as ``rewards/<name>/mean`` (and ``/std``) with the loss, KL and completion lengths.
"""

from __future__ import annotations

import csv
from pathlib import Path

from geolocate.agent.state import Budget
from geolocate.policy_training.config import GeoGRPOConfig


def load_config(path: str | Path) -> GeoGRPOConfig:
    """A :class:`GeoGRPOConfig` from a YAML or JSON file.

    Raises:
        FileNotFoundError, ValueError (unknown keys or bad values, from HfArgumentParser).
    """
    from transformers import HfArgumentParser

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    parser = HfArgumentParser(GeoGRPOConfig)
    (cfg,) = (
        parser.parse_yaml_file(str(p), allow_extra_keys=False)
        if p.suffix in (".yaml", ".yml")
        else parser.parse_json_file(str(p), allow_extra_keys=False)
    )
    return cfg


def training_dataset(cfg: GeoGRPOConfig):
    from geolocate.evals import datasets as D
    from geolocate.policy_training.labels import build_dataset, hard_samples

    ds = D.load_dataset(cfg.dataset, data=cfg.data, labels=cfg.labels, images=cfg.images, limit=cfg.limit)
    keep = None
    if cfg.hard_reference:
        with open(cfg.hard_reference, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        lat = next(k for k in ("pred_latitude", "pred_lat", "lat", "latitude") if k in rows[0])
        lon = next(k for k in ("pred_longitude", "pred_lon", "lon", "longitude") if k in rows[0])
        keep = hard_samples({r["id"]: (float(r[lat]), float(r[lon])) for r in rows}, cfg.hard_threshold_km)
    return build_dataset(
        ds,
        cfg.tools.split(","),
        Budget(max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls),
        cfg.max_pixels,
        keep,
    )


def make_trainer(cfg: GeoGRPOConfig, model=None, processor=None, dataset=None, generation_hook=None):
    """A ready ``GRPOTrainer`` (model and processor loaded from ``cfg`` unless given)."""
    from trl import GRPOTrainer

    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.policy_training.rewards import renormalised, reward_functions
    from geolocate.policy_training.rollout import GeoRollout

    if model is None or processor is None:
        model, processor = load_vlm(cfg.model_name_or_path, device="cpu" if cfg.use_cpu else None)
    tok = getattr(processor, "tokenizer", processor)
    tok.padding_side = "left"  # TRL pads prompts on the left; the processor must agree
    funcs, weights = reward_functions(cfg.weights(), cfg.breakpoints())
    funcs = renormalised(funcs, weights)  # non-applicable rewards do not shrink a total
    cfg.reward_weights = weights
    rollout = GeoRollout(
        cfg.tools.split(","),
        Budget(max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls),
        cfg.max_turn_tokens,
        generation_hook=generation_hook,
        prompt_version=cfg.prompt_version,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=cfg,
        train_dataset=dataset if dataset is not None else training_dataset(cfg),
        processing_class=processor,
        rollout_func=rollout,
    )
    trainer.geo_rollout = rollout
    trainer.add_callback(_metadata_callback(cfg))
    return trainer


def training_metadata(cfg: GeoGRPOConfig) -> dict:
    """What a checkpoint records of how its planner was trained (``geolocate_training.json``):
    ``geolocate locate --model`` runs it with the same tools, budgets and prompt unless told otherwise."""
    return {
        "tools": cfg.tools,
        "max_turns": cfg.max_turns,
        "max_tool_calls": cfg.max_tool_calls,
        "max_turn_tokens": cfg.max_turn_tokens,
        "prompt_version": cfg.prompt_version,
        "base_model": cfg.model_name_or_path,
    }


def write_metadata(cfg: GeoGRPOConfig, folder: str | Path) -> Path:
    """Write :func:`training_metadata` into ``folder``; returns the file."""
    import json

    from geolocate.agent.policies.transformers_policy import TRAINING_METADATA

    path = Path(folder) / TRAINING_METADATA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(training_metadata(cfg), indent=1), encoding="utf-8")
    return path


def _metadata_callback(cfg: GeoGRPOConfig):
    """A TrainerCallback that writes the metadata into every checkpoint folder as it is saved."""
    from transformers import TrainerCallback

    class _Metadata(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            write_metadata(cfg, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return _Metadata()


def train(cfg: GeoGRPOConfig) -> Path:
    """Train, save the final model and processor in ``cfg.output_dir``, and return that folder."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer = make_trainer(cfg)
    trainer.train(resume_from_checkpoint=True if cfg.resume else None)
    trainer.save_model(cfg.output_dir)  # the Trainer saves the processor with the model
    write_metadata(cfg, cfg.output_dir)
    return Path(cfg.output_dir)
