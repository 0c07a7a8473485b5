"""What an analyst can do in an investigator session, as data: review decisions and moves.

Each move becomes evidence in the Episode's log with an id of its own (``a1``, ``a2``...), its author
and its UTC time, so a report shows who did what and when, and commits can cite it. The one place
that applies a move is :meth:`geolocate.agent.episode.Episode.apply_move`; the CLI and the web
workbench only build these models.

Review decisions answer a pending commitment (or the final answer) at a review point:
:class:`Approve`, :class:`Reject` (the rejected value becomes a constraint: it is never proposed
again), :class:`Edit` (the analyst's value replaces the planner's). Moves can be made at any pause:
:class:`Hint` (free text the planner reads, never mixed with text read from the photo),
:class:`Constrain` (a country, "not in" a country, a bbox, a point and radius),
:class:`ManualTool` (any tool run by hand), :class:`BacktrackTo` (undo levels), :class:`Conclude`
(end the session on this branch).

>>> Constraint(kind="bbox", bbox=(47.0, 9.4, 47.3, 9.7)).allows_point(47.14, 9.52)
True
>>> Constraint(kind="not_country", country="cn").allows_country("CN")
False
"""

from __future__ import annotations

import functools
import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from geolocate.tools.geo import HALF_CIRCUMFERENCE_KM, circle_geometry, haversine_km

COUNTRIES = Path(__file__).parent / "web" / "static" / "vendor" / "countries-110m.geojson"
"""Natural Earth 1:110m admin-0 countries (public domain; see ``web/static/vendor/README.md``)."""


@functools.cache
def countries() -> dict:
    """The vendored countries FeatureCollection (GeoJSON, (lon, lat), ``properties.iso_a2``)."""
    return json.loads(COUNTRIES.read_text(encoding="utf-8"))


@functools.cache
def country_shape(cc: str):
    """The shapely (multi)polygon of country ``cc`` (ISO alpha-2) at 1:110m, in (lon, lat); for a
    country too small for that scale, a point at its capital (GeoNames); None if unknown."""
    from shapely.geometry import Point, shape

    for f in countries()["features"]:
        if f["properties"].get("iso_a2") == cc:
            return shape(f["geometry"])
    from geolocate.tools.geonames import get_db

    c = get_db().countries.get(cc)
    return Point(c.lon, c.lat) if c is not None and c.lat is not None else None


@functools.lru_cache(maxsize=64)
def _region_shape(geometry_json: str):
    """A region constraint's geometry as a prepared shapely shape (cached by its JSON)."""
    from shapely import prepare
    from shapely.geometry import shape

    g = shape(json.loads(geometry_json))
    prepare(g)
    return g


REVIEWABLE = ("continent", "country", "region", "city", "coordinates", "answer")
"""What ``--review`` may name (``all`` means every one of them)."""


