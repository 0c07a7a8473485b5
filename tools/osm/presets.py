"""Presets: the features investigators ask for most, as FeatureSpec builders.

>>> preset("road", lanes=4).tags[1].model_dump()
{'key': 'lanes', 'op': 'ge', 'value': 4.0}
>>> sorted(PRESETS)[:4]
['amenity', 'bakery', 'bank', 'bar']
>>> preset("cafe").tags[0].model_dump()
{'key': 'amenity', 'op': 'eq', 'value': 'cafe'}
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from geolocate.tools.osm.query import FeatureSpec, TagFilter, parse_tag_spec

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


CATEGORIES: dict[str, tuple[str, list[str], list[str] | None]] = {
    # name: (what it is, alternatives in the CLI's short form (OR), geometry kinds or None for all)
    "restaurant": ("restaurants", ["amenity=restaurant"], None),
    "cafe": ("cafés", ["amenity=cafe"], None),
    "fast_food": ("fast-food places", ["amenity=fast_food"], None),
    "bar": ("bars and pubs", ["amenity=bar", "amenity=pub"], None),
    "bakery": ("bakeries", ["shop=bakery"], None),
    "supermarket": ("supermarkets", ["shop=supermarket"], None),
    "convenience": ("convenience stores", ["shop=convenience"], None),
    "pharmacy": ("pharmacies", ["amenity=pharmacy", "shop=chemist"], None),
    "hospital": ("hospitals", ["amenity=hospital"], None),
    "school": ("schools", ["amenity=school"], None),
    "university": ("universities and colleges", ["amenity=university", "amenity=college"], None),
    "bank": ("banks and ATMs", ["amenity=bank", "amenity=atm"], None),
    "post_office": ("post offices", ["amenity=post_office"], None),
    "police": ("police stations", ["amenity=police"], None),
    "fire_station": ("fire stations", ["amenity=fire_station"], None),
    "hotel": (
        "hotels, guest houses and hostels",
        ["tourism=hotel", "tourism=guest_house", "tourism=hostel"],
        None,
    ),
    "church": ("churches", ["amenity=place_of_worship,religion=christian", "building=church"], None),
    "mosque": ("mosques", ["amenity=place_of_worship,religion=muslim", "building=mosque"], None),
    "temple": (
        "temples",
        ["amenity=place_of_worship,religion~^(buddhist|hindu|shinto)$", "building=temple"],
        None,
    ),
    "synagogue": ("synagogues", ["amenity=place_of_worship,religion=jewish", "building=synagogue"], None),
    "cemetery": ("cemeteries and graveyards", ["landuse=cemetery", "amenity=grave_yard"], None),
    "bus_stop": ("bus stops", ["highway=bus_stop", "public_transport=platform,bus=yes"], None),
    "tram_stop": ("tram stops", ["railway=tram_stop"], None),
    "train_station": ("railway stations and halts", ["railway=station", "railway=halt"], None),
    "parking": ("car parks", ["amenity=parking"], None),
    "petrol_station": ("petrol stations", ["amenity=fuel"], None),
    "charging_station": ("charging stations", ["amenity=charging_station"], None),
    "traffic_signals": ("traffic lights", ["highway=traffic_signals"], ["point"]),
    "roundabout": ("roundabouts", ["junction=roundabout"], None),
    "rail": ("railway tracks", ["railway~^(rail|light_rail|subway|narrow_gauge)$"], ["line"]),
    "tram_track": ("tram tracks", ["railway=tram"], ["line"]),
    "bridge_way": (
        "bridges (as ways)",
        ["bridge~^(yes|viaduct|aqueduct|boardwalk|cantilever|covered|movable)$"],
        None,
    ),
    "power_line_any": ("power lines and minor lines", ["power=line", "power=minor_line"], ["line"]),
    "power_tower": ("power towers and poles", ["power=tower", "power=pole"], ["point"]),
    "water_tower": ("water towers", ["man_made=water_tower"], None),
    "tower": ("towers and masts", ["man_made=tower", "man_made=mast"], None),
    "chimney": ("chimneys", ["man_made=chimney"], None),
    "wind_turbine": ("wind turbines", ["power=generator,generator:source=wind"], None),
    "lighthouse": ("lighthouses", ["man_made=lighthouse"], None),
    "sports_pitch": ("sports pitches", ["leisure=pitch"], None),
    "stadium": ("stadiums and sports centres", ["leisure=stadium", "leisure=sports_centre"], None),
    "swimming_pool": ("swimming pools", ["leisure=swimming_pool"], None),
    "playground": ("playgrounds", ["leisure=playground"], None),
    "golf_course": ("golf courses", ["leisure=golf_course"], None),
    "forest": ("forests and woods", ["landuse=forest", "natural=wood"], ["area"]),
    "tree": ("single trees", ["natural=tree"], ["point"]),
    "lake": ("lakes and ponds", ["natural=water", "water~^(lake|pond|reservoir)$"], ["area"]),
    "stream": ("streams and ditches", ["waterway~^(stream|ditch|drain)$"], ["line"]),
    "beach": ("beaches", ["natural=beach"], None),
    "peak": ("mountain peaks", ["natural=peak"], ["point"]),
    "industrial": ("industrial land", ["landuse=industrial"], ["area"]),
    "farmland": ("farmland", ["landuse=farmland"], ["area"]),
    "bench": ("benches", ["amenity=bench"], None),
    "fountain": ("fountains", ["amenity=fountain"], None),
    "monument": ("monuments and memorials", ["historic=monument", "historic=memorial"], None),
    "castle": ("castles and fortifications", ["historic=castle", "historic=fort"], None),
    "toilets": ("public toilets", ["amenity=toilets"], None),
    "billboard": ("billboards", ["advertising=billboard"], None),
    "crossing": ("pedestrian crossings", ["highway=crossing"], ["point"]),
    "speed_camera": ("speed cameras", ["highway=speed_camera"], ["point"]),
}
"""Fixed categories, the kinds of Bellingcat's OSM Search and the features investigators ask for most,
with the tags the OpenStreetMap wiki documents for each (Map features, Key:amenity, Key:shop,
Tag:amenity=place_of_worship, Key:power, Key:man_made, Key:leisure, ...). Each is a preset too."""


def category(name: str, id: str | None = None) -> FeatureSpec:
    """The FeatureSpec of a fixed :data:`CATEGORIES` entry (its alternatives ORed).

    Raises:
        KeyError: unknown category.
    """
    _what, alts, kinds = CATEGORIES[name]
    branches = [parse_tag_spec(a) for a in alts]
    spec = {"id": id or name, "kinds": kinds}
    if len(branches) == 1:
        return FeatureSpec(**spec, tags=branches[0])
    return FeatureSpec(**spec, any_of=branches)


_BUILDERS: dict[str, Callable[..., FeatureSpec]] = {
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
"""Presets with parameters (functions); :data:`CATEGORIES` adds the fixed ones."""
PRESETS: dict[str, Callable[..., FeatureSpec]] = dict(_BUILDERS)


for _name in CATEGORIES:
    PRESETS.setdefault(_name, lambda id=None, _n=_name: category(_n, id))


BELLINGCAT_FILE = Path(__file__).parent / "bellingcat-presets.json"
"""Bellingcat's OSM Search presets (``frontend/src/assets/queries.js``, MIT; see
``bellingcat-osm-search-LICENSE``), as data."""
OSM_KEYS_FILE = Path(__file__).parent / "osm-keys.json"
"""Tag keys in common OSM use: those the iD editor's presets and fields write
(``@openstreetmap/id-tagging-schema`` 7.2.0, ISC; see ``osm-keys-LICENSE``)."""
_BELLINGCAT_KINDS = {"point": ["point"], "line": ["line"], "polygon": ["area"], "any": None}
_BELLINGCAT_OPS = {"=": "eq", "!=": "neq", ">=": "ge", "<=": "le", ">": "gt", "<": "lt"}


def _slug(name: str) -> str:
    """``Building (5-9 stories)`` -> ``building_5_9_stories``."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@functools.cache
