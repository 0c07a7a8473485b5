"""Pure spherical geometry: haversine great-circle distance and bounding boxes.

Conventions (see ARCHITECTURE.md): WGS84 degrees, always ``(lat, lon)`` order; distances in km on a
sphere of mean radius R = 6371.0088 km (IUGG mean Earth radius, as used by geopy and the
OSV-5M/Im2GPS evaluation code).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius in km (IUGG R1)."""


GEOSCORE_SCALE_KM = 1492.7
"""Distance scale of OSV-5M's GeoScore, 5000 * exp(-d / 1492.7) (Astruc et al., CVPR 2024, after
GeoGuessr's score): the one place the constant lives (evals, rewards and the answer point use it)."""


def haversine_km(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64] | float:
    """Great-circle distance by the haversine formula, in km.

    Inputs are WGS84 degrees and broadcast like numpy arrays; a scalar call returns a Python float.

    >>> round(haversine_km(48.8566, 2.3522, 51.5074, -0.1278), 1)  # Paris -> London
    343.6
    >>> haversine_km(0.0, 0.0, 0.0, 0.0)
    0.0
    """
    p1, l1, p2, l2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2.0) ** 2
    d = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d


def unit_vectors(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.float64]:
    """Points on the unit sphere, shape (..., 3), of WGS84 degrees (lat, lon) taken as spherical."""
    p, lam = np.radians(np.asarray(lat, dtype=np.float64)), np.radians(np.asarray(lon, dtype=np.float64))
    cp = np.cos(p)
    return np.stack([cp * np.cos(lam), cp * np.sin(lam), np.sin(p)], axis=-1)


