"""The ``transformers`` policy: a Qwen-VL-family checkpoint run in-process as the planner.

Loads any Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoint the normal way (``from_pretrained(id_or_path)``:
a hub id such as ``Qwen/Qwen2.5-VL-7B-Instruct`` or ``globe-project/GLOBE-Qwen2.5VL-7B``, or a local
folder), renders the episode with :func:`geolocate.prompts.render.chat_text` (the same function training
uses),
generates one turn, and returns its text; the Episode parses it with the shared action grammar.

Without torchvision, ``AutoProcessor`` cannot build Qwen's video processor; the processor is then
assembled from the tokenizer and the PIL image processor (images only), which is all the agent needs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from geolocate.prompts.render import PROMPT_VERSION, build_messages, episode_images, render_prompt

DEFAULT_MAX_PIXELS = 1280 * 28 * 28
"""Pixel budget per image (Qwen2.5-VL's recommended upper bound: 1280 visual tokens of 28x28)."""


def vision_token_ids(tokenizer) -> list[int]:
    """Ids of the Qwen vision placeholder tokens, which a completion must never contain."""
    ids = [
        tokenizer.convert_tokens_to_ids(t)
        for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    ]
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


def _processor_class(model_type: str):
    import transformers

    names = {
        "qwen2_vl": "Qwen2VLProcessor",
        "qwen2_5_vl": "Qwen2_5_VLProcessor",
        "qwen3_vl": "Qwen3VLProcessor",
        "qwen3_vl_moe": "Qwen3VLProcessor",
    }
    if model_type not in names:
        raise ValueError(f"unsupported model type {model_type!r}; supported: {', '.join(sorted(names))}")
    base = getattr(transformers, names[model_type])

    class ImageOnlyProcessor(base):  # type: ignore[misc, valid-type]
        """The model's processor without a video processor (which needs torchvision)."""

        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

        def save_pretrained(self, save_directory, **kwargs):
            """Save what :func:`load_processor` reads back: the tokenizer (with its chat template) and the
            image processor."""
            self.tokenizer.save_pretrained(save_directory)
            self.image_processor.save_pretrained(save_directory)
            return [str(save_directory)]

    ImageOnlyProcessor.__name__ = f"ImageOnly{names[model_type]}"
    return ImageOnlyProcessor


def load_processor(id_or_path: str | Path):
    """The checkpoint's processor (``AutoProcessor``), or an image-only one when that cannot be built.

    Raises:
        ValueError: the checkpoint is not a supported Qwen-VL family model.
        OSError: nothing loadable at ``id_or_path``.
    """
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    try:
        proc = AutoProcessor.from_pretrained(str(id_or_path))
        if isinstance(proc, ProcessorMixin) and getattr(proc, "image_processor", None) is not None:
            return proc
    except (ImportError, TypeError, ValueError, OSError, AttributeError):
        pass
    config = AutoConfig.from_pretrained(str(id_or_path))
    tok = AutoTokenizer.from_pretrained(str(id_or_path))
    ip = Qwen2VLImageProcessorPil.from_pretrained(str(id_or_path))
    cls = _processor_class(config.model_type)
    return cls(image_processor=ip, tokenizer=tok, video_processor=None, chat_template=tok.chat_template)


def load_vlm(id_or_path: str | Path, dtype: str = "auto", device: str | None = None):
    """(model, processor) for a checkpoint; ``device`` defaults to CUDA when available, else CPU.

    A folder of LoRA adapters (``adapter_config.json``, as ``geolocate train`` with a ``peft:`` section
    saves) loads its base model (``base_model_name_or_path``) with the adapters merged in (``peft``).
    """
    import torch
    from transformers import AutoModelForImageTextToText

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = getattr(torch, dtype) if dtype not in ("auto", None) else "auto"
    adapter = Path(str(id_or_path)) / "adapter_config.json"
    if adapter.is_file():
        import json

        from peft import PeftModel

        base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]
        model = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch_dtype)
        model = PeftModel.from_pretrained(model, str(id_or_path)).merge_and_unload()
        return model.to(device).eval(), load_processor(base)  # training leaves the processor as it was
    model = AutoModelForImageTextToText.from_pretrained(str(id_or_path), dtype=torch_dtype).to(device).eval()
    return model, load_processor(id_or_path)


DEFAULT_MAX_NEW_TOKENS = 768
"""New tokens per turn for a checkpoint that records none of its own."""

