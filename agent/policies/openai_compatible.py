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

from geolocate.prompts.render import build_messages, episode_images, image_refs

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

    def request(self, episode) -> dict[str, Any]:
        """The chat-completions request body for the episode's next turn."""
        messages = build_messages(episode.state, episode.tools.schemas())
        images = episode_images(episode, messages, self.max_pixels)
        assert len(images) == len(image_refs(messages))
        body: dict[str, Any] = dict(
            model=self.model,
            messages=openai_messages(messages, images),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
        )
        if self.seed is not None:
            body["seed"] = self.seed + len(episode.state.turns)
        return body

    def act(self, episode) -> str:
        """The next completion. Raises the client's errors (time-out, HTTP status) after its retries;
        the agent records them and goes on."""
        body = self.request(episode)
        with self._sem:
            resp = self.client.chat.completions.create(**body)
        self.last_stats = {"usage": resp.usage.model_dump() if resp.usage else None}
        if resp.usage is not None:
            self.last_usage = {
                "prompt_tokens": int(resp.usage.prompt_tokens or 0),
                "completion_tokens": int(resp.usage.completion_tokens or 0),
            }
        return resp.choices[0].message.content or ""
