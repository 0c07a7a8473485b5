"""Reverse and forward geocoding behind one interface.

Backends:

* :class:`OfflineGeocoder` (default, no network): reverse geocoding by nearest GeoNames place (a scan,
  or a scipy k-d tree for batches, over the cities500 places of :mod:`geolocate.tools.geonames`, CC-BY 4.0),
  forward geocoding with the
  GeoNames gazetteer.
* :class:`NominatimGeocoder`: any Nominatim server through ``geopy`` (configurable domain and scheme
  for self-hosted servers, a required user agent, geopy's ``RateLimiter``, an on-disk ``diskcache``).
  Public nominatim.openstreetmap.org allows at most 1 request/s and requires a real user agent.
"""

from __future__ import annotations

import functools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.errors import RateLimitedError, ToolInputError, ToolTimeoutError, ToolUnavailableError
from geolocate.tools.geo import haversine_km, valid_lat_lon
from geolocate.tools.geonames import cache_dir, get_db


class ReverseResult(BaseModel):
    """Where (lat, lon) is: country, admin-1 and nearest city, with the city's position and distance.

    ``level`` says how precise the answer is: ``city`` when a locality was found, else ``admin1`` or
    ``country`` (e.g. a Nominatim fallback outside its imported extract).
    """

    lat: float = Field(description="queried latitude, WGS84 degrees")
    lon: float = Field(description="queried longitude, WGS84 degrees")
    country_code: str
    country: str
    admin1: str
    city: str
    city_lat: float | None = None
    city_lon: float | None = None
    distance_km: float | None = Field(None, description="great-circle km from the query to the city")
    level: Literal["city", "admin1", "country", "none"] = "city"
    source: str


class ForwardResult(BaseModel):
    """A place found by name."""

    name: str
    lat: float
    lon: float
    country_code: str
    country: str
    admin1: str
    population: int | None = None
    place_rank: int | None = None
    kind: str = ""
    source: str


class Geocoder(ABC):
    """A geocoding backend."""

    name: str

    @abstractmethod
    def reverse(self, lat: float, lon: float) -> ReverseResult:
        """Country, admin-1 and city at (lat, lon) WGS84 degrees."""

    @abstractmethod
    def forward(self, query: str, country: str | None = None, limit: int = 5) -> list[ForwardResult]:
        """Places named ``query``, optionally within a country (ISO alpha-2)."""


