"""Render an Episode into chat messages (the only implementation; inference and training share it).

Messages use the content-part layout of the OpenAI / Hugging Face chat APIs::

    [{"role": "system", "content": [{"type": "text", "text": ...}]},
     {"role": "user", "content": [{"type": "image", "ref": "photo"}, {"type": "text", "text": ...}]},
     {"role": "assistant", "content": [{"type": "text", "text": <turn 0 completion>}]},
     {"role": "user", "content": [<tool responses as quoted JSON>, {"type": "image", "ref": "e3"}, <status>]},
     ...]

Image parts carry a ``ref`` ("photo", or the evidence id of a zoom crop); :func:`image_refs` lists
them in order so a policy can pass the matching PIL images. Tool observations are rendered by
:func:`render_observation`: quoted JSON inside ``<tool_response>``, never instructions.
Qwen2.5-VL's stock chat template has no tool role, so tools are described in the system prompt and
observations arrive as user messages.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jinja2

from geolocate.agent.stages import LEVELS, Level, next_level
from geolocate.agent.state import EpisodeState

PROMPT_VERSION = 2
"""The prompt templates in use (``prompts/v<N>/``). v1 listed each tool's arguments as a JSON Schema
dump (12.6k characters of system prompt for 7 tools); v2 as one compact line per tool
(:func:`compact_parameters`). A trained checkpoint records its version and keeps it."""
PROMPT_VERSIONS = (1, 2)


def compact_parameters(schema: dict) -> str:
    """A JSON Schema object as one line a model reads easily: ``name: type`` per argument, ``?`` for
    optional ones, ``= default`` where set, then its description.

    >>> compact_parameters({"properties": {"query": {"type": "string", "description": "a name"},
    ...     "limit": {"type": "integer", "default": 5}}, "required": ["query"]})
    'query: string - a name; limit: integer? = 5'
    """
    defs = schema.get("$defs", {})
    props, required = schema.get("properties", {}), set(schema.get("required", []))
    parts = []
    for name, p in props.items():
        s = f"{name}: {_type_of(p, defs)}" + ("" if name in required else "?")
        if p.get("default") is not None:
            s += f" = {json.dumps(p['default'], ensure_ascii=False)}"
        if p.get("description"):
            s += f" - {p['description']}"
        parts.append(s)
    return "; ".join(parts) or "none"


def _type_of(p: dict, defs: dict, depth: int = 0) -> str:
    if "$ref" in p:
        p = defs.get(p["$ref"].split("/")[-1], {})
    if "enum" in p:
        return "|".join(json.dumps(v) for v in p["enum"])
    if "anyOf" in p or "oneOf" in p:
        kinds = [_type_of(x, defs, depth) for x in p.get("anyOf", p.get("oneOf")) if x.get("type") != "null"]
        return "|".join(dict.fromkeys(kinds)) or "null"
    t = p.get("type")
    if t == "array":
        if "prefixItems" in p:
            return "[" + ", ".join(_type_of(x, defs, depth) for x in p["prefixItems"]) + "]"
        return f"list[{_type_of(p.get('items', {}), defs, depth)}]"
    if t == "object" or "properties" in p:
        if depth >= 2 or not p.get("properties"):
            return "object"
        req = set(p.get("required", []))
        inner = ", ".join(
            f"{k}{'' if k in req else '?'}: {_type_of(v, defs, depth + 1)}"
            for k, v in p["properties"].items()
        )
        return "{" + inner + "}"
    return t or "any"


def render_observation(obs_kind: str, text: str, evidence_id: str | None = None) -> str:
    """How an observation is shown to a model: quoted data inside ``<tool_response>``, never as
    instructions. JSON-encoding the text escapes anything that looks like grammar tags.

    >>> render_observation("tool_result", "text: '<answer>'", "e1")
    '<tool_response>{"id": "e1", "kind": "tool_result",
    "data": "text: \\'\\\\u003canswer\\\\u003e\\'"}</tool_response>'
    """
    payload = (
        {"id": evidence_id, "kind": obs_kind, "data": text}
        if evidence_id
        else {"kind": obs_kind, "data": text}
    )
    body = json.dumps(payload, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<tool_response>{body}</tool_response>"


@functools.cache
def _env(version: int = PROMPT_VERSION) -> jinja2.Environment:
    if version not in PROMPT_VERSIONS:
        raise ValueError(f"unknown prompt version {version}; known: {', '.join(map(str, PROMPT_VERSIONS))}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / f"v{version}")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.filters["compact"] = compact_parameters
    return env


def _render(name: str, version: int = PROMPT_VERSION, **kw: Any) -> str:
    return _env(version).get_template(name).render(**kw).strip()


def system_prompt(tool_schemas: list[dict], budget, version: int = PROMPT_VERSION) -> str:
    """The system prompt: the Chain of Region, the grammar, the tools (from the registry's schemas),
    in prompt ``version`` (:data:`PROMPT_VERSIONS`).

    Raises:
        ValueError: an unknown version.
    """
    return _render(
        "system.j2",
        version,
        tools=tool_schemas,
        order=" -> ".join(lv.value for lv in LEVELS),
        levels=", ".join(f'"{lv.value}"' for lv in LEVELS),
        budget=budget,
    )


def _status(state: EpisodeState, t: int, version: int = PROMPT_VERSION) -> str:
    """The status line after turn ``t``, from what was recorded then (so earlier messages never change
    and each turn's prompt is a prefix of the next one's)."""
    chain = state.turns[t].chain_after
    nxt = next_level(Level(c["level"]) for c in chain)
    return _render(
        "status.j2",
        version,
        chain=chain,
        next_step=f"commit '{nxt.value}' (or investigate further)"
        if nxt and nxt is not Level.COORDINATES
        else "answer",
        turns_left=max(0, state.budget.max_turns - (t + 1)),
        tool_calls_left=max(0, state.budget.max_tool_calls - sum(e.turn <= t for e in state.evidence)),
    )


def build_messages(
    state: EpisodeState, tool_schemas: list[dict], version: int = PROMPT_VERSION
) -> list[dict[str, Any]]:
    """Chat messages for the policy's next turn, from the episode state alone, in prompt ``version``.

    Deterministic: the same state gives byte-identical messages (training re-renders with it).
    """
    system = system_prompt(tool_schemas, state.budget, version)
    task = _render("task.j2", version, width=state.image.width, height=state.image.height)
    first: list[dict[str, Any]] = [{"type": "image", "ref": "photo"}, {"type": "text", "text": task}]
    if state.media:  # a case: its images (at most MAX_CASE_IMAGES, spread evenly) and the list of media
        first = [{"type": "image", "ref": ref} for ref in case_image_refs(state.media)]
        first.append({"type": "text", "text": task + "\n" + case_text(state.media)})
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": first},
    ]
    zoom_ok = {e.id for e in state.evidence if e.ok and e.tool == "zoom"}
    for t, turn in enumerate(state.turns):
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": turn.completion}]})
        parts: list[dict[str, Any]] = []
        for obs in turn.observations:
            parts.append({"type": "text", "text": render_observation(obs.kind, obs.text, obs.evidence_id)})
            if obs.evidence_id in zoom_ok:
                parts.append({"type": "image", "ref": obs.evidence_id})
        parts.append({"type": "text", "text": _status(state, t, version)})
        msgs.append({"role": "user", "content": parts})
    return msgs


MAX_CASE_IMAGES = 8
"""Images of a case shown in the first prompt at most (spread evenly over its photos and keyframes);
the tools' ``media`` argument reaches all of them."""


def case_image_refs(media: list[dict[str, Any]]) -> list[str]:
    """The ids of the case images the first prompt shows (photos and keyframes, at most
    :data:`MAX_CASE_IMAGES`, evenly spread, in order)."""
    ids: list[str] = []
    for m in media:
        ids += [f["id"] for f in m["frames"]] if m.get("kind") == "video" else [m["id"]]
    if len(ids) <= MAX_CASE_IMAGES:
        return ids
    step = (len(ids) - 1) / (MAX_CASE_IMAGES - 1)
    return [ids[round(i * step)] for i in range(MAX_CASE_IMAGES)]


def case_text(media: list[dict[str, Any]]) -> str:
    """The case as a list of media for the planner: ids, kinds, keyframe ids and times, what the
    images shown are, and that tools take ``media`` ids."""
    lines = [
        f"This is a case of {len(media)} media of one investigation (assume one place unless the evidence "
        "says otherwise):"
    ]
    for m in media:
        if m.get("kind") == "video":
            frames = ", ".join(f["id"] for f in m["frames"])
            dur = f"{m['duration_s']:.1f} s" if m.get("duration_s") is not None else "unknown length"
            lines.append(f"- {m['id']}: video, {dur}, keyframes {frames}")
        else:
            lines.append(f"- {m['id']}: photo")
    lines.append(
        f"The images above are {', '.join(case_image_refs(media))}. Tools that look at the images take "
        '"media" (or "medium") ids: a photo (m1), a video (m2: all its keyframes) or one keyframe (m2@4.0s).'
    )
    return "\n".join(lines)


def image_refs(messages: list[dict[str, Any]]) -> list[str]:
    """The ``ref`` of every image part, in order of appearance."""
    return [p["ref"] for m in messages for p in m["content"] if p.get("type") == "image"]


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in the form Hugging Face chat templates expect (image parts without our ``ref``)."""
    return [
        {
            "role": m["role"],
            "content": [
                {"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                for p in m["content"]
            ],
        }
        for m in messages
    ]


def chat_text(processor, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The prompt text of ``messages`` under the model's own chat template (the one rendering used by
    the transformers policy and by training)."""
    return processor.apply_chat_template(
        template_messages(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def render_prompt(
    processor, state: EpisodeState, tool_schemas: list[dict], version: int = PROMPT_VERSION
) -> str:
    """THE prompt text for the next turn of an episode: :func:`build_messages` under the model's chat
    template. The transformers policy and GRPO rollouts both call this, so what is trained is what runs;
    the prompt after turn k starts with the prompt before it plus turn k's completion."""
    return chat_text(processor, build_messages(state, tool_schemas, version))


def fit_pixels(image, max_pixels: int):
    """``image`` shrunk (aspect kept, Lanczos) to at most ``max_pixels`` pixels; unchanged if smaller."""
    from PIL import Image

    w, h = image.size
    if w * h <= max_pixels:
        return image
    scale = (max_pixels / (w * h)) ** 0.5
    return image.resize((max(28, int(w * scale)), max(28, int(h * scale))), Image.Resampling.LANCZOS)


def episode_images(episode, messages: list[dict[str, Any]], max_pixels: int) -> list:
    """The PIL images for the image parts of ``messages`` (the photo, zoom crops), each within budget."""
    out = []
    for ref in image_refs(messages):
        if ref == "photo":
            im = episode.image.image
        elif ref.startswith("m"):  # a photo or keyframe of a case
            im = episode.ctx.image_by_id(ref).image
        else:
            im = episode.artifact(ref)
        if im is not None:
            out.append(fit_pixels(im, max_pixels))
    return out
