"""What every OSM backend shares: scope geometry and its area guard, projection to true metres, and
the evaluation of proximity relations over candidate features (one implementation, so the local and
the Overpass backends give the same answers for the same candidates).

Metres: geometries are projected to an azimuthal equidistant projection on the WGS84 ellipsoid
(pyproj) centred on the scope; within the largest allowed scope (2,500 km^2, ~50 km from the centre)
distances there differ from geodesic ones by less than 1e-4 relative. Relations are measured edge to
edge between the geometries (``shapely.distance``), never between centroids.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Point, box, mapping

from geolocate.tools.errors import ToolInputError
from geolocate.tools.osm.query import (
    AroundScope,
    BBoxScope,
    Feature,
    FeatureQuery,
    Match,
    Place,
    QueryLimits,
    QueryResult,
)


class ScopeTooLargeError(ToolInputError):
    """The query's scope exceeds the area guard."""


@dataclass
class Candidate:
    """A feature with its WGS84 geometry (shapely, (lon, lat) coordinates)."""

    feature: Feature
    geom: shapely.Geometry


@dataclass
class ResolvedScope:
    """A scope as a WGS84 polygon (lon, lat), its bbox (south, west, north, east), centre and area."""

    polygon: shapely.Geometry
    bbox: tuple[float, float, float, float]
    center: tuple[float, float]
    area_km2: float
    radius_m: float | None = None


@functools.cache
def _geod():
    from pyproj import Geod

    return Geod(ellps="WGS84")


def geodesic_area_km2(polygon: shapely.Geometry) -> float:
    """Area of a WGS84 polygon on the ellipsoid, km^2 (pyproj ``Geod.geometry_area_perimeter``)."""
    area, _ = _geod().geometry_area_perimeter(polygon)
    return abs(area) / 1e6


@functools.lru_cache(maxsize=64)
def _aeqd(lat: float, lon: float):
    from pyproj import Transformer

    return Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m", always_xy=True
    )


