"""The one action grammar every policy speaks (render and parse), now and in training.

A policy turn is text::

    <think>free reasoning</think>
    <tool_call>{"name": "ocr", "arguments": {}}</tool_call>
    <tool_call>{"name": "commit", "arguments": {"level": "country", "value": "NO", "confidence": 0.8,
    "evidence": ["e2"]}}</tool_call>

or::

    <think>...</think>
    <answer>{"lat": 59.91, "lon": 10.75, "radius_km": 10, "localizability": 0.8}</answer>

``<tool_call>`` blocks with a JSON object ``{"name", "arguments"}`` are the convention Qwen-family
models emit. Two names are control actions of the Chain-of-Region machine rather than tools:
``commit`` (level, value, confidence 0..1, evidence ids) and ``backtrack`` (level). One or more tool
calls, or one answer, per turn; not both.

Malformed output never raises: :func:`parse_completion` returns the problems, which the Episode turns
into a ``parse_error`` observation the model can recover from.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from geolocate.tools.errors import format_validation_error

CONTROL_NAMES = ("commit", "backtrack")


class ToolCall(BaseModel):
    kind: Literal["tool_call"] = "tool_call"
    name: str
    arguments: dict[str, Any] = {}


class Commit(BaseModel):
    kind: Literal["commit"] = "commit"
    level: str
    value: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(
        min_length=1, description="evidence ids (e1, e2, ...) or 'image' for what the photo shows"
    )


class Backtrack(BaseModel):
    kind: Literal["backtrack"] = "backtrack"
    level: str
    reason: str = ""


class Answer(BaseModel):
    kind: Literal["answer"] = "answer"
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    radius_km: float = Field(gt=0.0, le=20_038.0)
    localizability: float = Field(ge=0.0, le=1.0)


Action = Annotated[ToolCall | Commit | Backtrack | Answer, Field(discriminator="kind")]
_ACTION = TypeAdapter(Action)

FORMAT_HELP = (
    'Expected: <think>...</think> then one or more <tool_call>{"name": ..., "arguments": '
    "{...}}</tool_call> "
    'blocks (tools, or "commit"/"backtrack"), or one <answer>{"lat": ..., "lon": ..., "radius_km": ..., '
    '"localizability": ...}</answer>.'
)


class ParsedTurn(BaseModel):
    """Result of parsing one completion: the reasoning, the actions, and any problems found."""

    thought: str | None = None
    actions: list[Action] = []
    errors: list[str] = []


_THINK = regex.compile(r"<think>(.*?)</think>", regex.DOTALL)
_BLOCK = regex.compile(r"<(tool_call|answer)>(.*?)</\1>", regex.DOTALL)
_OPEN = regex.compile(r"<(tool_call|answer)>")


def _first_json_object(text: str) -> Any:
    """Decode the JSON object in ``text``, tolerating surrounding whitespace or code fences."""
    t = text.strip()
    if t.startswith("```"):
        t = regex.sub(r"^```(?:json)?\s*|\s*```$", "", t)
    return json.loads(t)


def _errors_of(e: ValidationError) -> str:
    return format_validation_error(e)


_GLOBE_FIELD = regex.compile(r"^\s*(country|city)\s*[:：]\s*(.+?)\s*$", regex.IGNORECASE | regex.MULTILINE)


def globe_answer(body: str) -> Answer | None:
    """GLOBE's answer format (``country: France\\ncity: Paris``, as the released GLOBE-Qwen2.5VL-7B
    writes it) geocoded offline with GeoNames: the city's position (radius 25 km) or, with a country
    only, its capital (radius: the country's size); None when the text is not in that format or names
    no known country.

    >>> a = globe_answer("country: France\\ncity: Paris")
    >>> round(a.lat, 1), round(a.lon, 1), a.radius_km
    (48.9, 2.3, 25.0)
    """
    import math

    from geolocate.tools.geonames import get_db, normalize_name

    fields = {m.group(1).lower(): m.group(2) for m in _GLOBE_FIELD.finditer(body)}
    if "country" not in fields:
        return None
    db = get_db()
    cc = db.resolve_country(fields["country"])
    country = db.countries.get(cc) if cc else None
    if country is None or country.lat is None:
        return None
    if fields.get("city"):
        hits = db.places_by_key(normalize_name(fields["city"]), cc=cc)
        if hits:
            p = hits[0][0]
            return Answer(lat=p.lat, lon=p.lon, radius_km=25.0, localizability=0.5)
    radius = round(max(50.0, math.sqrt(max(country.area_km2, 1.0) / math.pi)), 1)
    return Answer(lat=country.lat, lon=country.lon, radius_km=radius, localizability=0.3)


def parse_completion(text: str) -> ParsedTurn:
    """Parse a policy's completion into actions. Never raises.

    >>> p = parse_completion(
    ...     '<think>sign says Vaduz</think>'
    ...     '<tool_call>{"name": "gazetteer", "arguments": {"query": "Vaduz"}}</tool_call>'
    ... )
    >>> p.thought, p.actions[0].name, p.errors
    ('sign says Vaduz', 'gazetteer', [])
    >>> parse_completion("I think it is Paris").errors[0][:22]
    'no action in the outpu'
    """
    if not isinstance(text, str):
        return ParsedTurn(errors=[f"completion is not text ({type(text).__name__}). {FORMAT_HELP}"])
    m = _THINK.search(text)
    thought = m.group(1).strip() if m else None
    actions: list[Action] = []
    errors: list[str] = []
    blocks = list(_BLOCK.finditer(text))
    n_open = len(_OPEN.findall(text))
    if n_open > len(blocks):
        errors.append(f"{n_open - len(blocks)} unclosed <tool_call> or <answer> tag(s)")
    kinds = {b.group(1) for b in blocks}
    if "answer" in kinds and "tool_call" in kinds:
        errors.append("a turn has either tool calls or an answer, not both")
        return ParsedTurn(thought=thought, errors=errors)
    if sum(b.group(1) == "answer" for b in blocks) > 1:
        errors.append("more than one <answer>")
        return ParsedTurn(thought=thought, errors=errors)
    for i, b in enumerate(blocks, 1):
        tag, body = b.group(1), b.group(2)
        try:
            obj = _first_json_object(body)
        except json.JSONDecodeError as e:
            if tag == "answer" and (globe := globe_answer(body)) is not None:
                actions.append(globe)
                continue
            errors.append(f"<{tag}> #{i}: invalid JSON ({e.msg} at char {e.pos})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"<{tag}> #{i}: expected a JSON object, got {type(obj).__name__}")
            continue
        try:
            if tag == "answer":
                actions.append(_ACTION.validate_python({**obj, "kind": "answer"}))
                continue
            name, args = obj.get("name"), obj.get("arguments", {})
            if isinstance(args, str):  # some models emit arguments as a JSON string
                args = json.loads(args or "{}")
            if not isinstance(name, str) or not name:
                errors.append(f'<tool_call> #{i}: missing "name"')
                continue
            if not isinstance(args, dict):
                errors.append(f'<tool_call> #{i}: "arguments" must be an object')
                continue
            if name in CONTROL_NAMES:
                actions.append(_ACTION.validate_python({**args, "kind": name}))
            else:
                actions.append(ToolCall(name=name, arguments=args))
        except ValidationError as e:
            errors.append(f"<{tag}> #{i} ({obj.get('name', tag)}): {_errors_of(e)}")
        except json.JSONDecodeError as e:
            errors.append(f'<tool_call> #{i}: "arguments" is a string but not JSON ({e.msg})')
    if not blocks and not errors:
        errors.append("no action in the output")
    return ParsedTurn(thought=thought, actions=actions, errors=errors)


def render_action(action: Action) -> str:
    """The canonical text of one action (inverse of :func:`parse_completion` for a single action).

    >>> render_action(Answer(lat=1.5, lon=2.0, radius_km=10, localizability=0.5))
    '<answer>{"lat": 1.5, "lon": 2.0, "radius_km": 10.0, "localizability": 0.5}</answer>'
    """
    if isinstance(action, Answer):
        return "<answer>" + json.dumps(action.model_dump(exclude={"kind"}), ensure_ascii=False) + "</answer>"
    if isinstance(action, ToolCall):
        payload = {"name": action.name, "arguments": action.arguments}
    else:
        payload = {"name": action.kind, "arguments": action.model_dump(exclude={"kind"})}
    return "<tool_call>" + json.dumps(payload, ensure_ascii=False) + "</tool_call>"


def render_turn(thought: str | None, actions: list[Action]) -> str:
    """A full completion: ``<think>`` then the rendered actions, one per line."""
    parts = [f"<think>{thought}</think>"] if thought else []
    parts.extend(render_action(a) for a in actions)
    return "\n".join(parts)
