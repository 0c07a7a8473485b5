"""The OSM feature query model: features with tag filters, a spatial scope, proximity relations.

A query is data, never a string: features are sets of checked tag filters (equals, not-equals,
regex, key exists, key absent, numeric comparisons on values with units) and an optional name match;
the scope is a bounding box, a point and radius, or an admin area (name or ISO 3166 code); relations
say "feature A within N metres of feature B" and several of them form a cluster, as Bellingcat's OSM
search does. Distances are true metres (geodesic, WGS84), edge to edge between geometries.

Validation guards the backends: key syntax and operators are checked (the local index also refuses a
key none of its features has, naming the near ones), regexes must compile, the scope must be smaller
than :attr:`QueryLimits.max_area_km2`, and the result count is capped.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from geolocate.tools.errors import ToolInputError

KEY_RE = re.compile(r"^[A-Za-z0-9_:.\-]{1,64}$")
ID_RE = r"^[a-z][a-z0-9_]{0,15}$"

REGEX_MAX_LEN = 200
"""Longest user regex accepted (characters)."""
REGEX_TIMEOUT_S = 0.05
"""Longest one user-regex match may take (seconds): catastrophic backtracking ends the query instead."""


def check_regex(pattern: str, what: str = "regex") -> None:
    """Validate a user regex (length and syntax, with the ``regex`` module that runs it).

    Raises:
        ValueError: too long or invalid (the message quotes it).
    """
    if len(pattern) > REGEX_MAX_LEN:
        raise ValueError(f"{what} longer than {REGEX_MAX_LEN} characters")
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"invalid {what} {pattern!r}: {e}") from None


def regex_search(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """Whether ``pattern`` occurs in ``text``, with a time-out of :data:`REGEX_TIMEOUT_S`.

    >>> regex_search("^Kirch", "Kirchstrasse"), regex_search("platz$", "Kirchstrasse")
    (True, False)

    Raises:
        ToolInputError: the match took too long (nested repetition such as ``(a|aa)+``).
    """
    try:
        flags = regex.IGNORECASE if ignore_case else 0
        return regex.search(pattern, text, flags, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        raise ToolInputError(
            f"the regex {pattern!r} took over {REGEX_TIMEOUT_S:g} s on {text[:40]!r}",
            hint="simplify it: avoid nested repetition such as (a|aa)+ or (a+)+",
        ) from None


Op = Literal["eq", "neq", "regex", "exists", "absent", "lt", "le", "gt", "ge"]
NUMERIC_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class QueryLimits(BaseModel):
    """Guards applied to every query: the largest scope in km^2 (a finite number above 0) and the most
    results (1 or more).

    >>> QueryLimits(max_area_km2=float("nan"))
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for QueryLimits
    max_area_km2
      Input should be a finite number [type=finite_number, input_value=nan, input_type=float]
    ...
    """

    model_config = ConfigDict(allow_inf_nan=False)
    max_area_km2: float = Field(2500.0, gt=0)
    max_results: int = Field(500, ge=1)


class TagFilter(BaseModel):
    """One tag condition. ``value`` is a string for eq/neq/regex, a number for lt/le/gt/ge (compared
    after unit normalisation, see :func:`parse_number`), and absent for exists/absent."""

    model_config = ConfigDict(extra="forbid")
    key: str
    op: Op = "eq"
    value: str | float | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not KEY_RE.match(v):
            raise ValueError(f"tag key {v!r} is not allowed (letters, digits, _ : . - only)")
        return v

    @model_validator(mode="after")
    def _value(self) -> TagFilter:
        if self.op in ("exists", "absent"):
            if self.value is not None:
                raise ValueError(f"op {self.op!r} takes no value")
        elif self.op in NUMERIC_OPS:
            if isinstance(self.value, str):
                n = parse_number(self.value, self.key)
                if n is None:
                    raise ValueError(f"op {self.op!r} needs a number, got {self.value!r}")
                self.value = n
            if not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
                raise ValueError(f"op {self.op!r} needs a number")
            self.value = float(self.value)
        else:
            if self.value is None or (isinstance(self.value, str) and not self.value):
                raise ValueError(f"op {self.op!r} needs a value")
            self.value = str(self.value) if not isinstance(self.value, str) else self.value
            if self.op == "regex":
                check_regex(self.value, "regex")
        return self

    def matches(self, tags: dict[str, str]) -> bool:
        """True when ``tags`` satisfy this filter (Overpass semantics: neq also matches a missing key)."""
        v = tags.get(self.key)
        if self.op == "exists":
            return v is not None
        if self.op == "absent":
            return v is None
        if self.op == "neq":
            return v != self.value
        if v is None:
            return False
        if self.op == "eq":
            return v == self.value
        if self.op == "regex":
            return regex_search(self.value, v)
        n = parse_number(v, self.key)
        if n is None:
            return False
        return {"lt": n < self.value, "le": n <= self.value, "gt": n > self.value, "ge": n >= self.value}[
            self.op
        ]


class FeatureSpec(BaseModel):
    """A kind of map feature: all ``tags`` filters must hold, and all filters of at least one
    ``any_of`` alternative (OR across keys); ``name`` is a case-insensitive regex on ``name`` (and
    ``name:*``); ``kinds`` restricts the geometry type."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field("a", pattern=ID_RE, description="short name used by relations, e.g. 'church'")
    tags: list[TagFilter] = Field(default_factory=list, max_length=8)
    any_of: list[list[TagFilter]] | None = Field(
        None,
        max_length=6,
        description="alternatives: the feature also needs ALL filters of at least ONE of these lists "
        "(shop=bakery OR amenity=cafe)",
    )
    name: str | None = Field(None, max_length=100)
    kinds: list[Literal["point", "line", "area"]] | None = None
    preset: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="instead of tags: a preset (restaurant, cafe, bus_stop, church, petrol_station, rail, "
        "power_line_any, water_tower, sports_pitch, road, building, ...; geolocate osm presets)",
    )
    params: dict[str, Any] | None = Field(
        None, exclude_if=lambda v: v is None, description='the preset\'s parameters, e.g. {"lanes": 4}'
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """``{"id": "a", "preset": "road", "params": {"lanes": 4}}``: a preset (``geolocate osm
        presets``) expanded into its filters; a ``name`` or ``kinds`` given beside it still applies."""
        if not isinstance(data, dict) or "preset" not in data:
            return data
        from geolocate.tools.osm.presets import preset

        data = dict(data)
        name, params = data.pop("preset"), data.pop("params", None) or {}
        try:
            spec = preset(name, **params, **({"id": data["id"]} if "id" in data else {}))
        except (KeyError, ValueError) as e:
            raise ValueError(str(e.args[0] if e.args else e)) from None
        base = spec.model_dump(exclude_none=True)
        return {**base, **{k: v for k, v in data.items() if v is not None}}

    @model_validator(mode="after")
    def _check(self) -> FeatureSpec:
        if not self.tags and not self.name and not self.any_of:
            raise ValueError(f"feature {self.id!r} needs at least one tag filter or a name")
        for alt in self.any_of or []:
            if not alt or all(t.op in ("neq", "absent") for t in alt):
                raise ValueError(f"feature {self.id!r}: every any_of alternative needs a positive filter")
        if (
            self.tags
            and all(t.op in ("neq", "absent") for t in self.tags)
            and not self.name
            and not self.any_of
        ):
            raise ValueError(
                f"feature {self.id!r} has only negative filters: add a positive one (eq, regex, exists, "
                "a comparison)"
            )
        if self.name:
            check_regex(self.name, "name regex")
        return self

    def branches(self) -> list[list[TagFilter]]:
        """The feature as an OR of AND-lists: ``tags`` plus each ``any_of`` alternative (one list
        without alternatives). Backends that cannot express OR query each branch and merge."""
        return [self.tags + alt for alt in self.any_of] if self.any_of else [list(self.tags)]

    def matches(self, tags: dict[str, str], kind: str | None = None) -> bool:
        if self.kinds is not None and kind is not None and kind not in self.kinds:
            return False
        if not all(t.matches(tags) for t in self.tags):
            return False
        if self.any_of and not any(all(t.matches(tags) for t in alt) for alt in self.any_of):
            return False
        if self.name:
            names = [v for k, v in tags.items() if k == "name" or k.startswith("name:")]
            return any(regex_search(self.name, n, ignore_case=True) for n in names)
        return True


class BBoxScope(BaseModel):
    """A bounding box in WGS84 degrees."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["bbox"] = "bbox"
    south: float = Field(ge=-90, le=90)
    west: float = Field(ge=-180, le=180)
    north: float = Field(ge=-90, le=90)
    east: float = Field(ge=-180, le=180)

    @model_validator(mode="after")
    def _order(self) -> BBoxScope:
        if self.south >= self.north or self.west >= self.east:
            raise ValueError(
                "bbox needs south < north and west < east (antimeridian-crossing boxes are not supported)"
            )
        return self


class AroundScope(BaseModel):
    """A circle: (lat, lon) in WGS84 degrees and a radius in metres."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["around"] = "around"
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=100_000)


