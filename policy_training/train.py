"""``geolocate train --config FILE``: GRPO of the planner over Chain-of-Region episodes.

Loads the checkpoint and its processor (:func:`geolocate.agent.policies.transformers_policy.load_vlm`), builds
the dataset with rule-based labels (:mod:`geolocate.policy_training.labels`), the rewards with their weights
(:mod:`geolocate.policy_training.rewards`), and runs ``trl.GRPOTrainer`` with :class:`GeoRollout`. Checkpoints
are written every ``save_steps``; ``resume: true`` continues from the last one. TRL logs each reward
component as ``rewards/<name>/mean`` (and ``/std``) with the loss, KL and completion lengths.
"""

from __future__ import annotations

import csv
import functools
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
    if "max_completion_length" not in raw:  # dr_grpo's denominator: the longest episode there can be
        turns = raw.get("max_turns", fields["max_turns"].default)
        tokens = raw.get("max_turn_tokens", fields["max_turn_tokens"].default)
        if isinstance(turns, int) and isinstance(tokens, int):
            raw["max_completion_length"] = turns * tokens
    if isinstance(raw.get("peft"), dict):
        known = {"r", "lora_alpha", "lora_dropout", "target_modules", "train_vision", "bias"}
        if bad := sorted(set(raw["peft"]) - known):
            raise ValueError(
                f"{p}: peft: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(known))})"
            )
    if raw.get("model_name_or_path") == "tiny":  # the CPU quick start: a tiny model built here, offline
        from geolocate.policy_training.tiny import build

        folder = Path(raw.get("output_dir") or "trainer_output") / "tiny-base"
        raw["model_name_or_path"] = str(folder if (folder / "config.json").exists() else build(folder))
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


def lora_config(cfg: GeoGRPOConfig):
    """The ``peft.LoraConfig`` of the config's ``peft:`` section, or None without one. Defaults: rank 16,
    alpha 32, dropout 0.05, the attention and MLP projections of the language model; the vision tower
    stays frozen unless ``train_vision: true`` (then its projections get adapters too)."""
    if not cfg.peft:
        return None
    from peft import LoraConfig

    p = dict(cfg.peft)
    train_vision = bool(p.pop("train_vision", False))
    default_targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    targets = p.pop("target_modules", default_targets)
    if isinstance(targets, list) and not train_vision:
        # a regex over module names: the language model's projections only (Qwen-VL's tower is "visual")
        targets = rf"^(?!.*visual).*\.({'|'.join(targets)})$"
    return LoraConfig(
        r=int(p.pop("r", 16)),
        lora_alpha=int(p.pop("lora_alpha", 32)),
        lora_dropout=float(p.pop("lora_dropout", 0.05)),
        target_modules=targets,
        bias=p.pop("bias", "none"),
        task_type="CAUSAL_LM",
    )


def make_trainer(
    cfg: GeoGRPOConfig, model=None, processor=None, dataset=None, generation_hook=None, eval_dataset=None
):
    """A ready GRPO trainer (TRL's ``GRPOTrainer`` with DAPO dynamic sampling when the config asks),
    model and processor loaded from ``cfg`` unless given; LoRA adapters when ``cfg.peft`` is set.
    Callbacks: checkpoint metadata, ``metrics.jsonl``, the zero-variance warning and, with
    ``geo_eval_steps``, the project's evals on ``eval_dataset`` (a held-out ``evals`` Dataset)."""
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
    trainer = _trainer_class()(
        model=model,
        reward_funcs=funcs,
        args=cfg,
        train_dataset=dataset if dataset is not None else training_dataset(cfg),
        processing_class=processor,
        rollout_func=rollout,
        peft_config=lora_config(cfg),
    )
    trainer.geo_rollout = rollout
    trainer.add_callback(_metadata_callback(cfg))
    trainer.add_callback(_metrics_callback(cfg))
    if cfg.geo_eval_steps and eval_dataset is not None:
        trainer.add_callback(_eval_callback(cfg, trainer, processor, eval_dataset))
    return trainer


