"""A regular latitude/longitude grid over the whole Earth, for tools whose answer is a region rather
than a place (the sun's position, time zones): cell areas, the region of a mask as GeoJSON, the
countries it crosses, and the time zone of every cell.

Cells are ``res`` degrees square, centred on ``-90 + res/2 ... 90 - res/2`` (rows, south to north) and
``-180 + res/2 ... 180 - res/2`` (columns, west to east); arrays are (rows, columns). Coordinates are
WGS84 degrees, (lat, lon) in arguments, (lon, lat) in GeoJSON as the format requires.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from geolocate.tools.geo import EARTH_RADIUS_KM

LAND_KM = 150.0
"""A cell counts for a country when its centre lies within this distance of one of the country's
GeoNames places (reverse geocoding): open sea far from any place counts for none."""


MIN_SHARE = 0.005
"""Countries with a smaller share of the region's land cells are left out (border cells whose nearest
place lies across the border)."""


@dataclass(frozen=True)
class Grid:
    """A global grid of ``res``-degree cells; ``lat``/``lon`` are the (rows, columns) cell centres."""

    res: float
    lat: np.ndarray
    lon: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.lat.shape

    def cell_area_km2(self) -> np.ndarray:
        """Area of each cell on the sphere (km2): R^2 * dlon * (sin lat_north - sin lat_south)."""
        r = np.radians(self.res)
        north, south = np.radians(self.lat + self.res / 2), np.radians(self.lat - self.res / 2)
        return EARTH_RADIUS_KM**2 * r * (np.sin(north) - np.sin(south))

    def index(self, lat: float, lon: float) -> tuple[int, int]:
        """The (row, column) of the cell holding (lat, lon)."""
        i = min(int((lat + 90) / self.res), self.shape[0] - 1)
        j = min(int(((lon + 180) % 360) / self.res), self.shape[1] - 1)
        return i, j


@functools.cache
def grid(res: float = 0.5) -> Grid:
    """The global grid of ``res``-degree cells (180 / res must be a whole number).

    Raises:
        ValueError: a resolution that does not divide 180 degrees.
    """
    n = 180.0 / res
    if res <= 0 or abs(n - round(n)) > 1e-9:
        raise ValueError(f"grid resolution {res} must divide 180 degrees (0.25, 0.5, 1, 2...)")
    lat = -90 + res / 2 + res * np.arange(round(n))
    lon = -180 + res / 2 + res * np.arange(round(2 * n))
    lon2, lat2 = np.meshgrid(lon, lat)
    return Grid(res, lat2, lon2)


def region_geojson(g: Grid, mask: np.ndarray, simplify_deg: float | None = None) -> dict:
    """The cells of ``mask`` (bool, grid shape) as one GeoJSON MultiPolygon geometry (lon, lat): row
    runs of cells merged by shapely, simplified by ``simplify_deg`` (default: half a cell)."""
    from shapely.geometry import MultiPolygon, Polygon, box, mapping
    from shapely.ops import unary_union

    boxes = []
    for i in np.flatnonzero(mask.any(axis=1)):
        row = np.concatenate([[False], mask[i], [False]]).astype(np.int8)
        starts, ends = np.flatnonzero(np.diff(row) == 1), np.flatnonzero(np.diff(row) == -1)
        s = g.lat[i, 0] - g.res / 2
        for a, b in zip(starts, ends, strict=True):
            boxes.append(box(-180 + a * g.res, s, -180 + b * g.res, s + g.res))
    if not boxes:
        return {"type": "MultiPolygon", "coordinates": []}
    shape = unary_union(boxes).simplify(g.res / 2 if simplify_deg is None else simplify_deg)
    polys = [shape] if isinstance(shape, Polygon) else [p for p in getattr(shape, "geoms", []) if p.area > 0]
    return mapping(MultiPolygon(polys))


def countries_in(g: Grid, mask: np.ndarray, max_points: int = 20_000) -> dict[str, float]:
    """The countries (ISO alpha-2) whose land the region of ``mask`` crosses, with the share of the
    region's land cells in each, at least :data:`MIN_SHARE` (GeoNames reverse geocoding of cell
    centres within :data:`LAND_KM` of a place; at most ``max_points`` cells, evenly subsampled)."""
    from geolocate.tools.geocode import reverse_batch

    idx = np.flatnonzero(mask.ravel())
    if len(idx) == 0:
        return {}
    idx = idx[:: max(1, len(idx) // max_points)]
    pts = np.column_stack([g.lat.ravel()[idx], g.lon.ravel()[idx]])
    counts: dict[str, int] = {}
    for r in reverse_batch(pts):
        if r.country_code and (r.distance_km or 0.0) <= LAND_KM:
            counts[r.country_code] = counts.get(r.country_code, 0) + 1
    total = sum(counts.values())
    shares = {cc: round(n / total, 4) for cc, n in sorted(counts.items(), key=lambda kv: -kv[1])}
    return {cc: s for cc, s in shares.items() if s >= MIN_SHARE}


@functools.cache
def timezone_finder():
    """The process's timezonefinder (its polygons in memory, loaded once)."""
    from timezonefinder import TimezoneFinder

    return TimezoneFinder(in_memory=True)


@functools.cache
def timezone_grid(res: float = 0.5) -> tuple[np.ndarray, tuple[str, ...]]:
    """The IANA time zone of every cell (timezonefinder, offline; its oceans are ``Etc/GMT±N``), as an
    index array of the grid's shape and the zone names it indexes. Built once (~3 s at 0.5 degrees)
    and cached on disk."""
    from geolocate.tools.geonames import cache_dir

    try:
        from importlib.metadata import version

        tzf = version("timezonefinder")
    except Exception:  # noqa: BLE001 - the cache key only
        tzf = "unknown"
    path = cache_dir() / f"timezones-{res:g}-{tzf}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["index"], tuple(str(n) for n in z["names"])
    g = grid(res)
    tf = timezone_finder()
    names = [
        tf.timezone_at(lng=float(lo), lat=float(la)) or "Etc/UTC"
        for la, lo in zip(g.lat.ravel(), g.lon.ravel())
    ]
    uniq = tuple(sorted(set(names)))
    pos = {n: k for k, n in enumerate(uniq)}
    index = np.array([pos[n] for n in names], dtype=np.int32).reshape(g.shape)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, index=index, names=np.array(uniq))
    tmp.replace(path)
    return index, uniq


def utc_offset_grid(local, res: float = 0.5) -> np.ndarray:
    """Every cell's UTC offset in hours at the naive local time ``local`` (a datetime read off a
    clock), daylight saving included (zoneinfo, IANA database): ``local - offset`` is the UTC time
    there. Shape: the grid's."""
    from zoneinfo import ZoneInfo

    index, names = timezone_grid(res)
    offsets = np.array(
        [ZoneInfo(n).utcoffset(local.replace(tzinfo=None)).total_seconds() / 3600.0 for n in names]
    )
    return offsets[index]
