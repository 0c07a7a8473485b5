"""SFT warm start before GRPO (``geolocate train --sft``): both origin papers fine-tune on trajectories
before reinforcement learning. The planner imitates whole episodes of a teacher:

* ``heuristic``: the rule-based planner over the labelled training set (episodes whose answer lands
  within ``sft_max_error_km`` of the truth);
* ``server``: a stronger model served by vLLM or any OpenAI-compatible endpoint (``sft_server``,
  ``sft_server_model``), filtered the same way;
* ``sessions``: investigator sessions (``sft_sessions``: a session store) whose analyst approved the
  answer.

Token layout, exactly as in GRPO (:mod:`geolocate.policy_training.rollout`): the turn-0 prompt from
:func:`geolocate.prompts.render.render_prompt`, then per turn the completion's tokens plus end-of-turn
(trained, labels = tokens) and the rendered observations up to the next ``<|im_start|>assistant``
(labels -100: the environment's tokens never get loss). TRL's ``SFTTrainer`` trains on these
pre-tokenized rows with :class:`TrajectoryCollator` (the photo's pixels beside the ids). The same
config file drives both stages; the SFT model goes to ``<output_dir>/sft`` with its
``geolocate_training.json``, and a GRPO run continues from it with ``model_name_or_path`` pointing there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from geolocate.agent.state import Budget, EpisodeState
from geolocate.policy_training.rollout import observation_tokens
from geolocate.prompts.render import render_prompt


def _prefix_state(state: EpisodeState, k: int) -> EpisodeState:
    """The episode as it stood before turn ``k`` (its first k turns and their evidence)."""
    return state.model_copy(
        update={
            "turns": list(state.turns[:k]),
            "evidence": [e for e in state.evidence if e.turn < k],
            "answer": None,
            "status": "running",
        }
    )


def trajectory_tokens(
    processor,
    state: EpisodeState,
    schemas: list[dict],
    version: int,
    image_size: tuple[int, int] | None = None,
) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` of a finished episode in the GRPO token layout (module docstring).
    ``image_size`` (width, height in pixels): the size the model sees the photo at (its image tokens);
    the prompt's text states the photo's own size, as at inference.

    Raises:
        RuntimeError: the rendered conversation does not extend itself turn by turn (a changed template).
    """
    tok = processor.tokenizer
    eos_text = tok.eos_token or "<|im_end|>"
    text = render_prompt(processor, _prefix_state(state, 0), schemas, version)
    blank = _blank(image_size or (state.image.width, state.image.height))
    ids = processor(text=[text], images=[blank], return_tensors=None)["input_ids"][0]
    ids = list(ids)
    labels = [-100] * len(ids)
    for k, turn in enumerate(state.turns):
        gen = tok(turn.completion, add_special_tokens=False)["input_ids"] + [
            tok.convert_tokens_to_ids(eos_text)
        ]
        ids += gen
        labels += gen
        if k + 1 == len(state.turns):
            break
        nxt = render_prompt(processor, _prefix_state(state, k + 1), schemas, version)
        suf = observation_tokens(tok, text + turn.completion, nxt, ended_with_eos=True)
        ids += suf
        labels += [-100] * len(suf)
        text = nxt
    return {"input_ids": ids, "labels": labels}


def _blank(size: tuple[int, int]):
    """A stand-in image of ``size`` (width, height): the prompt's image tokens depend on the size only."""
    from PIL import Image

    return Image.new("RGB", size)


