"""Presets: the features investigators ask for most, as FeatureSpec builders.

>>> preset("road", lanes=4).tags[1].model_dump()
{'key': 'lanes', 'op': 'ge', 'value': 4.0}
>>> sorted(PRESETS)[:4]
['amenity', 'bridge', 'building', 'fuel']
"""

from __future__ import annotations

from collections.abc import Callable

from geolocate.tools.osm.query import FeatureSpec, TagFilter

ROAD_CLASSES = (
    "^(motorway|trunk|primary|secondary|tertiary|unclassified|residential|service|living_street)(_link)?$"
)


def _t(key: str, op: str = "eq", value=None) -> TagFilter:
    return TagFilter(key=key, op=op, value=value)


def road(
    lanes: int | None = None, surface: str | None = None, oneway: bool | None = None, id: str = "road"
) -> FeatureSpec:
    """Roads (highway of a road class); ``lanes`` is a minimum; ``surface`` e.g. asphalt, gravel."""
    tags = [_t("highway", "regex", ROAD_CLASSES)]
    if lanes is not None:
        tags.append(_t("lanes", "ge", lanes))
    if surface:
        tags.append(_t("surface", "eq", surface))
    if oneway is not None:
        tags.append(_t("oneway", "eq", "yes") if oneway else _t("oneway", "neq", "yes"))
    return FeatureSpec(id=id, tags=tags, kinds=["line"])


def building(levels: int | None = None, use: str | None = None, id: str = "building") -> FeatureSpec:
    """Buildings; ``levels`` is a minimum of building:levels; ``use`` the building value (church,
    house...)."""
    tags = [_t("building", "eq", use) if use else _t("building", "exists")]
    if levels is not None:
        tags.append(_t("building:levels", "ge", levels))
    return FeatureSpec(id=id, tags=tags)


def place_of_worship(religion: str | None = None, id: str = "worship") -> FeatureSpec:
    tags = [_t("amenity", "eq", "place_of_worship")] + ([_t("religion", "eq", religion)] if religion else [])
    return FeatureSpec(id=id, tags=tags)


def shop(
    kind: str | None = None, brand: str | None = None, name: str | None = None, id: str = "shop"
) -> FeatureSpec:
    tags = [_t("shop", "eq", kind) if kind else _t("shop", "exists")] + (
        [_t("brand", "regex", f"(?i){brand}")] if brand else []
    )
    return FeatureSpec(id=id, tags=tags, name=name)


def amenity(kind: str, name: str | None = None, id: str = "amenity") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("amenity", "eq", kind)], name=name)


def railway(id: str = "railway") -> FeatureSpec:
    return FeatureSpec(
        id=id, tags=[_t("railway", "regex", "^(rail|light_rail|tram|subway|narrow_gauge)$")], kinds=["line"]
    )


def station(id: str = "station") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("railway", "regex", "^(station|halt|tram_stop)$")])


def power_line(id: str = "power_line") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("power", "regex", "^(line|minor_line)$")], kinds=["line"])


def pylon(id: str = "pylon") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("power", "eq", "tower")], kinds=["point"])


def bridge(id: str = "bridge") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("bridge", "exists"), _t("bridge", "neq", "no")])


def tunnel(id: str = "tunnel") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("tunnel", "exists"), _t("tunnel", "neq", "no")])


def water(id: str = "water") -> FeatureSpec:
    """Lakes, ponds, riverbanks (natural=water and water areas)."""
    return FeatureSpec(id=id, tags=[_t("natural", "eq", "water")])


def river(id: str = "river") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("waterway", "regex", "^(river|stream|canal)$")], kinds=["line"])


def park(id: str = "park") -> FeatureSpec:
    return FeatureSpec(id=id, tags=[_t("leisure", "eq", "park")])


def fuel(brand: str | None = None, id: str = "fuel") -> FeatureSpec:
    return FeatureSpec(
        id=id, tags=[_t("amenity", "eq", "fuel")] + ([_t("brand", "regex", f"(?i){brand}")] if brand else [])
    )


PRESETS: dict[str, Callable[..., FeatureSpec]] = {
    "road": road,
    "building": building,
    "place_of_worship": place_of_worship,
    "shop": shop,
    "amenity": amenity,
    "railway": railway,
    "station": station,
    "power_line": power_line,
    "pylon": pylon,
    "bridge": bridge,
    "tunnel": tunnel,
    "water": water,
    "river": river,
    "park": park,
    "fuel": fuel,
}


def preset(name: str, **params) -> FeatureSpec:
    """The FeatureSpec of preset ``name`` with its parameters.

    Raises:
        KeyError: unknown preset (the message lists them).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name](**params)