def bellingcat_presets() -> dict[str, tuple[str, FeatureSpec]]:
    """Bellingcat's OSM Search presets as FeatureSpecs, by preset name ``bellingcat:<slug>``
    (``bellingcat:road_motorway``): (their display name, the spec). Their geometry types map to
    kinds (point, line, polygon -> area, any -> all); OR presets become ``any_of`` alternatives, AND
    presets a list of filters; ``is not null`` is ``exists``; ``cast_to_float`` comparisons are
    numeric (:func:`geolocate.tools.osm.query.parse_number`)."""
    import json

    out: dict[str, tuple[str, FeatureSpec]] = {}
    for p in json.loads(BELLINGCAT_FILE.read_text(encoding="utf-8"))["presets"]:
        filters = []
        for f in p["filters"]:
            if f["comparison"] == "is not null":
                filters.append(_t(f["parameter"], "exists"))
            else:
                filters.append(_t(f["parameter"], _BELLINGCAT_OPS[f["comparison"]], f["value"]))
        name = f"bellingcat:{_slug(p['name'])}"
        kinds = _BELLINGCAT_KINDS[p["type"]]
        if p["method"] == "AND" or len(filters) == 1:
            spec = FeatureSpec(id="a", tags=filters, kinds=kinds)
        else:
            spec = FeatureSpec(id="a", any_of=[[f] for f in filters], kinds=kinds)
        out[name] = (p["name"], spec)
    return out