TRAINING_METADATA = "geolocate_training.json"
"""Written by ``geolocate train`` into its output folder and every checkpoint: the tool set, budgets,
per-turn token budget and prompt version the planner was trained with."""


def training_metadata(model: str | Path) -> dict[str, Any] | None:
    """The :data:`TRAINING_METADATA` of a local checkpoint folder, or None (a hub id, an untrained
    model, an unreadable file)."""
    import json

    path = Path(str(model)) / TRAINING_METADATA
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


class TransformersPolicy:
    """A Qwen-VL checkpoint as the planner.

    Args:
        model: hub id or local path (loaded with :func:`load_vlm`); or pass ``loaded=(model, processor)``.
        dtype, device: model placement (``"bfloat16"`` on GPUs; ``"auto"`` keeps the checkpoint's).
        max_new_tokens, temperature, top_p, do_sample, seed: sampling; ``max_new_tokens`` per turn
            defaults to the checkpoint's trained ``max_turn_tokens`` (:data:`TRAINING_METADATA`), else
            :data:`DEFAULT_MAX_NEW_TOKENS`.
        max_pixels: per-image pixel budget (images are shrunk to it before the processor); default
            the checkpoint's trained ``max_pixels``, else ``DEFAULT_MAX_PIXELS``.
        generate_kwargs: extra arguments for ``model.generate`` (e.g. a ``logits_processor``).
        prompt_version: the prompt templates (default: the one a trained checkpoint records in
            :data:`TRAINING_METADATA`, else the current one).
    """

    name = "transformers"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        loaded: tuple[Any, Any] | None = None,
        dtype: str = "auto",
        device: str | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 0.7,
        top_p: float = 0.9,
        do_sample: bool = True,
        seed: int | None = None,
        max_pixels: int | None = None,
        generate_kwargs: dict[str, Any] | None = None,
        prompt_version: int | None = None,
    ):
        if loaded is None:
            if model is None:
                raise ValueError("give a model id or path, or loaded=(model, processor)")
            loaded = load_vlm(model, dtype, device)
        self.model, self.processor = loaded
        meta = training_metadata(model) if model is not None else None
        # What runs is what was trained: per-turn tokens and the pixel budget of the checkpoint's training.
        max_new_tokens = max_new_tokens or (meta or {}).get("max_turn_tokens") or DEFAULT_MAX_NEW_TOKENS
        self.max_new_tokens, self.temperature, self.top_p, self.do_sample, self.seed = (
            max_new_tokens,
            temperature,
            top_p,
            do_sample,
            seed,
        )
        self.max_pixels = max_pixels or (meta or {}).get("max_pixels") or DEFAULT_MAX_PIXELS
        self.prompt_version = prompt_version or (meta or {}).get("prompt_version") or PROMPT_VERSION
        self.generate_kwargs = dict(generate_kwargs or {})
        self.last_stats: dict[str, float] = {}
        self._lock = threading.Lock()  # one generate at a time on a shared model

    def prompt_text(self, episode) -> str:
        """The prompt for the episode's next turn (:func:`geolocate.prompts.render.render_prompt`)."""
        return render_prompt(self.processor, episode.state, episode.tools.schemas(), self.prompt_version)

    def inputs(self, episode) -> Any:
        """Processor inputs (token ids, pixel values) for the episode's next turn."""
        text = self.prompt_text(episode)
        images = episode_images(
            episode,
            build_messages(episode.state, episode.tools.schemas(), self.prompt_version),
            self.max_pixels,
        )
        return self.processor(text=[text], images=images or None, return_tensors="pt").to(self.model.device)

    def act(self, episode) -> str:
        import torch

        inputs = self.inputs(episode)
        if self.seed is not None:
            torch.manual_seed(self.seed + len(episode.state.turns))
        sampling = (
            dict(do_sample=self.do_sample, temperature=self.temperature, top_p=self.top_p)
            if self.do_sample
            else dict(do_sample=False)
        )
        t = time.perf_counter()
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                suppress_tokens=vision_token_ids(self.processor.tokenizer),
                **sampling,
                **self.generate_kwargs,
            )
        new = out[0, inputs["input_ids"].shape[1] :]
        self.last_stats = {
            "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "new_tokens": int(new.shape[0]),
            "seconds": time.perf_counter() - t,
        }
        self.last_usage = {
            "prompt_tokens": self.last_stats["prompt_tokens"],
            "completion_tokens": int(new.shape[0]),
        }
        return self.processor.tokenizer.decode(new, skip_special_tokens=True)