@functools.cache
def _trainer_class():
    """TRL's GRPOTrainer, with DAPO's dynamic sampling (Yu et al. 2025, "DAPO"): when
    ``dynamic_sampling`` is on, groups whose rewards are all equal carry no advantage and are dropped
    from the loss (their completion mask zeroed), so the informative groups are not diluted by them.
    (DAPO also resamples to refill the batch; here the batch shrinks instead.)"""
    from trl import GRPOTrainer

    class GeoGRPOTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            if getattr(self.args, "dynamic_sampling", False):
                import torch

                adv = out["advantages"]
                g = self.num_generations
                if adv.numel() % g == 0:
                    flat = torch.isclose(adv.view(-1, g), torch.zeros_like(adv.view(-1, g))).all(dim=1)
                    drop = flat.repeat_interleave(g)
                    out["completion_mask"] = out["completion_mask"] * (~drop).unsqueeze(1).to(
                        out["completion_mask"].dtype
                    )
                    mode = "train" if self.model.training else "eval"
                    self._metrics[mode]["dynamic_sampling/dropped_groups"].append(flat.float().mean().item())
            return out

    return GeoGRPOTrainer


def training_metadata(cfg: GeoGRPOConfig) -> dict:
    """What a checkpoint records of how its planner was trained (``geolocate_training.json``):
    ``geolocate locate/session/eval --model`` run it with the same tools, budgets, per-turn tokens,
    pixel budget, prompt and sampling unless told otherwise."""
    return {
        "tools": cfg.tools,
        "max_turns": cfg.max_turns,
        "max_tool_calls": cfg.max_tool_calls,
        "max_turn_tokens": cfg.max_turn_tokens,
        "max_pixels": cfg.max_pixels,
        "prompt_version": cfg.prompt_version,
        "generation": {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k},
        "base_model": cfg.model_name_or_path,
        "peft": cfg.peft,
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
            if state.is_world_process_zero:  # one writer, not one per rank
                write_metadata(cfg, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return _Metadata()


METRICS_FILE = "metrics.jsonl"
"""Every log line of a run (loss, rewards, rollout metrics, evals) as JSON Lines in the output folder."""


def _metrics_callback(cfg: GeoGRPOConfig):
    """A TrainerCallback that appends every log to ``<output_dir>/metrics.jsonl`` (rank 0) and warns
    when the share of zero-variance groups (``frac_reward_zero_std``) reaches ``zero_std_warning``."""
    import json
    import logging
    import math

    from transformers import TrainerCallback

    log = logging.getLogger("geolocate.train")

    class _Metrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, **logs}
            clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in row.items()}
            path = Path(args.output_dir) / METRICS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(clean) + "\n")
            frac = logs.get("frac_reward_zero_std")
            if isinstance(frac, float) and frac >= cfg.zero_std_warning:
                log.warning(
                    "step %d: %.0f%% of groups have equal rewards (zero advantage: no learning signal); "
                    "raise temperature or num_generations, add rewards that vary (format, tool_use), "
                    "or set dynamic_sampling: true",
                    state.global_step,
                    100 * frac,
                )

    return _Metrics()


