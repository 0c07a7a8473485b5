"""GRPO rollouts: TRL's GRPOTrainer drives the Episode, token-exact.

Why ``rollout_func`` (and not ``tools=`` or ``environment_factory``): with ``tools=`` or an
environment, TRL owns the multi-turn loop: it parses tool calls with the chat template's response
schema (Qwen2.5-VL's stock template has none), renders tool results its own way and knows nothing of
Chain-of-Region commitments, backtracking, answers, budgets or consistency checks. That would be a
second implementation of the episode loop, the prompt rendering and the output parsing. A
``rollout_func`` lets the Episode stay the environment: each turn's prompt is
:func:`geolocate.prompts.render.render_prompt` (the function the transformers policy uses), each completion is
parsed by :func:`geolocate.agent.actions.parse_completion` inside ``Episode.step``, and the tokens are exact:

* the turn-0 prompt is tokenized once; it is byte-identical to TRL's rendering of the dataset row's
  ``prompt`` + ``image`` (both come from :func:`geolocate.policy_training.labels.training_prompt`), which
  matters
  because for VLMs TRL re-renders that prompt from the dataset's images in the loss pass;
* generated tokens are kept as generated (never re-tokenized) and carry ``env_mask`` 1;
* between turns, only the new suffix of the rendered conversation (``<|im_end|>``, the observation
  message, the next ``<|im_start|>assistant``) is tokenized and appended with ``env_mask`` 0 (TRL's
  ``tool_mask``), so observation tokens never get loss;
* the finished ``EpisodeState`` goes to the reward functions as the ``trajectory`` field.

Tools that return images (``zoom``) are refused: TRL's rollout_func path feeds the loss pass only the
dataset's images, so an image inside the completion could not be reproduced there.

Generation: in-process with the trainer's model (``model.generate``), or, when the trainer runs vLLM
(``use_vllm=True``, server or colocate mode), through ``trainer.vllm_generation.generate`` with token
ids, one batched call per turn for all live episodes.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from geolocate.agent.episode import Episode
from geolocate.agent.policies.transformers_policy import vision_token_ids
from geolocate.agent.state import Budget
from geolocate.prompts.render import PROMPT_VERSION, render_prompt
from geolocate.tools.base import Tool
from geolocate.tools.image import decode_image
from geolocate.tools.registry import ToolSet, create


def observation_tokens(tok, prefix: str, nxt: str, ended_with_eos: bool) -> list[int]:
    """The tokens between a turn and the next one: what the next turn's rendered prompt ``nxt`` adds
    to ``prefix`` (the conversation so far plus the turn's completion), that is the end-of-turn
    token (unless generation already produced it), the observations and the next assistant header.
    The one token layout of GRPO rollouts and SFT rows; these tokens never carry loss.

    Raises:
        RuntimeError: ``nxt`` does not extend ``prefix`` (the prompt templates changed).
    """
    if not nxt.startswith(prefix):
        raise RuntimeError("the rendered conversation does not extend the previous turn's prompt")
    suffix = nxt[len(prefix) :]
    eos_text = tok.eos_token or "<|im_end|>"
    if ended_with_eos and suffix.startswith(eos_text):
        suffix = suffix[len(eos_text) :]
    return tok(suffix, add_special_tokens=False)["input_ids"]


def prompt_image(prompt: list[dict]):
    """The PIL image of a TRL conversational prompt (its first image part)."""
    for m in prompt:
        if isinstance(m.get("content"), list):
            for p in m["content"]:
                if p.get("type") == "image" and p.get("image") is not None:
                    return p["image"]
    raise ValueError("the prompt has no image: build the dataset with policy_training.labels.build_dataset")


def _loaded(image):
    """The photo a training row's image was shrunk from (its PNG text :data:`PHOTO_KEY`): the Episode's
    tools read it and the prompt states its size, as at inference; the row's image itself when it
    names none or the photo is gone."""
    from geolocate.policy_training.labels import PHOTO_KEY
    from geolocate.tools.errors import InputImageError
    from geolocate.tools.image import load_image

    path = (getattr(image, "info", None) or {}).get(PHOTO_KEY)
    if path:
        try:
            return load_image(path)
        except InputImageError:
            pass
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return decode_image(buf.getvalue(), "<training row>")


class GeoRollout:
    """A ``rollout_func`` for ``trl.GRPOTrainer``: one Episode per prompt, driven to its end.

    Args:
        tool_names: the tool mask of training episodes (no image-returning tools).
        budget: turn and tool-call budgets per episode.
        max_turn_tokens: new tokens per turn.
        temperature, top_p: sampling (defaults: the trainer's ``args.temperature`` / ``args.top_p``).
        generation_hook: ``f(rollout_index, turn) -> dict`` of extra ``generate`` kwargs (e.g. a
            logits processor), for scripted tests and constrained decoding. Per episode, so episodes
            with a hook generate one at a time.
        batched: in-process generation of all live episodes of a step in one left-padded
            ``generate`` call per turn (finished episodes drop out); False: one call per episode
            (the reference the batched path is tested against).
        greedy: greedy decoding instead of sampling (evaluation and equality tests, never training).

    After each call, :attr:`last_metrics` holds the step's rollout metrics (per-episode means: turns,
    tool calls by tool, answer and fallback rates, parse errors, observation tokens, truncated
    turns), which the trainer logs (:func:`geolocate.policy_training.train.make_trainer`).
    """

    def __init__(
        self,
        tool_names: Sequence[str],
        budget: Budget | None = None,
        max_turn_tokens: int = 512,
        temperature: float | None = None,
        top_p: float | None = None,
        generation_hook: Callable[[int, int], dict[str, Any]] | None = None,
        prompt_version: int = PROMPT_VERSION,
        batched: bool = True,
        greedy: bool = False,
    ):
        self.tool_names = list(tool_names)
        self.batched, self.greedy = batched, greedy
        self.prompt_version = prompt_version
        for name in self.tool_names:
            if type(create(name)).artifact is not Tool.artifact:
                raise ValueError(
                    f"tool {name!r} returns images, which GRPO rollouts cannot train on; leave it out"
                )
        self.budget = budget or Budget()
        self.max_turn_tokens, self.temperature, self.top_p = max_turn_tokens, temperature, top_p
        self.generation_hook = generation_hook
        self.stats = {"episodes": 0, "generated_tokens": 0, "seconds": 0.0}

    # -- generation backends
    # -----------------------------------------------------------------------------------
    def _generate_hf(
        self, trainer, model, ids: list[int], vision: dict, index: int, turn: int, prompt_len: int
    ) -> tuple[list[int], list[float]]:
        import torch

        proc = trainer.processing_class
        tok = proc.tokenizer
        input_ids = torch.tensor([ids], device=model.device)
        kwargs = dict(vision)
        # Image tokens live in the prompt only (as in TRL's loss pass); completions cannot hold images.
        mm = torch.zeros_like(input_ids)
        mm[:, :prompt_len] = (input_ids[:, :prompt_len] == tok.convert_tokens_to_ids("<|image_pad|>")).long()
        kwargs["mm_token_type_ids"] = mm
        cfg = self.generation_config(trainer)
        cfg.suppress_tokens = vision_token_ids(tok)
        cfg.output_scores, cfg.return_dict_in_generate, cfg.use_cache = True, True, True
        extra = self.generation_hook(index, turn) if self.generation_hook else {}
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=cfg,
                **kwargs,
                **extra,
            )
        new = out.sequences[0, input_ids.shape[1] :]
        logps = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
        n = int(new.shape[0])
        return new.tolist(), [float(x) for x in logps[:n]]

    def _generate_hf_batch(self, trainer, model, batch: list[dict]) -> list[tuple[list[int], list[float]]]:
        """One ``generate`` call for all of ``batch`` (left-padded; each row's image features and
        ``image_grid_thw`` concatenated in row order); each row's tokens end at its first end-of-turn
        token, or at the per-turn budget."""
        import torch

        tok = trainer.processing_class.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids(tok.eos_token)
        eos = tok.convert_tokens_to_ids(tok.eos_token or "<|im_end|>")
        image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
        width = max(len(r["ids"]) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        mm = torch.zeros_like(ids)
        for j, r in enumerate(batch):
            n, off = len(r["ids"]), width - len(r["ids"])
            ids[j, off:] = torch.tensor(r["ids"])
            attn[j, off:] = 1
            p = len(r["prompt_ids"])
            mm[j, off : off + p] = (ids[j, off : off + p] == image_pad).long()
        vision = {k: torch.cat([r["vision"][k] for r in batch], dim=0) for k in batch[0]["vision"]}
        cfg = self.generation_config(trainer)
        cfg.suppress_tokens = vision_token_ids(tok)
        cfg.output_scores, cfg.return_dict_in_generate, cfg.use_cache = True, True, True
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=attn.to(model.device),
                mm_token_type_ids=mm.to(model.device),
                generation_config=cfg,
                **vision,
            )
        new = out.sequences[:, width:]
        logps = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        results = []
        for j in range(len(batch)):
            row = new[j].tolist()
            n = row.index(eos) + 1 if eos in row else len(row)
            results.append((row[:n], [float(x) for x in logps[j, :n]]))
        return results

    def generation_config(self, trainer):
        """The trainer's own ``generation_config`` (every sampling field its config sets: temperature,
        top_p, top_k, min_p, repetition_penalty, EOS and pad ids), with this rollout's per-turn token
        budget, and its temperature/top_p where given. Passed explicitly, so the checkpoint's own
        defaults (Qwen2.5-VL-7B-Instruct ships ``top_k=1``: identical completions, zero advantage)
        never apply."""
        import copy

        from transformers import GenerationConfig

        base = getattr(trainer, "generation_config", None)
        cfg = copy.deepcopy(base) if base is not None else GenerationConfig(do_sample=True)
        cfg.max_new_tokens = self.max_turn_tokens
        cfg.do_sample = not self.greedy
        if self.temperature is not None:
            cfg.temperature = self.temperature
        if self.top_p is not None:
            cfg.top_p = self.top_p
        if base is None:
            args = trainer.args
            cfg.temperature = cfg.temperature if self.temperature is not None else args.temperature
            cfg.top_p = cfg.top_p if self.top_p is not None else args.top_p
            cfg.top_k = getattr(args, "top_k", 0) or 0
            cfg.pad_token_id = trainer.processing_class.tokenizer.pad_token_id
        if not cfg.top_k:
            cfg.top_k = 0  # 0 turns top-k off (None would let the model's default through)
        return cfg

    @staticmethod
    def _sampled_logprobs(logprobs) -> list[float]:
        """The sampled token's log-probability at each position.

        Raises:
            RuntimeError: vLLM returned none or NaN for a sampled token (a silent 0.0 would bias the
                importance-sampling ratio).
        """
        import math

        out = []
        for lp in logprobs:
            v = lp[0] if lp else None
            if v is None or not math.isfinite(v):
                raise RuntimeError(
                    "vLLM returned no finite log-probability for a sampled token; start vLLM with "
                    "--logprobs-mode processed_logprobs and check the model's dtype"
                )
            out.append(float(v))
        return out

    def _generate(self, trainer, model, batch: list[dict], turn: int) -> list[tuple[list[int], list[float]]]:
        if getattr(trainer, "use_vllm", False):
            gen = trainer.vllm_generation
            prompts = [r["ids"] for r in batch]
            images = [[r["image"]] for r in batch]
            saved = gen.max_completion_length
            gen.max_completion_length = self.max_turn_tokens  # the per-turn budget, not the episode's
            try:
                _, completion_ids, logprobs, _ = gen.generate(prompts, images, num_generations=1)
            finally:
                gen.max_completion_length = saved
            return [(c, self._sampled_logprobs(lp)) for c, lp in zip(completion_ids, logprobs, strict=True)]
        if self.batched and self.generation_hook is None and len(batch) > 1:
            return self._generate_hf_batch(trainer, model, batch)
        return [
            self._generate_hf(trainer, model, r["ids"], r["vision"], r["i"], turn, len(r["prompt_ids"]))
            for r in batch
        ]

    # -- the rollout
    # ---------------------------------------------------------------------------------------------
    def __call__(self, prompts: list[list[dict]], trainer) -> dict[str, list]:
        t0 = time.perf_counter()
        proc = trainer.processing_class
        tok = proc.tokenizer
        eos_id = tok.convert_tokens_to_ids(tok.eos_token or "<|im_end|>")
        model = trainer.accelerator.unwrap_model(trainer.model)  # for its device; generation unwraps again
        tools = ToolSet.from_names(self.tool_names)
        schemas = tools.schemas()

        runs = []
        for i, prompt in enumerate(prompts):
            image = prompt_image(prompt)
            ep = Episode(_loaded(image), tools, budget=self.budget, policy="grpo")
            text = render_prompt(proc, ep.state, schemas, self.prompt_version)
            enc = proc(text=[text], images=[image], return_tensors="pt")
            vision = {
                k: v.to(model.device)
                for k, v in enc.items()
                if k not in ("input_ids", "attention_mask", "mm_token_type_ids")
            }
            ids = enc["input_ids"][0].tolist()
            runs.append(
                {
                    "i": i,
                    "ep": ep,
                    "text": text,
                    "ids": ids,
                    "prompt_ids": list(ids),
                    "vision": vision,
                    "image": image,
                    "completion": [],
                    "mask": [],
                    "logps": [],
                    "truncated_turns": 0,
                    "observation_tokens": 0,
                }
            )

        turn = 0
        use_vllm = bool(getattr(trainer, "use_vllm", False))
        with self._generation_context(trainer, use_vllm) as gen_model:
            while self._any_live(trainer, runs, use_vllm):
                live = [r for r in runs if not r["ep"].done]
                # vLLM: every process sends all its episodes every turn (finished ones as padding whose
                # output is dropped), in lock-step until the last episode on any process ends, so the
                # collective calls inside generation always match and nothing waits forever.
                # One process needs no lock-step: only its live episodes go.
                lockstep = use_vllm and getattr(trainer.accelerator, "num_processes", 1) > 1
                batch = runs if lockstep else live
                outs = self._generate(trainer, gen_model, batch, turn)
                self._step_all(
                    live,
                    dict(zip((id(r) for r in batch), outs, strict=True)),
                    proc,
                    schemas,
                    eos_id,
                )
                turn += 1
        self._check_groups(runs, trainer)
        self.stats["episodes"] += len(runs)
        self.stats["seconds"] += time.perf_counter() - t0
        self.last_metrics = rollout_metrics(runs)
        log_metric = getattr(trainer, "_log_metric", None)  # TRL averages these over processes and steps
        if callable(log_metric):
            for k, v in self.last_metrics.items():
                log_metric(f"rollout/{k}", v)
        if getattr(trainer.args, "mask_truncated_completions", False):
            for r in runs:  # TRL looks only at the last token: a turn cut anywhere must end the same way
                if r["truncated_turns"] and r["completion"] and r["completion"][-1] == eos_id:
                    for key in ("completion", "mask", "logps"):
                        r[key].pop()
        return {
            "prompt_ids": [r["prompt_ids"] for r in runs],
            "completion_ids": [r["completion"] for r in runs],
            "logprobs": [r["logps"] for r in runs],
            "env_mask": [r["mask"] for r in runs],
            "trajectory": [json.dumps(r["ep"].state.dump()) for r in runs],
        }

    @staticmethod
    def _any_live(trainer, runs: list[dict], use_vllm: bool) -> bool:
        """Whether any episode is still running: here, or (vLLM) on any training process."""
        live = any(not r["ep"].done for r in runs)
        if not use_vllm or getattr(trainer.accelerator, "num_processes", 1) <= 1:
            return live
        import torch

        flag = torch.tensor([int(live)], device=trainer.accelerator.device)
        return bool(trainer.accelerator.gather(flag).max().item())

    @staticmethod
    def _generation_context(trainer, use_vllm: bool):
        """TRL's ``unwrap_model_for_generation`` for in-process generation (ZeRO-3 parameters gathered,
        gradient checkpointing off so the KV cache works, the trainer's generation kwargs in force)."""
        import contextlib

        if use_vllm:
            return contextlib.nullcontext(None)
        from trl.models.utils import unwrap_model_for_generation

        args = trainer.args
        return unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=getattr(args, "ds3_gather_for_generation", True),
            generation_kwargs=getattr(trainer, "generation_kwargs", None),
            gradient_checkpointing_kwargs=getattr(args, "gradient_checkpointing_kwargs", None),
        )

    def _check_groups(self, runs: list[dict], trainer) -> None:
        """Count groups (the same prompt, ``num_generations`` times) whose completions are all
        identical although sampling is on: their advantages are 0 and they teach nothing."""
        import logging

        temperature = self.temperature if self.temperature is not None else trainer.args.temperature
        if not temperature:
            return
        groups: dict[tuple, list] = {}
        for r in runs:
            groups.setdefault(tuple(r["prompt_ids"]), []).append(tuple(r["completion"]))
        same = sum(1 for g in groups.values() if len(g) > 1 and len(set(g)) == 1)
        self.stats["identical_groups"] = self.stats.get("identical_groups", 0) + same
        if same:
            logging.getLogger(__name__).warning(
                "%d of %d groups sampled identical completions at temperature %s: check top_k/top_p",
                same,
                len(groups),
                temperature,
            )

    def _step_all(self, live, outs, proc, schemas, eos_id: int) -> None:
        """Feed each live episode its generated turn; append the next observation as masked tokens."""
        tok = proc.tokenizer
        for r in live:
            gen, logps = outs[id(r)]
            completion = tok.decode(gen, skip_special_tokens=True)
            r["ep"].step(completion)
            if len(gen) >= self.max_turn_tokens and (not gen or gen[-1] != eos_id):
                r["truncated_turns"] += 1  # cut by the per-turn budget, not ended by the model
            r["completion"] += gen
            r["mask"] += [1] * len(gen)
            r["logps"] += logps
            r["ids"] += gen
            self.stats["generated_tokens"] += len(gen)
            if r["ep"].done:
                continue
            nxt = render_prompt(proc, r["ep"].state, schemas, self.prompt_version)
            suf = observation_tokens(tok, r["text"] + completion, nxt, bool(gen) and gen[-1] == eos_id)
            r["completion"] += suf
            r["observation_tokens"] += len(suf)
            r["mask"] += [0] * len(suf)
            r["logps"] += [0.0] * len(suf)
            r["ids"] += suf
            r["text"] = nxt