def projector(lat: float, lon: float):
    """Function mapping a WGS84 shapely geometry to metres in an AEQD projection centred at (lat, lon)."""
    tr = _aeqd(round(lat, 4), round(lon, 4))

    def xy_to_m(xy: np.ndarray) -> np.ndarray:
        if len(xy) == 1:  # pyproj wants scalars, not 1-element arrays, for a single point
            return np.array([tr.transform(float(xy[0, 0]), float(xy[0, 1]))])
        return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

    def project(g: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(g, xy_to_m)

    return project


AUTHALIC_RADIUS_KM = 6371.0072
"""Radius of the sphere with the WGS84 ellipsoid's area (km)."""


def bbox_area_km2(south: float, west: float, north: float, east: float) -> float:
    """Area of a latitude/longitude box, km^2, on the authalic sphere: R^2 * dlon * (sin north - sin
    south); ``west > east`` crosses the antimeridian, and a box of 360 degrees or more is the whole
    band. (A polygon area routine sees a world box as a degenerate ring of area 0.)

    >>> round(bbox_area_km2(-90, -180, 90, 180)), round(bbox_area_km2(0, 170, 1, -170))
    (510065625, 247274)
    """
    dlon = east - west
    if dlon <= 0:
        dlon += 360.0
    dlon = min(dlon, 360.0)
    return (
        AUTHALIC_RADIUS_KM**2
        * math.radians(dlon)
        * (
            math.sin(math.radians(max(-90.0, min(90.0, north))))
            - math.sin(math.radians(max(-90.0, min(90.0, south))))
        )
    )


def resolve_bbox_or_around(scope: BBoxScope | AroundScope) -> ResolvedScope:
    if isinstance(scope, BBoxScope):
        poly = box(scope.west, scope.south, scope.east, scope.north)
        return ResolvedScope(
            poly,
            (scope.south, scope.west, scope.north, scope.east),
            ((scope.south + scope.north) / 2, (scope.west + scope.east) / 2),
            bbox_area_km2(scope.south, scope.west, scope.north, scope.east),
        )
    from geolocate.tools.geo import bbox_around

    b = bbox_around(scope.lat, scope.lon, scope.radius_m / 1000.0)
    poly = box(b.west, b.south, b.east, b.north)
    return ResolvedScope(
        poly,
        (b.south, b.west, b.north, b.east),
        (scope.lat, scope.lon),
        math.pi * (scope.radius_m / 1000.0) ** 2,
        scope.radius_m,
    )


def check_area(scope: ResolvedScope, limits: QueryLimits) -> None:
    """Raises ScopeTooLargeError when the scope is over the area guard."""
    if scope.area_km2 > limits.max_area_km2:
        raise ScopeTooLargeError(
            f"scope is {scope.area_km2:,.0f} km^2, over the limit of {limits.max_area_km2:,.0f} km^2",
            hint="narrow it: a smaller bbox, a point with a radius, or a smaller admin area",
        )


def in_scope(
    scope: ResolvedScope, project, geoms_m: list[shapely.Geometry], geoms: list[shapely.Geometry]
) -> np.ndarray:
    """Boolean mask of geometries that intersect the scope (true metres for a radius scope)."""
    if not geoms:
        return np.zeros(0, dtype=bool)
    if scope.radius_m is not None:
        return shapely.dwithin(np.array(geoms_m, dtype=object), Point(0, 0), scope.radius_m)
    return shapely.intersects(np.array(geoms, dtype=object), scope.polygon)


def sort_candidates(cands: list[Candidate]) -> list[Candidate]:
    """Candidates in OSM order (nodes, ways, relations; then by id), so every backend lists matches alike."""
    order = {"n": 0, "w": 1, "r": 2}
    return sorted(
        cands,
        key=lambda c: (
            order.get(c.feature.id[0], 3),
            int(c.feature.id[1:]) if c.feature.id[1:].isdigit() else 0,
        ),
    )


PairDistances = dict[tuple[str, str], dict[tuple[int, int], float]]
"""For each relation (a, b): {(index in a's candidates, index in b's candidates): metres} of the pairs
that satisfy it."""


def pair_distances_shapely(
    query: FeatureQuery, candidates: dict[str, list[Candidate]], scope: ResolvedScope
) -> PairDistances:
    """Relation pairs by ``shapely`` in the scope's AEQD metres (edge to edge), via an STRtree."""
    project = projector(*scope.center)
    proj = {fid: [project(c.geom) for c in cands] for fid, cands in candidates.items()}
    out: PairDistances = {}
    for r in query.relations:
        pairs: dict[tuple[int, int], float] = {}
        if proj[r.a] and proj[r.b]:
            tree = shapely.STRtree(np.array(proj[r.b], dtype=object))
            for i, g in enumerate(proj[r.a]):
                for j in tree.query(g, predicate="dwithin", distance=r.max_m):
                    d = float(shapely.distance(g, proj[r.b][int(j)]))
                    if r.min_m <= d <= r.max_m:
                        pairs[(i, int(j))] = round(d, 2)
        out[(r.a, r.b)] = pairs
    return out


def _matcher(query: FeatureQuery, candidates: dict[str, list[Candidate]], pairs: PairDistances):
    """The combination search, indexed once: ``combos(k, cap)`` lists up to ``cap`` combinations
    (placed candidate indices per feature id, distances per relation) whose first feature is
    candidate ``k`` of the query's first feature."""
    ids = [f.id for f in query.features]
    # Place features breadth-first from the first, so each new one has a placed neighbour.
    order = [ids[0]]
    while len(order) < len(ids):
        for r in query.relations:
            for u, v in ((r.a, r.b), (r.b, r.a)):
                if u in order and v not in order:
                    order.append(v)
    # Index the pairs by (relation, side, placed index) -> {free index: distance}.
    by_side: dict[tuple[str, str, int], dict[int, float]] = {}
    for (a, b), ps in pairs.items():
        for (i, j), d in ps.items():
            by_side.setdefault((f"{a}~{b}", "a", i), {})[j] = d
            by_side.setdefault((f"{a}~{b}", "b", j), {})[i] = d

    def combos(k: int, cap: int) -> list[tuple[dict[str, int], dict[str, float]]]:
        found: list[tuple[dict[str, int], dict[str, float]]] = []

        def extend(i: int, placed: dict[str, int], dists: dict[str, float]) -> bool:
            if i == len(order):
                found.append((placed, dists))
                return len(found) >= cap
            fid = order[i]
            options: dict[int, dict[str, float]] | None = None
            for r in query.relations:
                key = f"{r.a}~{r.b}"
                if r.a == fid and r.b in placed:
                    near = by_side.get((key, "b", placed[r.b]), {})
                elif r.b == fid and r.a in placed:
                    near = by_side.get((key, "a", placed[r.a]), {})
                else:
                    continue
                new = {j: {key: d} for j, d in near.items()}
                options = (
                    new
                    if options is None
                    else {j: {**options[j], **v} for j, v in new.items() if j in options}
                )
            for j in sorted(options or {}):
                if extend(i + 1, {**placed, fid: j}, {**dists, **options[j]}):
                    return True
            return False

        extend(1, {order[0]: k}, {})
        return found

    return combos


def join(
    query: FeatureQuery, candidates: dict[str, list[Candidate]], pairs: PairDistances, limit: int
) -> tuple[list[Match], bool]:
    """All combinations of candidates (one per feature) that satisfy every relation, given each
    relation's satisfying pairs (:data:`PairDistances`). Returns (matches, truncated)."""
    first = query.features[0].id
    combos = _matcher(query, candidates, pairs)
    found: list[tuple[dict[str, int], dict[str, float]]] = []
    for k in range(len(candidates[first])):
        found += combos(k, limit + 1 - len(found))
        if len(found) > limit:
            break
    matches = [
        Match(features={f: candidates[f][j].feature for f, j in placed.items()}, distances_m=dict(d))
        for placed, d in found[:limit]
    ]
    return matches, len(found) > limit


MAX_COMBINATIONS_PER_PLACE = 1000
"""Combinations counted per place (the ranking keeps the best of them)."""


def answer(query: FeatureQuery, candidates: dict[str, list[Candidate]], pairs: PairDistances) -> dict:
    """The fields of a :class:`QueryResult` every backend returns: the combinations (:func:`join`,
    capped at the limit) and the distinct places (:func:`places`, a page from ``query.offset``)."""
    matches, truncated = join(query, candidates, pairs, query.limit)
    ranked, total = places(query, candidates, pairs)
    page = ranked[query.offset : query.offset + query.limit]
    return {"matches": matches, "truncated": truncated, "places": page, "total_places": total,
            "offset": query.offset}  # fmt: skip


def places(
    query: FeatureQuery, candidates: dict[str, list[Candidate]], pairs: PairDistances
) -> tuple[list[Place], int]:
    """Every distinct feature of the first query feature that some combination supports, with the
    combination of least summed distance, ranked by that sum, then named before unnamed, then id.
    Returns (places, total): the count is exact, whatever the limit."""
    first = query.features[0].id
    combos = _matcher(query, candidates, pairs)
    out: list[Place] = []
    for k, cand in enumerate(candidates[first]):
        found = combos(k, MAX_COMBINATIONS_PER_PLACE)
        if not found:
            continue
        placed, dists = min(found, key=lambda c: (sum(c[1].values()), sorted(c[0].items())))
        out.append(
            Place(
                feature=cand.feature,
                support={f: candidates[f][j].feature for f, j in placed.items() if f != first},
                distances_m=dict(dists),
                combinations=len(found),
            )
        )
    out.sort(key=lambda p: (p.total_m, "name" not in p.feature.tags, p.feature.id))
    return out, len(out)


def add_geometry(found: dict, geoms: dict[str, shapely.Geometry]) -> None:
    """Fill the GeoJSON geometry of every feature in an :func:`answer` (matches and places)."""
    feats = [f for m in found["matches"] for f in m.features.values()]
    feats += [f for p in found["places"] for f in (p.feature, *p.support.values())]
    for f in feats:
        f.geometry = feature_geojson(geoms[f.id])


def feature_geojson(geom: shapely.Geometry) -> dict:
    """GeoJSON geometry ((lon, lat) order, as GeoJSON demands)."""
    return mapping(geom)


def representative_point(geom: shapely.Geometry) -> tuple[float, float]:
    """(lat, lon) of a point guaranteed to lie on the geometry."""
    p = (
        shapely.point_on_surface(geom)
        if geom.geom_type in ("Polygon", "MultiPolygon")
        else shapely.line_interpolate_point(geom, 0.5, normalized=True)
        if geom.geom_type in ("LineString", "MultiLineString")
        else geom
    )
    return float(p.y), float(p.x)


class OsmBackend(ABC):
    """A backend answering :class:`FeatureQuery` with :class:`QueryResult`."""

    name: str
    limits: QueryLimits

    @abstractmethod
    def query(self, q: FeatureQuery, with_geometry: bool = False) -> QueryResult:
        """Run the query. Raises ToolInputError subclasses for bad scopes, ToolError for backend failures."""

    @abstractmethod
    def resolve_scope(self, q: FeatureQuery) -> ResolvedScope | None:
        """The query's scope as geometry (None when only the server can resolve it)."""

    def guarded_scope(self, q: FeatureQuery) -> ResolvedScope | None:
        """The one query guard every backend runs first: the result limit, then the scope resolved and
        held to the area guard (a scope only the server can resolve is returned as None).

        Raises:
            ToolInputError: limit over the maximum; ScopeTooLargeError, AreaNotFoundError: bad scope.
        """
        if q.limit > self.limits.max_results:
            raise ToolInputError(
                f"limit {q.limit} is over the maximum of {self.limits.max_results}",
                hint="ask for fewer results",
            )
        scope = self.resolve_scope(q)
        if scope is not None:
            check_area(scope, self.limits)
        return scope