def _eval_callback(cfg: GeoGRPOConfig, trainer, processor, dataset):
    """Every ``geo_eval_steps`` steps: the project's evals (:func:`geolocate.evals.runner.run_dataset`)
    with the model being trained on the held-out ``dataset`` (GeoScore, acc@k, answer rate), logged as
    ``eval_geo/<metric>``; the checkpoint with the best GeoScore is kept in ``<output_dir>/best``."""
    from transformers import TrainerCallback

    best = {"geoscore": -1.0}

    class _Eval(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % cfg.geo_eval_steps or not state.is_world_process_zero:
                return
            metrics = evaluate_model(cfg, trainer.model, processor, dataset)
            trainer.log({f"eval_geo/{k}": v for k, v in metrics.items()})
            if metrics["geoscore"] > best["geoscore"]:
                best["geoscore"] = metrics["geoscore"]
                out = Path(args.output_dir) / "best"
                trainer.save_model(str(out))
                processor.save_pretrained(str(out))
                write_metadata(cfg, out)

    return _Eval()


def evaluate_model(cfg: GeoGRPOConfig, model, processor, dataset) -> dict[str, float]:
    """GeoScore, acc@k (km), median error and answer rate of ``model`` (in its current state, greedy) on
    an ``evals`` Dataset, with the training tools, budgets, per-turn tokens and pixel budget."""
    from geolocate.agent.policies.transformers_policy import TransformersPolicy
    from geolocate.evals.metrics import summarize
    from geolocate.evals.runner import run_dataset

    unwrapped = getattr(model, "module", model)
    was_training = unwrapped.training
    unwrapped.eval()
    try:
        policy = TransformersPolicy(
            loaded=(unwrapped, processor),
            max_new_tokens=cfg.max_turn_tokens,
            do_sample=False,
            max_pixels=cfg.max_pixels,
            prompt_version=cfg.prompt_version,
        )
        budget = Budget(max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls)
        recs = list(run_dataset(dataset, policy, tools=cfg.tools, budget=budget, keep_trajectory=False))
    finally:
        unwrapped.train(was_training)
    errs = [r["error_km"] for r in recs if r.get("error_km") is not None]
    out = {k: float(v) for k, v in summarize(errs).items() if isinstance(v, (int, float))} if errs else {}
    out.setdefault("geoscore", 0.0)
    out["answer_rate"] = sum(r.get("answer_source") == "answer" for r in recs) / max(1, len(recs))
    return out


def train(cfg: GeoGRPOConfig) -> Path:
    """Train (an SFT warm start first when ``sft_warm_start``), save the final model and processor in
    ``cfg.output_dir`` (LoRA: the adapters there and a merged model in ``<output_dir>/merged``), and
    return the folder ``--model`` loads.

    Raises:
        ValueError: ``resume: true`` without a checkpoint in ``output_dir``.
    """
    import os

    from transformers.trainer_utils import get_last_checkpoint

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    resume = None
    if cfg.resume:
        out = Path(cfg.output_dir)
        resume = get_last_checkpoint(str(out)) if out.is_dir() else None
        if resume is None:
            raise ValueError(f"resume: true, but {out} holds no checkpoint-N folder to resume from")
    if cfg.sft_warm_start:
        from geolocate.policy_training.sft import train_sft

        sft_dir = train_sft(cfg)
        cfg.model_name_or_path = str(sft_dir)  # not dataclasses.replace: GRPOConfig's post-init runs once
    train_ds, eval_ds = training_dataset(cfg), None
    if cfg.geo_eval_steps:
        eval_ds = held_out(cfg)
    trainer = make_trainer(cfg, dataset=train_ds, eval_dataset=eval_ds)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(cfg.output_dir)  # the Trainer saves the processor with the model
    if trainer.is_world_process_zero():
        write_metadata(cfg, cfg.output_dir)
        if cfg.peft:
            merged = Path(cfg.output_dir) / "merged"
            trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(str(merged))
            trainer.processing_class.save_pretrained(str(merged))
            write_metadata(cfg, merged)
    if eval_ds is not None and trainer.is_world_process_zero():
        final = evaluate_model(cfg, trainer.model, trainer.processing_class, eval_ds)
        trainer.log({f"eval_geo/{k}": v for k, v in final.items()})
    return Path(cfg.output_dir)


def held_out(cfg: GeoGRPOConfig):
    """The held-out ``evals`` Dataset for evaluation during training: the last ``geo_eval_split`` share
    (or the last ``geo_eval_limit`` samples) of the configured dataset, at most ``geo_eval_limit``."""
    from geolocate.evals import datasets as D

    ds = D.load_dataset(cfg.dataset, data=cfg.data, labels=cfg.labels, images=cfg.images)
    n = len(ds.samples)
    k = max(1, int(n * cfg.geo_eval_split)) if cfg.geo_eval_split else cfg.geo_eval_limit
    return D.Dataset(f"{ds.name} (held out)", ds.samples[n - min(k, cfg.geo_eval_limit, n) :])