@functools.cache
def known_keys() -> frozenset[str]:
    """Tag keys in common OpenStreetMap use: the presets' (ours and Bellingcat's) and the iD
    editor's (:data:`OSM_KEYS_FILE`). A query naming one that an extract lacks finds nothing there
    (not an error)."""
    import json

    keys = set(json.loads(OSM_KEYS_FILE.read_text(encoding="utf-8"))["keys"])
    return frozenset(keys | preset_keys())


@functools.cache
def preset_keys() -> frozenset[str]:
    """Every tag key the presets use (real OSM keys, whatever an extract holds)."""
    keys: set[str] = set()
    for name in PRESETS:
        try:
            spec = preset(name) if name not in ("amenity",) else preset(name, kind="x")
        except ValueError:
            continue
        keys |= {t.key for branch in spec.branches() for t in branch}
    return frozenset(keys)


def describe(name: str) -> tuple[str, list[str]]:
    """(what the preset finds, its parameters as ``name: type = default``) for listings.

    Raises:
        KeyError: unknown preset.
    """
    import inspect

    f = PRESETS[name]
    if name.startswith("bellingcat:"):
        display, spec = bellingcat_presets()[name]
        alts = [" & ".join(_filter_text(t) for t in b) for b in spec.branches()]
        kinds = f" ({', '.join(spec.kinds)})" if spec.kinds else ""
        return f"Bellingcat OSM Search: {display}: {' | '.join(alts)}{kinds}", []
    if name in CATEGORIES and name not in _BUILDERS:
        what, alts, kinds = CATEGORIES[name]
        return f"{what}: {' | '.join(alts)}" + (f" ({', '.join(kinds)})" if kinds else ""), []
    doc = (inspect.getdoc(f) or name.replace("_", " ")).split("\n")[0]
    params = []
    for p in inspect.signature(f).parameters.values():
        if p.name == "id":
            continue
        ann = getattr(p.annotation, "__name__", None) or str(p.annotation).replace("typing.", "")
        params.append(
            f"{p.name}: {ann}" + ("" if p.default is inspect.Parameter.empty else f" = {p.default!r}")
        )
    return doc, params


def _filter_text(t: TagFilter) -> str:
    sym = {"eq": "=", "neq": "!=", "regex": "~", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
    if t.op == "exists":
        return t.key
    if t.op == "absent":
        return f"!{t.key}"
    v = f"{t.value:g}" if isinstance(t.value, float) else t.value
    return f"{t.key}{sym[t.op]}{v}"


def preset(name: str, **params) -> FeatureSpec:
    """The FeatureSpec of preset ``name`` with its parameters (``id`` names the feature).

    Raises:
        KeyError: unknown preset (the message lists them).
        ValueError: a parameter the preset does not take, or a missing one (the message lists those
            it takes).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    try:
        return PRESETS[name](**params)
    except TypeError:
        _doc, takes = describe(name)
        given = ", ".join(k for k in params if k != "id") or "none"
        raise ValueError(
            f"preset {name!r} takes {', '.join(takes) or 'no parameters'} (given: {given}); "
            f"e.g. --preset {name} " + " ".join(f"{t.split(':')[0]}=..." for t in takes[:2])
        ) from None


def _bellingcat(name: str, id: str | None = None) -> FeatureSpec:
    spec = bellingcat_presets()[name][1]
    return spec.model_copy(update={"id": id}) if id else spec


for _name in bellingcat_presets():
    PRESETS[_name] = functools.partial(_bellingcat, _name)
