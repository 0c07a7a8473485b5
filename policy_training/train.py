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


def load_config(path: str | Path, overrides: dict | None = None) -> GeoGRPOConfig:
    """A :class:`GeoGRPOConfig` from a YAML or JSON file (and ``overrides`` on top).

    Every problem is one line naming the file and the key: YAML or JSON that does not parse (with
    its line), a file that is not a mapping, an unknown key (with the near ones), a value of the wrong
    type. On a machine without a GPU, ``use_cpu`` is set and ``bf16`` off unless the file says
    otherwise.

    Raises:
        FileNotFoundError; ValueError (the message names the file and the key).
    """
    import dataclasses
    import difflib
    import json
    import typing

    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text (byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValueError(f"{p}: not valid YAML ({where}{getattr(e, 'problem', None) or e})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: a config is a mapping of settings (key: value), not a {type(raw).__name__}")
    raw = {**raw, **(overrides or {})}
    fields = {f.name: f for f in dataclasses.fields(GeoGRPOConfig) if f.init}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        near = {k: difflib.get_close_matches(str(k), list(fields), n=2) for k in unknown}
        hints = "; ".join(
            f"{k!r}" + (f" (did you mean {', '.join(v)}?)" if v else "") for k, v in near.items()
        )
        raise ValueError(f"{p}: unknown setting(s) {hints}")
    hints_ = typing.get_type_hints(GeoGRPOConfig)
    for k, v in raw.items():
        if (why := _type_error(hints_.get(k), v)) is not None:
            raise ValueError(f"{p}: {k}: {why}")
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch comes with the train extra
        gpu = False
    if not gpu and not any(k in raw for k in ("use_cpu", "bf16", "fp16")):
        raw.update(use_cpu=True, bf16=False)
    try:
        return GeoGRPOConfig(**raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{p}: {' '.join(str(e).split())}") from None


def _type_error(hint, value) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (int, float, bool, str, lists, optionals,
    literals and enums of TrainingArguments), or None."""
    import enum
    import typing

    if hint is None or value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        errors = [_type_error(a, value) for a in args if a is not type(None)]
        return None if any(e is None for e in errors) else errors[0]
    if origin is typing.Literal:
        return None if value in args else f"must be one of {', '.join(map(repr, args))}, got {value!r}"
    if origin in (list, tuple):
        return None if isinstance(value, (list, tuple)) else f"must be a list, got {value!r}"
    if origin is dict:
        return None if isinstance(value, dict) else f"must be a mapping, got {value!r}"
    if hint is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if hint is int:
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else f"must be an integer, got {value!r}"
        )
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"must be text, got {value!r}"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        valid = [m.value for m in hint]
        return None if value in valid or isinstance(value, hint) else f"must be one of {valid}, got {value!r}"
    return None


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
