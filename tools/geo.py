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