class AreaScope(BaseModel):
    """An administrative area by name and/or ISO 3166 code (``LI``, ``FI``, ``CH-ZH``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["area"] = "area"
    name: str | None = Field(None, max_length=100)
    iso: str | None = Field(None, pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    admin_level: int | None = Field(None, ge=2, le=11)

    @model_validator(mode="after")
    def _any(self) -> AreaScope:
        if not self.name and not self.iso:
            raise ValueError("area scope needs a name or an ISO 3166 code")
        return self


Scope = Annotated[BBoxScope | AroundScope | AreaScope, Field(discriminator="kind")]


class Relation(BaseModel):
    """Feature ``a`` lies within ``max_m`` metres (edge to edge) of feature ``b`` (and at least ``min_m``)."""

    model_config = ConfigDict(extra="forbid")
    a: str
    b: str
    max_m: float = Field(gt=0, le=5000)
    min_m: float = Field(0.0, ge=0)


class FeatureQuery(BaseModel):
    """Features, a scope, relations between the features, and a result limit.

    >>> q = FeatureQuery.model_validate({
    ...     "features": [{"id": "church", "tags": [{"key": "amenity", "value": "place_of_worship"}]},
    ...                  {"id": "pharmacy", "tags": [{"key": "amenity", "value": "pharmacy"}]}],
    ...     "relations": [{"a": "church", "b": "pharmacy", "max_m": 200}],
    ...     "scope": {"kind": "bbox", "south": 60.15, "west": 24.9, "north": 60.2, "east": 25.0}})
    >>> [f.id for f in q.features], q.relations[0].max_m
    (['church', 'pharmacy'], 200.0)
    """

    model_config = ConfigDict(extra="forbid")
    features: list[FeatureSpec] = Field(min_length=1, max_length=4)
    relations: list[Relation] = Field(default_factory=list, max_length=6)
    scope: Scope
    limit: int = Field(50, ge=1)
    offset: int = Field(0, ge=0, description="skip this many distinct places (pagination)")

    @model_validator(mode="after")
    def _graph(self) -> FeatureQuery:
        ids = [f.id for f in self.features]
        if len(set(ids)) != len(ids):
            raise ValueError(f"feature ids must be unique, got {ids}")
        for r in self.relations:
            for x in (r.a, r.b):
                if x not in ids:
                    raise ValueError(f"relation names unknown feature {x!r}; features are {ids}")
            if r.a == r.b:
                raise ValueError("a relation needs two different features")
            if r.min_m >= r.max_m:
                raise ValueError("min_m must be below max_m")
        if len(ids) > 1:
            seen, frontier = {ids[0]}, [ids[0]]
            while frontier:
                x = frontier.pop()
                for r in self.relations:
                    for u, v in ((r.a, r.b), (r.b, r.a)):
                        if u == x and v not in seen:
                            seen.add(v)
                            frontier.append(v)
            if seen != set(ids):
                raise ValueError(
                    f"features {sorted(set(ids) - seen)} are not related to {ids[0]!r}: add relations or "
                    "run separate queries"
                )
        return self

    def spec(self, fid: str) -> FeatureSpec:
        return next(f for f in self.features if f.id == fid)


class Feature(BaseModel):
    """A map feature: ``id`` is the OSM type letter and id (``n123``, ``w45``, ``r6``); (lat, lon) a
    representative point in degrees; ``geometry`` GeoJSON ((lon, lat) order, as GeoJSON demands)."""

    id: str
    tags: dict[str, str]
    lat: float
    lon: float
    kind: Literal["point", "line", "area"]
    geometry: dict[str, Any] | None = None
    clipped: bool = Field(
        False,
        exclude_if=lambda v: not v,
        description="cut by the extract's edge: the geometry is the part inside it",
    )


class Match(BaseModel):
    """One answer: a feature per query feature id, and the edge-to-edge distance in metres of every
    relation (key ``"a~b"``)."""

    features: dict[str, Feature]
    distances_m: dict[str, float] = {}


class Place(BaseModel):
    """A distinct candidate place: one feature of the query's first feature, with the nearest
    supporting feature of each other one (the combination with the least summed distance) and how
    many combinations support it."""

    feature: Feature
    support: dict[str, Feature] = {}
    distances_m: dict[str, float] = {}
    combinations: int = Field(1, description="supporting combinations found (counted up to 1,000)")

    @property
    def total_m(self) -> float:
        return float(sum(self.distances_m.values()))


class QueryResult(BaseModel):
    """A query's answer: ``places`` (distinct first features, ranked by summed distance, a page of
    ``total_places`` from ``offset``) and ``matches`` (combinations, capped at the limit; ``truncated``
    when more exist)."""

    matches: list[Match]
    truncated: bool = False
    backend: str
    scope_km2: float | None = None
    places: list[Place] = []
    total_places: int = 0
    offset: int = 0
    notes: list[str] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="why a feature could find nothing here (a key in OSM use that the extract lacks)",
    )


NUMBER_RE = re.compile(r"^\s*(-?\d+(?:[.,]\d+)?)\s*([a-zA-Z/'\"]*)")


def parse_number(value: str, key: str = "") -> float | None:
    """A number from an OSM tag value, normalised to the unit OSM assumes for the key.

    ``maxspeed``/``minspeed``: km/h (``mph`` and ``knots`` converted); ``height``, ``width``,
    ``length``, ``ele``…: metres (``ft``, ``'``, and feet-inches ``6'6"`` converted). Lists
    (``3;4``) give the first value. Non-numeric values (``none``, ``signals``) give None.

    >>> parse_number("50 mph", "maxspeed"), parse_number("3;4", "lanes"), parse_number("6'6\\"", "height")
    (80.4672, 3.0, 1.9812)
    >>> parse_number("walk", "maxspeed") is None
    True
    """
    v = value.split(";")[0].strip()
    m = re.match(r"^\s*(\d+)'\s*(\d+(?:\.\d+)?)\"\s*$", v)
    if m:
        return round((float(m.group(1)) * 12 + float(m.group(2))) * 0.0254, 6)
    m = NUMBER_RE.match(v)
    if not m:
        return None
    n = float(m.group(1).replace(",", "."))
    unit = m.group(2).lower()
    if unit in ("mph",):
        n *= 1.609344
    elif unit in ("knots", "kn"):
        n *= 1.852
    elif unit in ("ft", "feet", "'"):
        n *= 0.3048
    elif unit in ("km",):
        n *= 1000.0 if key not in ("maxspeed", "minspeed") else 1.0
    elif unit not in ("", "m", "km/h", "kmh", "t", "kg"):
        return None
    return round(n, 6)


_OPERATORS = [
    ("!=", "neq"),
    (">=", "ge"),
    ("<=", "le"),
    ("=", "eq"),
    ("~", "regex"),
    (">", "gt"),
    ("<", "lt"),
]
"""The short form's operators, longest first so that ``>=`` is not read as ``>``."""
_OPERATOR_CHARS = set("=!~<>")


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` where it is not inside double quotes (a backslash escapes a quote
    or a backslash inside them). Quotes are kept: :func:`unquote` removes them from a value.

    >>> split_outside_quotes('name~"^(Kirch|Dom)",amenity=cafe|shop=bakery', "|")
    ['name~"^(Kirch|Dom)",amenity=cafe', 'shop=bakery']

    Raises:
        ValueError: a quote that is never closed.
    """
    parts, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise ValueError(f"a double quote is not closed in {text!r}")
    parts.append("".join(cur))
    return parts


def unquote(value: str) -> str:
    """A value without its surrounding double quotes, escapes undone (``"a\\"b"`` -> ``a"b``).

    >>> unquote('"a,b|c"'), unquote("plain")
    ('a,b|c', 'plain')
    """
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] == '"':
        v, out, escaped = v[1:-1], [], False
        for ch in v:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return v


def parse_tag_spec(text: str):
    """A list of TagFilter from 'k=v,k!=v,k~re,k,!k,k>=4' (the CLI's short form).

    Filters are separated by commas. A value holding a comma, a ``|`` or leading or trailing spaces
    is written in double quotes (``name~"^(Kirch|Dom)"``, ``name="Bar, Grill"``); inside quotes a
    backslash escapes a quote. An operator must stand alone: ``amenity==cafe`` and ``k=~v`` are
    errors, not a search for the value ``=cafe``.

    >>> [f.model_dump() for f in parse_tag_spec("amenity=pharmacy,lanes>=4,!disused")]
    [{'key': 'amenity', 'op': 'eq', 'value': 'pharmacy'}, {'key': 'lanes', 'op': 'ge', 'value': 4.0},
     {'key': 'disused', 'op': 'absent', 'value': None}]

    Raises:
        ValueError (pydantic's ValidationError is one): a filter that cannot be read, a bad key, an
            operator written twice, a regex that does not compile, a quote never closed.
    """
    out = []
    for part in (p.strip() for p in split_outside_quotes(text, ",")):
        if not part:
            continue
        if part.startswith("!") and not any(sym in part for sym, _ in _OPERATORS if sym != "!="):
            out.append(TagFilter(key=part[1:], op="absent"))
            continue
        found = [(part.find(sym), -len(sym), sym, op) for sym, op in _OPERATORS if sym in part]
        if found:  # the leftmost operator (the longest at that place): name~a=b is a regex "a=b"
            i, _n, sym, op = min(found)
            k, v = part[:i], part[i + len(sym) :]
            if v[:1] in _OPERATOR_CHARS or k[-1:] in _OPERATOR_CHARS:
                raise ValueError(
                    f"cannot read the tag filter {part!r}: write one operator (= != ~ > >= < <=); "
                    "quote a value that starts with one of these signs"
                )
            out.append(TagFilter(key=k.strip(), op=op, value=unquote(v)))
        else:
            if not KEY_RE.match(part):
                raise ValueError(f"cannot read the tag filter {part!r}")
            out.append(TagFilter(key=part, op="exists"))
    return out


def feature_from_text(fid: str, text: str):
    """A FeatureSpec from the CLI's short form; ``|`` separates alternatives (OR across keys), except
    inside double quotes (a regex alternative: ``name~"^(Kirch|Dom)"``).

    >>> f = feature_from_text("f1", "shop=bakery|amenity=cafe")
    >>> f.tags, [[t.key for t in alt] for alt in f.any_of]
    ([], [['shop'], ['amenity']])
    """
    alts = [parse_tag_spec(a) for a in split_outside_quotes(text, "|")]
    if len(alts) == 1:
        return FeatureSpec(id=fid, tags=alts[0])
    return FeatureSpec(id=fid, any_of=alts)