class TrajectoryCollator:
    """Pads pre-tokenized trajectories (right, labels -100) and adds the photos' pixels through the
    processor's image processor (Qwen-VL: ``pixel_values`` concatenated, ``image_grid_thw`` stacked),
    and ``mm_token_type_ids`` (1 on image tokens) where the processor has them: the model places image
    tokens by them (3D rope positions), as it does in generation and in GRPO's loss pass; without them
    SFT would train other positions than those the model runs with."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        pad = self.processor.tokenizer.pad_token_id or 0
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), n), pad, dtype=torch.long)
        labels = torch.full((len(rows), n), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            m = len(r["input_ids"])
            ids[i, :m] = torch.tensor(r["input_ids"])
            labels[i, :m] = torch.tensor(r["labels"])
            mask[i, :m] = 1
        vision = self.processor.image_processor(images=[r["image"] for r in rows], return_tensors="pt")
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels, **dict(vision)}
        if "mm_token_type_ids" in getattr(self.processor, "model_input_names", ()):
            image_pad = self.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
            out["mm_token_type_ids"] = ((ids == image_pad) & (mask == 1)).long()
        return out


def teacher_trajectories(cfg, dataset=None) -> list[tuple[EpisodeState, Any]]:
    """(trajectory, photo) pairs from the teacher ``cfg.sft_source`` names (module docstring); episodes
    of the heuristic or a served model are kept when their answer is within ``cfg.sft_max_error_km``.

    Raises:
        ValueError: an unknown source, or a source without what it needs (a server URL, a store).
    """
    from geolocate.tools.geo import haversine_km
    from geolocate.tools.image import load_image
    from geolocate.tools.registry import ToolSet

    source = cfg.sft_source
    if source == "sessions":
        return list(approved_sessions(cfg.sft_sessions))
    if source not in ("heuristic", "server"):
        raise ValueError(f"unknown sft_source {source!r}: heuristic, server or sessions")
    from geolocate.agent.graph import run_episode
    from geolocate.agent.policies import make_policy
    from geolocate.evals import datasets as D

    if source == "server":
        if not (cfg.sft_server and cfg.sft_server_model):
            raise ValueError("sft_source server needs sft_server (URL) and sft_server_model")
        policy = make_policy("openai_compatible", base_url=cfg.sft_server, model=cfg.sft_server_model)
    else:
        policy = make_policy("heuristic")
    ds = dataset or D.load_dataset(
        cfg.dataset, data=cfg.data, labels=cfg.labels, images=cfg.images, limit=cfg.limit
    )
    tools = ToolSet.parse_spec(cfg.tools)
    budget = Budget(max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls)
    out = []
    for s in ds.samples:
        image = load_image(s.image)
        state = run_episode(image, tools, policy, budget)
        a = state.answer
        if (
            a is not None
            and a.source == "answer"
            and haversine_km(a.lat, a.lon, s.lat, s.lon) <= cfg.sft_max_error_km
        ):
            out.append((state, image.image))
    return out


def approved_sessions(store_url: str | None) -> Iterable[tuple[EpisodeState, Any]]:
    """Finished investigator sessions whose answer the analyst approved (a review approval of the
    answer, or a conclusion without edits), with their photos.

    Raises:
        ValueError: no store given.
    """
    from geolocate.agent.session import SessionStore
    from geolocate.tools.image import load_image

    if not store_url:
        raise ValueError("sft_source sessions needs sft_sessions (a session store path or URL)")
    store = SessionStore(store_url)
    for sid in store.ids():
        ep = store.view(sid, with_branches=False).episode
        approved = any(
            e.tool == "review"
            and (e.output or {}).get("decision") == "approve"
            and (e.output or {}).get("level") in ("answer", "coordinates")
            for e in ep.evidence
        )
        if ep.answer is not None and ep.answer.source == "answer" and approved:
            yield ep, load_image(ep.image.path).image


def sft_rows(pairs, processor, cfg) -> list[dict[str, Any]]:
    """Training rows (``input_ids``, ``labels``, ``image`` within ``cfg.max_pixels``) of the pairs."""
    from geolocate.prompts.render import fit_pixels
    from geolocate.tools.registry import ToolSet

    schemas = ToolSet.parse_spec(cfg.tools).schemas()
    rows = []
    for state, image in pairs:
        image = fit_pixels(image.convert("RGB"), cfg.max_pixels)  # what the policy shows the model
        tokens = trajectory_tokens(processor, state, schemas, cfg.prompt_version, image.size)
        rows.append({**tokens, "image": image})
    return rows


def make_sft_trainer(cfg, model, processor, rows):
    """TRL's ``SFTTrainer`` over pre-tokenized trajectory rows, with the config's SFT settings
    (``sft_learning_rate``, ``sft_epochs``, ``sft_max_steps``, ``sft_batch_size``; the GRPO values where
    unset; the GRPO learning-rate schedule and warm-up), its checkpointing (``save_strategy``,
    ``save_steps``) and output in ``<output_dir>/sft``."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    out = Path(cfg.output_dir) / "sft"
    args = SFTConfig(
        output_dir=str(out),
        max_steps=cfg.sft_max_steps,
        num_train_epochs=cfg.sft_epochs,
        per_device_train_batch_size=cfg.sft_batch_size or cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.sft_learning_rate if cfg.sft_learning_rate is not None else cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        logging_steps=cfg.logging_steps,
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=cfg.report_to,
        use_cpu=cfg.use_cpu,
        seed=cfg.seed,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
        dataloader_num_workers=0,
    )
    ds = Dataset.from_list(
        [{"input_ids": r["input_ids"], "labels": r["labels"], "image": r["image"]} for r in rows]
    )
    return SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor,
                      data_collator=TrajectoryCollator(processor))  # fmt: skip


def train_sft(cfg, model=None, processor=None, pairs=None) -> Path:
    """Collect teacher trajectories, fine-tune on them, save model, processor and
    ``geolocate_training.json`` in ``<output_dir>/sft``; returns that folder.

    Raises:
        ValueError: the teacher produced no usable trajectory.
    """
    from geolocate.agent.policies.transformers_policy import load_vlm
    from geolocate.policy_training.train import write_metadata

    if model is None or processor is None:
        model, processor = load_vlm(cfg.model_name_or_path, device="cpu" if cfg.use_cpu else None)
    pairs = teacher_trajectories(cfg) if pairs is None else pairs
    if not pairs:
        raise ValueError(f"no teacher trajectory within {cfg.sft_max_error_km} km to learn from")
    trainer = make_sft_trainer(cfg, model, processor, sft_rows(pairs, processor, cfg))
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(trainer.args.output_dir)
    last = get_last_checkpoint(str(out)) if cfg.resume and out.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    out = Path(trainer.args.output_dir)
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))
    write_metadata(cfg, out)
    return out