class _PlaceIndex:
    """Nearest GeoNames place to each query point, by chord length between unit vectors (the nearest
    by chord is the nearest by great-circle distance).

    A few points are answered by one exact brute-force scan (a (N, 3) @ (3, k) product, ~1 ms a
    point over 235k places, no index to build); larger batches build a scipy ``cKDTree`` once.
    """

    BRUTE_FORCE_MAX = 32
    """Batches up to this many points use the scan; larger ones the k-d tree."""

    def __init__(self):
        self.ids, latlon = get_db().points
        self.lat, self.lon = latlon[:, 0], latlon[:, 1]
        self.xyz = _unit_vectors(self.lat, self.lon)
        self._tree = None
        self._lock = threading.Lock()

    def nearest(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Row indices (shape (k,)) of the nearest place to each of k points (WGS84 degrees)."""
        q = _unit_vectors(lat, lon)
        if len(q) <= self.BRUTE_FORCE_MAX:
            return np.argmax(self.xyz @ q.T, axis=0)
        with self._lock:
            if self._tree is None:
                from scipy.spatial import cKDTree

                self._tree = cKDTree(self.xyz)
        return np.atleast_1d(self._tree.query(q, k=1)[1])


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


@functools.cache
def _index() -> _PlaceIndex:
    return _PlaceIndex()


_INDEX_LOCK = threading.Lock()


def reverse_batch(points: Sequence[tuple[float, float]] | np.ndarray) -> list[ReverseResult]:
    """Offline reverse geocoding of N (lat, lon) points (WGS84 degrees) by nearest GeoNames cities500 place.

    The answer for each point is its nearest GeoNames populated place (country, admin-1, name) and the
    great-circle distance to it in km.

    Raises:
        ToolInputError: a point is not a valid WGS84 coordinate.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return []
    if not (np.isfinite(pts).all() and (np.abs(pts[:, 0]) <= 90).all() and (np.abs(pts[:, 1]) <= 180).all()):
        raise ToolInputError(
            "coordinates out of range", hint="latitude in [-90, 90], longitude in [-180, 180]"
        )
    with _INDEX_LOCK:
        t = _index()
    idx = t.nearest(pts[:, 0], pts[:, 1])
    dist = np.atleast_1d(haversine_km(pts[:, 0], pts[:, 1], t.lat[idx], t.lon[idx]))
    db = get_db()
    countries = db.countries
    fields = db.place_fields(t.ids[idx])
    out = []
    for p, i, d in zip(pts, idx.tolist(), dist.tolist()):
        name, cc, admin1 = fields[int(t.ids[i])]
        out.append(
            ReverseResult(
                lat=float(p[0]),
                lon=float(p[1]),
                country_code=cc,
                country=countries[cc].name if cc in countries else cc,
                admin1=admin1,
                city=name,
                city_lat=float(t.lat[i]),
                city_lon=float(t.lon[i]),
                distance_km=round(d, 3),
                source="geonames",
            )
        )
    return out


class OfflineGeocoder(Geocoder):
    """Offline GeoNames backend (no network)."""

    name = "geonames"

    def reverse(self, lat: float, lon: float) -> ReverseResult:
        return reverse_batch([(lat, lon)])[0]

    def forward(self, query: str, country: str | None = None, limit: int = 5) -> list[ForwardResult]:
        from geolocate.tools.gazetteer import get_gazetteer

        return [
            ForwardResult(
                name=m.name,
                lat=m.lat,
                lon=m.lon,
                country_code=m.country_code,
                country=m.country,
                admin1=m.admin1,
                population=m.population,
                kind="populated place",
                source="geonames",
            )
            for m in get_gazetteer().search(query, country=country, limit=limit)
        ]


# Nominatim address keys, most to least specific, for the "city" of a reverse result.
_CITY_KEYS = ("city", "town", "village", "hamlet", "municipality", "suburb")
_ADMIN1_KEYS = ("state", "province", "region", "state_district", "county")


def _admin1(addr: dict) -> str:
    """The admin-1 region of a Nominatim address, in GeoNames naming when it can be matched.

    Nominatim names levels by country-specific rules (a Liechtenstein municipality comes back as
    ``town``, an Andorran parish as ``municipality``), so the ISO 3166-2 code (pycountry) and then each
    address part are tried against the country's GeoNames admin-1 regions; failing that, the first
    of state, province, region, state_district, county.
    """
    cc = str(addr.get("country_code", "")).upper()
    db = get_db()
    names = []
    iso = next((v for k, v in addr.items() if k.startswith("ISO3166-2")), None)
    if iso:
        import pycountry

        sub = pycountry.subdivisions.get(code=iso.upper())
        if sub is not None:
            names.append(sub.name)
    names += [
        addr[k]
        for k in (
            "state",
            "province",
            "region",
            "state_district",
            "municipality",
            "county",
            "city",
            "town",
            "village",
        )
        if k in addr
    ]
    for n in names:
        if cc and (hit := db.resolve_admin1(cc, n)):
            return hit
    return next((addr[k] for k in _ADMIN1_KEYS if k in addr), "")


def _well_formed(raw) -> bool:
    """A Nominatim answer worth caching: nothing found (None, []), or places with lat/lon in range.

    >>> _well_formed(None), _well_formed({"lat": "47.1", "lon": "0"}), _well_formed({"error": "x"})
    (True, True, False)
    """
    places = raw if isinstance(raw, list) else [] if raw is None else [raw]
    try:
        for p in places:
            lat, lon = float(p["lat"]), float(p["lon"])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                return False
    except (KeyError, TypeError, ValueError):
        return False
    return True


def check_host_port(text: str, what: str = "server") -> str:
    """A ``HOST[:PORT]`` server address, checked: a host name (letters, digits, ``-``, ``.``), an IPv4
    address or a bracketed IPv6 one (``[::1]:8088``), and a port from 1 to 65535. A URL is refused
    with a hint (the scheme is a flag of its own).

    >>> check_host_port("localhost:8088"), check_host_port("[::1]:8088")
    ('localhost:8088', '[::1]:8088')

    Raises:
        ValueError: anything else (the message quotes it and names ``what``).
    """
    import ipaddress
    import re

    t = str(text).strip()
    if "://" in t:
        raise ValueError(f"{what} takes HOST[:PORT], not a URL ({text!r}); the scheme has a flag of its own")
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?", t)
    if not m:
        raise ValueError(f"{what} must be HOST[:PORT] (e.g. localhost:8088), got {text!r}")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if m.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{what}: {host!r} is not an IPv6 address") from None
    elif not re.fullmatch(
        r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?",
        host,
    ):
        raise ValueError(f"{what}: {host!r} is not a host name")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"{what}: port {port} is out of range (1-65535)")
    return t


