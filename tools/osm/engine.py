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

from tools.errors import ToolInputError
from tools.osm.query import AreaScope, AroundScope, BBoxScope, Feature, FeatureQuery, Match, QueryLimits, QueryResult


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

    return Transformer.from_crs("EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m", always_xy=True)


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


def resolve_bbox_or_around(scope: BBoxScope | AroundScope) -> ResolvedScope:
    if isinstance(scope, BBoxScope):
        poly = box(scope.west, scope.south, scope.east, scope.north)
        return ResolvedScope(poly, (scope.south, scope.west, scope.north, scope.east), ((scope.south + scope.north) / 2, (scope.west + scope.east) / 2), geodesic_area_km2(poly))
    from tools.geo import bbox_around

    b = bbox_around(scope.lat, scope.lon, scope.radius_m / 1000.0)
    poly = box(b.west, b.south, b.east, b.north)
    return ResolvedScope(poly, (b.south, b.west, b.north, b.east), (scope.lat, scope.lon), math.pi * (scope.radius_m / 1000.0) ** 2, scope.radius_m)


def check_area(scope: ResolvedScope, limits: QueryLimits) -> None:
    """Raises ScopeTooLargeError when the scope is over the area guard."""
    if scope.area_km2 > limits.max_area_km2:
        raise ScopeTooLargeError(
            f"scope is {scope.area_km2:,.0f} km^2, over the limit of {limits.max_area_km2:,.0f} km^2",
            hint="narrow it: a smaller bbox, a point with a radius, or a smaller admin area",
        )


def in_scope(scope: ResolvedScope, project, geoms_m: list[shapely.Geometry], geoms: list[shapely.Geometry]) -> np.ndarray:
    """Boolean mask of geometries that intersect the scope (true metres for a radius scope)."""
    if not geoms:
        return np.zeros(0, dtype=bool)
    if scope.radius_m is not None:
        return shapely.dwithin(np.array(geoms_m, dtype=object), Point(0, 0), scope.radius_m)
    return shapely.intersects(np.array(geoms, dtype=object), scope.polygon)


def join(query: FeatureQuery, candidates: dict[str, list[Candidate]], scope: ResolvedScope, limit: int) -> tuple[list[Match], bool]:
    """All combinations of candidates (one per feature) that satisfy every relation, edge to edge in
    metres. Returns (matches, truncated). Candidates must already be in scope and match their spec."""
    project = projector(*scope.center)
    proj = {fid: [project(c.geom) for c in cands] for fid, cands in candidates.items()}
    ids = [f.id for f in query.features]
    if len(ids) == 1:
        cands = candidates[ids[0]]
        return [Match(features={ids[0]: c.feature}) for c in cands[:limit]], len(cands) > limit
    trees = {fid: shapely.STRtree(np.array(g, dtype=object)) if g else None for fid, g in proj.items()}
    # Assign features in breadth-first order from the first, so each new one has a placed neighbour.
    order = [ids[0]]
    while len(order) < len(ids):
        for r in query.relations:
            for u, v in ((r.a, r.b), (r.b, r.a)):
                if u in order and v not in order:
                    order.append(v)
    matches: list[Match] = []

    def rels_between(fid: str, placed: dict[str, int]):
        for r in query.relations:
            if r.a == fid and r.b in placed:
                yield r, r.b
            elif r.b == fid and r.a in placed:
                yield r, r.a

    def extend(i: int, placed: dict[str, int], dists: dict[str, float]) -> bool:
        if i == len(order):
            matches.append(Match(features={f: candidates[f][k].feature for f, k in placed.items()}, distances_m=dict(dists)))
            return len(matches) > limit
        fid = order[i]
        if trees[fid] is None:
            return False
        rels = list(rels_between(fid, placed))
        r0, other = rels[0]
        near = trees[fid].query(proj[other][placed[other]], predicate="dwithin", distance=r0.max_m)
        for k in sorted(int(x) for x in near):
            new = {}
            ok = True
            for r, o in rels:
                d = float(shapely.distance(proj[fid][k], proj[o][placed[o]]))
                if not (r.min_m <= d <= r.max_m):
                    ok = False
                    break
                new[f"{r.a}~{r.b}"] = round(d, 2)
            if ok and extend(i + 1, {**placed, fid: k}, {**dists, **new}):
                return True
        return False

    for k in range(len(candidates[order[0]])):
        if extend(1, {order[0]: k}, {}):
            break
    truncated = len(matches) > limit
    return matches[:limit], truncated


def feature_geojson(geom: shapely.Geometry) -> dict:
    """GeoJSON geometry ((lon, lat) order, as GeoJSON demands)."""
    return mapping(geom)


def representative_point(geom: shapely.Geometry) -> tuple[float, float]:
    """(lat, lon) of a point guaranteed to lie on the geometry."""
    p = shapely.point_on_surface(geom) if geom.geom_type in ("Polygon", "MultiPolygon") else shapely.line_interpolate_point(geom, 0.5, normalized=True) if geom.geom_type in ("LineString", "MultiLineString") else geom
    return float(p.y), float(p.x)


class OsmBackend(ABC):
    """A backend answering :class:`FeatureQuery` with :class:`QueryResult`."""

    name: str
    limits: QueryLimits

    @abstractmethod
    def query(self, q: FeatureQuery, with_geometry: bool = False) -> QueryResult:
        """Run the query. Raises ToolInputError subclasses for bad scopes, ToolError for backend failures."""
