"""The ``openai_compatible`` policy: any OpenAI-compatible chat-completions endpoint as the planner
(``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``, SGLang, llama.cpp server, a hosted API).

Messages come from :func:`geolocate.prompts.render.build_messages` (the same rendering as in-process models);
images are sent as base64 JPEG data URLs within the pixel budget. Uses the ``openai`` client for HTTP,
time-outs and retries; a per-endpoint semaphore caps concurrent requests (parallel evaluations).
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

from geolocate.prompts.render import PROMPT_VERSION, build_messages, episode_images, image_refs

STOP = ("</answer>", "<tool_response>")
"""Stop sequences: nothing useful follows an answer, and a model that starts writing a
``<tool_response>`` is inventing the tools' results."""
_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SEM_LOCK = threading.Lock()


def data_url(image, quality: int = 90) -> str:
    """A PIL image as a ``data:image/jpeg;base64,...`` URL."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def openai_messages(messages: list[dict[str, Any]], images: list) -> list[dict[str, Any]]:
    """Chat-completions messages: image parts become ``image_url`` parts carrying ``images`` in order."""
    it = iter(images)
    out = []
    for m in messages:
        parts = []
        for p in m["content"]:
            if p["type"] == "image":
                parts.append({"type": "image_url", "image_url": {"url": data_url(next(it))}})
            else:
                parts.append({"type": "text", "text": p["text"]})
        if m["role"] in ("system", "assistant") and all(p["type"] == "text" for p in parts):
            out.append({"role": m["role"], "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": m["role"], "content": parts})
    return out


class OpenAICompatiblePolicy:
    """A served model as the planner.

    Args:
        base_url: server root with ``/v1`` (e.g. ``http://localhost:8000/v1``).
        model: the served model name.
        api_key: key if the server wants one (vLLM: ``--api-key``); ``"EMPTY"`` otherwise.
        timeout_s, max_retries: per request (the client retries time-outs, 429 and 5xx with backoff).
        max_concurrency: requests in flight at once to this endpoint, across threads.
        max_tokens, temperature, top_p, seed: sampling.
        max_pixels: per-image pixel budget.
    """

    name = "openai_compatible"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        timeout_s: float = 120.0,
        max_retries: int = 2,
        max_concurrency: int = 8,
        max_tokens: int = 768,
        temperature: float = 0.7,
        top_p: float = 0.9,
        seed: int | None = None,
        max_pixels: int = 1280 * 28 * 28,
        prompt_version: int = PROMPT_VERSION,
    ):
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries)
        self.model, self.max_tokens, self.temperature, self.top_p, self.seed, self.max_pixels = (
            model,
            max_tokens,
            temperature,
            top_p,
            seed,
            max_pixels,
        )
        with _SEM_LOCK:
            self._sem = _SEMAPHORES.setdefault(
                (base_url, max_concurrency), threading.BoundedSemaphore(max_concurrency)
            )
        self.last_stats: dict[str, Any] = {}
        self.token_field = "max_tokens"
        self.prompt_version = prompt_version  # newer OpenAI-style APIs want max_completion_tokens instead

    def request(self, episode) -> dict[str, Any]:
        """The chat-completions request body for the episode's next turn."""
        messages = build_messages(episode.state, episode.tools.schemas(), self.prompt_version)
        images = episode_images(episode, messages, self.max_pixels)
        assert len(images) == len(image_refs(messages))
        body: dict[str, Any] = dict(
            model=self.model,
            messages=openai_messages(messages, images),
            temperature=self.temperature,
            top_p=self.top_p,
            stop=list(STOP),
        )
        body[self.token_field] = self.max_tokens
        if self.seed is not None:
            body["seed"] = self.seed + len(episode.state.turns)
        return body

    def _create(self, body: dict[str, Any]):
        """One request; a server that refuses ``max_tokens`` (newer OpenAI-style APIs) is asked again
        with ``max_completion_tokens``, and so is every later request of this policy."""
        import openai

        try:
            with self._sem:
                return self.client.chat.completions.create(**body)
        except openai.BadRequestError as e:
            if self.token_field != "max_tokens" or "max_tokens" not in str(e):
                raise
            self.token_field = "max_completion_tokens"
            body = {k: v for k, v in body.items() if k != "max_tokens"}
            body["max_completion_tokens"] = self.max_tokens
            with self._sem:
                return self.client.chat.completions.create(**body)

    def act(self, episode) -> str:
        """The next completion. Raises the client's errors (time-out, HTTP status) after its retries;
        the agent records them and goes on. Reasoning the server returns apart (``reasoning_content``,
        vLLM's reasoning parsers) becomes the turn's ``<think>`` block; ``finish_reason`` goes into the
        turn's usage (``length``: the turn was cut at ``max_tokens``)."""
        body = self.request(episode)
        resp = self._create(body)
        choice = resp.choices[0]
        self.last_stats = {"usage": resp.usage.model_dump() if resp.usage else None}
        usage: dict[str, Any] = {"finish_reason": choice.finish_reason or "unknown"}
        if resp.usage is not None:
            usage["prompt_tokens"] = int(resp.usage.prompt_tokens or 0)
            usage["completion_tokens"] = int(resp.usage.completion_tokens or 0)
        self.last_usage = usage
        text = choice.message.content or ""
        reasoning = getattr(choice.message, "reasoning_content", None) or getattr(
            choice.message, "reasoning", None
        )
        if reasoning and "<think>" not in text:
            text = f"<think>{reasoning.strip()}</think>\n{text}"
        if "<answer>" in text and "</answer>" not in text and choice.finish_reason == "stop":
            text += "</answer>"  # the stop sequence itself is not returned
        return text