class NominatimGeocoder(Geocoder):
    """Nominatim through geopy, rate-limited and cached on disk.

    Args:
        user_agent: required by Nominatim's usage policy; identify your application.
        domain: server host[:port], e.g. ``"localhost:8088"`` for a self-hosted server.
        scheme: ``"https"`` or ``"http"``.
        min_delay_s: minimum seconds between requests (1.0 for the public server).
        timeout_s: per-request timeout.
        cache: cache answers on disk (under the geolocate cache dir) keyed by server and query.
    """

    name = "nominatim"

    def __init__(
        self,
        user_agent: str,
        domain: str = "nominatim.openstreetmap.org",
        scheme: str = "https",
        min_delay_s: float = 1.0,
        timeout_s: float = 10.0,
        cache: bool = True,
    ):
        if not user_agent or "geopy" in user_agent.lower():
            raise ValueError("Nominatim requires a real user agent identifying your application")
        from geopy.extra.rate_limiter import RateLimiter
        from geopy.geocoders import Nominatim

        self.domain = check_host_port(domain, "--nominatim")
        if scheme not in ("http", "https"):
            raise ValueError(f"--nominatim-scheme must be http or https, got {scheme!r}")
        self.base_url = f"{scheme}://{domain}"
        self.timeout_s = timeout_s
        # geopy's RateLimiter logs each retry with its traceback: failures reach the caller as tool errors
        logging.getLogger("geopy").setLevel(logging.ERROR)
        from geopy.adapters import URLLibAdapter

        # urllib, not requests: requests' urllib3 retries obey a server's Retry-After and would block
        # the tool for minutes; a 429 or 503 is reported at once, with its Retry-After.
        self._geo = Nominatim(
            user_agent=user_agent,
            domain=domain,
            scheme=scheme,
            timeout=timeout_s,
            adapter_factory=URLLibAdapter,
        )
        # No retries inside the tool (geopy's would wait out a Retry-After of minutes): a 429 or 503 is
        # reported at once with its Retry-After, and the planner decides what to do next.
        self._reverse = RateLimiter(
            self._geo.reverse, min_delay_seconds=min_delay_s, max_retries=0, swallow_exceptions=False
        )
        self._geocode = RateLimiter(
            self._geo.geocode, min_delay_seconds=min_delay_s, max_retries=0, swallow_exceptions=False
        )
        self._cache = None
        if cache:
            import diskcache

            self._cache = diskcache.Cache(str(cache_dir() / "nominatim"))

    def _call(self, fn, key: tuple, *args, **kwargs):
        from geopy import exc

        if self._cache is not None and key in self._cache:
            return self._cache[key]
        try:
            loc = fn(*args, **kwargs)
        except exc.GeocoderRateLimited as e:
            wait = f" (retry after {e.retry_after:g} s)" if e.retry_after is not None else ""
            raise RateLimitedError(
                f"Nominatim at {self.domain} answered 429 Too Many Requests{wait}",
                retry_after=e.retry_after,
                hint="wait and retry, or use the offline geocoder",
            ) from e
        except exc.GeocoderTimedOut as e:
            status = getattr(e.__cause__, "status_code", None)  # geopy maps HTTP 503 and 504 to "timed out"
            if status in (503, 504):
                from geolocate.tools.osm.overpass import retry_after_s

                headers = {
                    str(k).lower(): v for k, v in dict(getattr(e.__cause__, "headers", None) or {}).items()
                }
                wait = retry_after_s(headers.get("retry-after"))
                what = "503 Service Unavailable" if status == 503 else "504 Gateway Timeout"
                raise RateLimitedError(
                    f"Nominatim at {self.domain} answered {what}"
                    + (f" (retry after {wait:g} s)" if wait is not None else ""),
                    retry_after=wait,
                    hint="the server is overloaded or starting: retry later, or use the offline geocoder",
                ) from e
            raise ToolTimeoutError(
                f"Nominatim at {self.domain} did not answer within {self.timeout_s:g} s",
                hint="retry later or use the offline geocoder",
            ) from e
        except (exc.GeocoderServiceError, exc.GeocoderUnavailable) as e:
            raise ToolUnavailableError(
                f"Nominatim at {self.domain} failed: {e}", hint="use the offline geocoder"
            ) from e
        except (ValueError, TypeError, KeyError) as e:  # geopy could not read the answer
            raise ToolUnavailableError(
                f"Nominatim at {self.base_url} sent a malformed answer ({e})", hint="use the offline geocoder"
            ) from None
        if loc is None:
            raw = None
        elif isinstance(loc, list):
            raw = [x.raw for x in loc]
        else:
            raw = loc.raw
        if not _well_formed(raw):  # never cached: the next call asks again
            raise ToolUnavailableError(
                f"Nominatim at {self.base_url} sent a malformed answer", hint="use the offline geocoder"
            )
        if self._cache is not None:
            self._cache[key] = raw
        return raw

    def reverse(self, lat: float, lon: float) -> ReverseResult:
        if not valid_lat_lon(lat, lon):
            raise ToolInputError(
                "coordinates out of range", hint="latitude in [-90, 90], longitude in [-180, 180]"
            )
        raw = self._call(
            self._reverse,
            ("reverse", self.base_url, round(lat, 6), round(lon, 6)),
            (lat, lon),
            exactly_one=True,
            addressdetails=True,
        )
        if not raw:
            return ReverseResult(
                lat=lat,
                lon=lon,
                country_code="",
                country="",
                admin1="",
                city="",
                level="none",
                source=self.name,
            )
        addr = raw.get("address", {})
        city = next((addr[k] for k in _CITY_KEYS if k in addr), "")
        admin1 = _admin1(addr)
        rank = int(raw.get("place_rank", 0) or 0)
        level = "city" if city and rank >= 13 else ("admin1" if admin1 and rank >= 5 else "country")
        clat, clon = float(raw["lat"]), float(raw["lon"])
        return ReverseResult(
            lat=lat,
            lon=lon,
            country_code=str(addr.get("country_code", "")).upper(),
            country=addr.get("country", ""),
            admin1=admin1,
            city=city,
            city_lat=clat,
            city_lon=clon,
            distance_km=round(float(haversine_km(lat, lon, clat, clon)), 3),
            level=level,
            source=self.name,
        )

    def forward(self, query: str, country: str | None = None, limit: int = 5) -> list[ForwardResult]:
        raws = (
            self._call(
                self._geocode,
                ("forward", self.base_url, query, country, limit),
                query,
                exactly_one=False,
                limit=limit,
                addressdetails=True,
                country_codes=country.lower() if country else None,
            )
            or []
        )
        out = []
        for raw in raws:
            addr = raw.get("address", {})
            out.append(
                ForwardResult(
                    name=raw.get("name") or raw.get("display_name", "").split(",")[0],
                    lat=float(raw["lat"]),
                    lon=float(raw["lon"]),
                    country_code=str(addr.get("country_code", "")).upper(),
                    country=addr.get("country", ""),
                    admin1=_admin1(addr),
                    place_rank=raw.get("place_rank"),
                    kind=f"{raw.get('category', raw.get('class', ''))}:{raw.get('type', '')}",
                    source=self.name,
                )
            )
        return out