def pairwise_km(u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Great-circle distance in km of every pair of points given as :func:`unit_vectors`, shape (n, m)
    from (n, 3) and (m, 3): the angle between the vectors from one matrix product, the same sphere as
    :func:`haversine_km` (within a metre of it in float64) and about 3x faster on large grids, where
    the point of least expected distance or greatest expected GeoScore weighs every town against every
    other. float32 vectors give float32 distances (within about 3 km: enough to choose a point by
    expectations over thousands of km, twice as fast again).

    >>> u = unit_vectors([48.8566, 0.0], [2.3522, 0.0])
    >>> [round(float(x), 1) for x in pairwise_km(u, unit_vectors([51.5074], [-0.1278]))[:, 0]]
    [343.6, 5727.4]
    """
    return EARTH_RADIUS_KM * np.arccos(np.clip(u @ v.T, -1.0, 1.0))


class BBox(NamedTuple):
    """Axis-aligned box in WGS84 degrees: (south, west, north, east); west > east crosses the antimeridian."""

    south: float
    west: float
    north: float
    east: float

    def contains(self, lat: float, lon: float) -> bool:
        """True when (lat, lon) lies inside the box (edges included)."""
        if not self.south <= lat <= self.north:
            return False
        if self.west <= self.east:
            return self.west <= lon <= self.east
        return lon >= self.west or lon <= self.east


def bbox_around(lat: float, lon: float, radius_km: float) -> BBox:
    """Smallest lat/lon box containing the spherical cap of ``radius_km`` around (lat, lon).

    Near the poles (cap reaching a pole) the box spans all longitudes.

    >>> b = bbox_around(0.0, 0.0, 111.19508)
    >>> round(b.north, 3), round(b.east, 3)
    (1.0, 1.0)
    """
    if radius_km < 0:
        raise ValueError(f"radius_km must be >= 0, got {radius_km}")
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM)
    south, north = lat - dlat, lat + dlat
    if south <= -90.0 or north >= 90.0:
        return BBox(max(south, -90.0), -180.0, min(north, 90.0), 180.0)
    # Longitude half-width of a cap: asin(sin(r/R) / cos(lat)) (exact on the sphere).
    dlon = math.degrees(
        math.asin(min(1.0, math.sin(radius_km / EARTH_RADIUS_KM) / math.cos(math.radians(lat))))
    )
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        west += 360.0
    if east > 180.0:
        east -= 360.0
    return BBox(south, west, north, east)


def valid_lat_lon(lat: float, lon: float) -> bool:
    """True for finite WGS84 coordinates with -90 <= lat <= 90 and -180 <= lon <= 180."""
    return math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


def osm_url(lat: float, lon: float, zoom: int = 12) -> str:
    """OpenStreetMap link with a marker at (lat, lon)."""
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map={zoom}/{lat:.6f}/{lon:.6f}"


def geodesic_circle(lat: float, lon: float, radius_km: float, n: int = 72) -> list[tuple[float, float]]:
    """A closed ring of ``n`` points at ``radius_km`` around (lat, lon), geodesic on the WGS84
    ellipsoid (pyproj ``Geod.fwd``), as **(lon, lat)** pairs, the order GeoJSON, KML and shapely use.

    >>> ring = geodesic_circle(0.0, 0.0, 111.32, n=4)
    >>> len(ring), ring[0] == ring[-1], round(ring[0][1], 2)
    (5, True, 1.01)
    """
    from pyproj import Geod

    g = Geod(ellps="WGS84")
    az = [360.0 * i / n for i in range(n)]
    lons, lats, _ = g.fwd([lon] * n, [lat] * n, az, [min(radius_km, 19_000.0) * 1000.0] * n)
    ring = [(round(x, 6), round(y, 6)) for x, y in zip(lons, lats)]
    return [*ring, ring[0]]


HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM
"""Half the Earth's circumference, 20,015.1 km: the largest great-circle distance, and the largest
radius a circle (a constraint, an answer's radius) may have."""


def circle_geometry(lat: float, lon: float, radius_km: float, n: int = 128):
    """The region within ``radius_km`` of (lat, lon) as a valid shapely geometry in (lon, lat)
    degrees, for any radius up to :data:`HALF_CIRCUMFERENCE_KM`, at the poles and across the
    antimeridian: a Polygon, or a MultiPolygon cut at 180 degrees (RFC 7946, section 3.1.9; the
    ``antimeridian`` library). A circle around a pole is closed along the pole; one holding both
    poles is the world without the circle around the antipode.

    >>> g = circle_geometry(0.0, 179.5, 200.0)
    >>> g.geom_type, g.is_valid
    ('MultiPolygon', True)
    >>> circle_geometry(41.26, 69.22, 5984.0).is_valid  # reaches over the north pole
    True

    Raises:
        ValueError: a coordinate or radius that is not finite, out of range, or a radius <= 0.
    """
    import antimeridian
    from shapely.geometry import Polygon, box

    if not valid_lat_lon(lat, lon):
        raise ValueError(f"({lat}, {lon}) is not a WGS84 position")
    if not math.isfinite(radius_km) or not 0 < radius_km <= HALF_CIRCUMFERENCE_KM:
        raise ValueError(f"radius {radius_km} km must be above 0 and at most {HALF_CIRCUMFERENCE_KM:.1f} km")
    north = haversine_km(lat, lon, 90.0, 0.0) < radius_km
    south = haversine_km(lat, lon, -90.0, 0.0) < radius_km
    if north and south:  # the complement of the circle around the antipode
        rest = HALF_CIRCUMFERENCE_KM - radius_km
        world = box(-180.0, -90.0, 180.0, 90.0)
        if rest <= 0.5:
            return world
        anti_lon = lon - 180.0 if lon > 0 else lon + 180.0
        return world.difference(circle_geometry(-lat, anti_lon, rest, n)).buffer(0)
    ring = geodesic_circle(lat, lon, radius_km, n)[::-1]  # counter-clockwise, as RFC 7946 asks
    g = antimeridian.fix_polygon(
        Polygon(ring), force_north_pole=north, force_south_pole=south, fix_winding=True
    )
    return g if g.is_valid else g.buffer(0)


def circle_geojson(lat: float, lon: float, radius_km: float, n: int = 128) -> dict:
    """:func:`circle_geometry` as a GeoJSON geometry ((lon, lat) order, RFC 7946)."""
    return geojson_geometry(circle_geometry(lat, lon, radius_km, n))


def geojson_geometry(g) -> dict:
    """A shapely geometry in (lon, lat) degrees as a GeoJSON geometry dict, coordinates as lists
    rounded to 1e-6 degrees (about 0.1 m)."""
    from shapely.geometry import mapping

    m = mapping(g)
    return {"type": m["type"], "coordinates": _lists(m["coordinates"])}


def _lists(x):
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (int, float)):
        return [round(float(v), 6) for v in x]
    return [_lists(v) for v in x]