def default_author() -> str:
    """The analyst's name for the evidence log: ``$GEOLOCATE_AUTHOR``, else the login name."""
    import os

    try:
        return os.environ.get("GEOLOCATE_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "analyst"


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-11-29T22:50:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Constraint(BaseModel):
    """A restriction on where the photo can be: every later commit and the answer must respect it.

    Kinds: ``country`` (the photo is in this ISO 3166-1 alpha-2 country), ``not_country`` (it is
    not), ``bbox`` (south, west, north, east in WGS84 degrees), ``circle`` (within ``radius_km`` of
    (lat, lon), great-circle), ``region`` (inside a GeoJSON geometry: what the sun or time-zone tool
    computed, or a shape drawn on the map). ``level``/``value`` record a rejected review value ("not
    this city").
    """

    model_config = ConfigDict(allow_inf_nan=False)
    kind: Literal["country", "not_country", "bbox", "circle", "region", "not_value"]
    country: str | None = Field(None, description="ISO 3166-1 alpha-2")
    bbox: tuple[float, float, float, float] | None = Field(None, description="south, west, north, east")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    radius_km: float | None = Field(
        None, description="km, above 0 and at most half the Earth's circumference"
    )
    level: str | None = None
    value: str | None = None
    geometry: dict | None = Field(
        None, description="region: a GeoJSON (Multi)Polygon geometry in (lon, lat), e.g. the sun tool's band"
    )
    source: str | None = Field(
        None, description="region: what drew it, e.g. 'sun e5'; circle: why, e.g. a related session"
    )

    @field_validator("country")
    @classmethod
    def _iso(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import pycountry

        c = pycountry.countries.get(alpha_2=v.strip().upper()) or pycountry.countries.get(
            alpha_3=v.strip().upper()
        )
        if c is None:
            try:
                c = pycountry.countries.lookup(v.strip())
            except LookupError:
                raise ValueError(
                    f"unknown country {v!r}: give an ISO 3166-1 code such as NO or a name"
                ) from None
        return c.alpha_2

    @field_validator("radius_km")
    @classmethod
    def _radius(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= HALF_CIRCUMFERENCE_KM:
            raise ValueError(
                f"the radius must be above 0 km and at most half the Earth's circumference "
                f"({HALF_CIRCUMFERENCE_KM:.1f} km), got {v:g}"
            )
        return v

    @model_validator(mode="after")
    def _complete(self) -> Constraint:
        need = {
            "country": ("country",),
            "not_country": ("country",),
            "bbox": ("bbox",),
            "circle": ("lat", "lon", "radius_km"),
            "region": ("geometry",),
            "not_value": ("level", "value"),
        }[self.kind]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.kind} constraint needs {', '.join(missing)}")
        if self.bbox is not None:
            s, w, n, e = self.bbox
            if not (-90 <= s < n <= 90 and -180 <= w <= 180 and -180 <= e <= 180 and w != e):
                raise ValueError("bbox must be south < north in [-90, 90] and west, east in [-180, 180]")
        return self

    def region(self):
        """The bbox or circle as a shapely polygon in (lon, lat); None for other kinds."""
        from shapely.geometry import box

        if self.kind == "bbox":
            s, w, n, e = self.bbox
            return box(w, s, e, n) if w <= e else box(w, s, 180, n).union(box(-180, s, e, n))
        if self.kind == "circle":
            return circle_geometry(self.lat, self.lon, self.radius_km)
        if self.kind == "region":
            return _region_shape(json.dumps(self.geometry, sort_keys=True))
        return None

    def allows_country(self, cc: str | None) -> bool:
        """False when the country ``cc`` (alpha-2) is ruled out by this constraint: named out, or (for
        a bbox or circle) not touching it at all (Natural Earth 1:110m outlines)."""
        if cc is None:
            return self.kind != "country"
        if self.kind in ("bbox", "circle", "region"):
            shape = country_shape(cc.upper())
            return shape is None or shape.intersects(self.region())
        if self.kind == "country":
            return cc.upper() == self.country
        if self.kind == "not_country":
            return cc.upper() != self.country
        if self.kind == "not_value" and self.level == "country":
            return cc.upper() != (self.value or "").upper()
        return True

    def allows_point(self, lat: float, lon: float) -> bool:
        """False when (lat, lon) lies outside the bbox or circle (other kinds allow every point)."""
        if self.kind == "bbox":
            s, w, n, e = self.bbox
            in_lon = w <= lon <= e if w <= e else (lon >= w or lon <= e)  # a bbox may cross the antimeridian
            return s <= lat <= n and in_lon
        if self.kind == "circle":
            return haversine_km(lat, lon, self.lat, self.lon) <= self.radius_km
        if self.kind == "region":
            from shapely.geometry import Point

            return self.region().intersects(Point(lon, lat))
        return True

    def allows_points(self, lat, lon):
        """:meth:`allows_point` for arrays of (lat, lon) (WGS84 degrees): a bool array."""
        import numpy as np

        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        if self.kind == "bbox":
            s, w, n, e = self.bbox
            in_lon = (lon >= w) & (lon <= e) if w <= e else (lon >= w) | (lon <= e)
            return (lat >= s) & (lat <= n) & in_lon
        if self.kind == "circle":
            return np.asarray(haversine_km(lat, lon, self.lat, self.lon)) <= self.radius_km
        if self.kind == "region":
            import shapely

            return shapely.intersects_xy(self.region(), lon, lat)
        return np.ones(lat.shape, dtype=bool)

    def rules_out(self, level: str, value: str, code: str | None = None) -> bool:
        """True for a rejected value at ``level`` (compared case-insensitively with value or code)."""
        if self.kind != "not_value" or self.level != level:
            return False
        v = (self.value or "").casefold()
        return v in {value.casefold(), (code or "").casefold()}

    def describe(self) -> str:
        """One line for people and models."""
        if self.kind == "country":
            return f"the photo is in {self.country}"
        if self.kind == "not_country":
            return f"the photo is not in {self.country}"
        if self.kind == "bbox":
            return "the photo is inside the box (S, W, N, E) = ({:g}, {:g}, {:g}, {:g})".format(*self.bbox)
        if self.kind == "circle":
            why = f" ({self.source})" if self.source else ""
            return f"the photo is within {self.radius_km:g} km of ({self.lat:g}, {self.lon:g}){why}"
        if self.kind == "region":
            return f"the photo is inside the region of {self.source or 'a drawn shape'}"
        return f"the {self.level} is not {self.value}"


def _not_blank(v: str, what: str) -> str:
    v = v.strip()
    if not v:
        raise ValueError(f"the {what} is blank: write something")
    return v


class _Move(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)
    author: str = Field(default_factory=default_author, max_length=200)


class Approve(_Move):
    kind: Literal["approve"] = "approve"


class Reject(_Move):
    kind: Literal["reject"] = "reject"
    reason: str = Field(max_length=5000, description="why: the planner sees it")

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        return _not_blank(v, "reason")


class Edit(_Move):
    kind: Literal["edit"] = "edit"
    value: str = Field(max_length=500, description="the analyst's value for the pending level")
    confidence: float = Field(0.9, ge=0.0, le=1.0)

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        return _not_blank(v, "value")


class Hint(_Move):
    kind: Literal["hint"] = "hint"
    text: str = Field(max_length=5000)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _not_blank(v, "hint")


class Constrain(_Move):
    kind: Literal["constrain"] = "constrain"
    constraint: Constraint


class ManualTool(_Move):
    kind: Literal["tool"] = "tool"
    name: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = {}


class BacktrackTo(_Move):
    kind: Literal["backtrack"] = "backtrack"
    level: str = Field(max_length=50)


class Conclude(_Move):
    kind: Literal["conclude"] = "conclude"
    note: str = Field("", max_length=5000)


Move = Annotated[
    Approve | Reject | Edit | Hint | Constrain | ManualTool | BacktrackTo | Conclude,
    Field(discriminator="kind"),
]
MOVE = TypeAdapter(Move)
"""Validates a move from a dict (``MOVE.validate_python({"kind": "hint", "text": "..."})``)."""

DECISIONS = ("approve", "reject", "edit")
"""Moves that answer a pending review (the others keep it pending)."""


def parse_review_levels(spec: str | None) -> list[str]:
    """``--review country,city`` / ``all`` / ``none`` to a list of reviewable names.

    >>> parse_review_levels("country, answer"), parse_review_levels("all")[-1], parse_review_levels(None)
    (['country', 'answer'], 'answer', [])

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if not spec or spec.strip() in ("", "none"):
        return []
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if "all" in names:
        return list(REVIEWABLE)
    bad = [n for n in names if n not in REVIEWABLE]
    if bad:
        raise ValueError(f"unknown review level(s) {bad}; valid: {', '.join(REVIEWABLE)}, all, none")
    return list(dict.fromkeys(names))