class GeocodeInput(ToolInput):
    op: Literal["reverse", "forward"] = Field(
        description="reverse: (lat, lon) -> place; forward: name -> places"
    )
    lat: float | None = Field(None, description="WGS84 latitude, for reverse")
    lon: float | None = Field(None, description="WGS84 longitude, for reverse")
    query: str | None = Field(None, description="place name, for forward")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2 filter, for forward")
    limit: int = Field(5, ge=1, le=20)

    @model_validator(mode="after")
    def _check(self) -> GeocodeInput:
        if self.op == "reverse" and (self.lat is None or self.lon is None):
            raise ValueError("reverse needs lat and lon")
        if self.op == "forward" and not self.query:
            raise ValueError("forward needs query")
        return self


class GeocodeOutput(ToolOutput):
    reverse: ReverseResult | None = None
    forward: list[ForwardResult] = []

    def summary(self) -> str:
        if self.reverse is not None:
            r = self.reverse
            where = ", ".join(x for x in (r.city, r.admin1, r.country) if x) or "nothing found"
            dist = f", {r.distance_km:.1f} km from {r.city}" if r.distance_km is not None and r.city else ""
            return f"({r.lat:.5f}, {r.lon:.5f}) is in {where} [{r.level}-level, {r.source}]{dist}"
        if not self.forward:
            return "no place found"
        return "; ".join(
            f"{f.name} ({f.admin1 + ', ' if f.admin1 else ''}{f.country_code}) at ({f.lat:.4f}, {f.lon:.4f})"
            for f in self.forward
        )


class GeocodeTool(Tool):
    name = "geocode"
    description = (
        "Reverse geocoding (lat, lon -> country, admin-1, nearest city, distance) and forward geocoding "
        "(place name -> coordinates). Use reverse to check a coordinate guess; use forward for addresses."
    )
    Input = GeocodeInput
    Output = GeocodeOutput
    timeout_s = 30.0

    def __init__(self, geocoder: Geocoder | None = None):
        self.geocoder = geocoder or OfflineGeocoder()

    def run(self, args: GeocodeInput, ctx: ToolContext) -> GeocodeOutput:
        """Uses ``ctx.options["geocoder"]`` (a :class:`Geocoder`) when the run configures one."""
        geocoder = ctx.options.get("geocoder") or self.geocoder
        if args.op == "reverse":
            if not valid_lat_lon(args.lat, args.lon):
                raise ToolInputError(
                    f"({args.lat}, {args.lon}) is not a WGS84 coordinate",
                    hint="latitude in [-90, 90], longitude in [-180, 180]",
                )
            return GeocodeOutput(reverse=geocoder.reverse(args.lat, args.lon))
        return GeocodeOutput(forward=geocoder.forward(args.query, args.country, args.limit))