def rollout_metrics(runs: list[dict]) -> dict[str, float]:
    """Per-episode means of one rollout batch, for the trainer's log (``rollout/<name>``): turns, tool
    calls (all and by tool), answer rate (the policy's own answer) and fallback rate (the budget ran
    out), parse errors, observation tokens (``env_mask`` 0), generated tokens and truncated turns
    (cut by ``max_turn_tokens``); ``episodes_truncated`` is the share with at least one such turn."""
    n = max(1, len(runs))
    out: dict[str, float] = {}
    by_tool: dict[str, int] = {}
    for r in runs:
        st = r["ep"].state
        calls = [a for t in st.turns for a in t.actions if a.get("kind") == "tool_call"]
        for a in calls:
            by_tool[str(a.get("name"))] = by_tool.get(str(a.get("name")), 0) + 1
        parse_errors = sum(1 for t in st.turns for o in t.observations if o.kind == "parse_error")
        answered = st.answer is not None and getattr(st.answer, "source", "answer") == "answer"
        fallback = st.answer is not None and not answered
        for key, v in (
            ("turns", len(st.turns)),
            ("tool_calls", len(calls)),
            ("answer_rate", float(answered)),
            ("fallback_rate", float(fallback)),
            ("parse_errors", parse_errors),
            ("observation_tokens", r["observation_tokens"]),
            ("generated_tokens", sum(r["mask"])),
            ("truncated_turns", r["truncated_turns"]),
            ("episodes_truncated", float(r["truncated_turns"] > 0)),
        ):
            out[key] = out.get(key, 0.0) + v
    out.update({f"tool_calls/{k}": v for k, v in sorted(by_tool.items())})
    return {k: v / n for k, v in out.items()}
