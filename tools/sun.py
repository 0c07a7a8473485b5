"""The ``sun`` tool: where on Earth the sun stood as a photo's shadows say, at the photo's time.

A shadow fixes the sun's elevation (object height / shadow length = tan(elevation)) and, when the
camera's bearing is known, its azimuth; at a known UTC time each fixes a band of the Earth around the
subsolar point. Bellingcat's ShadowFinder does this for one shadow length; this tool also takes the
sun's elevation measured directly, the shadow's direction, the ratio of one object's shadows at two
times (no height needed), a night photo (sun below the horizon), and an uncertain time: a UTC time
with +- minutes, or a clock time whose time zone is unknown (each place's own zone and daylight
saving, from timezonefinder and the IANA database, turn it into UTC there).

Physics: the sun's geocentric right ascension, declination and the apparent sidereal time come from
NREL's Solar Position Algorithm (Reda & Andreas 2004, through ``pvlib.spa``, accuracy 0.0003 deg);
each cell's hour angle, elevation, azimuth and atmospheric refraction from the same pvlib functions.
The topocentric parallax (below 0.003 deg) is left out, so one time costs a few array operations.

Chronolocation (when, not where): given a place (``place``: a committed level's point, an answer
or an analyst's point) and a local date or date range (``date``, ``date_to``), the same measurements
are scored minute by minute at that one place (``pvlib.spa.solar_position_numpy`` over the times);
the minutes within the chi-square threshold form UTC time windows, each with its best minute and the
clock time there (timezonefinder, IANA zones, daylight saving included). An elevation alone gives a
morning and an afternoon window a day; the shadow's direction tells them apart. Anchors: SunCalc
(Agafonkin), Bellingcat's chronolocation guides; ShadowFinder solves only for place.

Scoring: each measurement contributes z = (predicted - measured) / sigma (shadow lengths propagated
to elevation); a cell's chi^2 is the sum of z^2, minimised over the time window. The feasible region
is chi^2 <= the chi-square quantile ``confidence`` for that many measurements (scipy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import date as calendar_date

import numpy as np
from pydantic import Field, model_validator

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.earth_grid import Grid, countries_in, grid, region_geojson, utc_offset_grid
from geolocate.tools.errors import ToolInputError
from geolocate.tools.geo import EARTH_RADIUS_KM, haversine_km

DELTA_T_S = 69.0
"""TT - UT1 in seconds for the SPA (about 69 s in 2020-2026; a few seconds of error move the sun by
well under 0.01 deg)."""
NIGHT_ELEVATION_DEG = -0.833
"""The sun is below the horizon when its centre is lower than this (refraction and its radius)."""
MAX_TIME_STEPS = 49
"""At most this many times sampled across a time window."""
MAX_CHRONO_DAYS = 366
"""Longest date range chronolocation scans (one minute steps)."""


@dataclass
class SunPosition:
    """The sun's apparent elevation and azimuth (degrees; azimuth clockwise from true north) on a
    grid at one UTC time."""

    elevation: np.ndarray
    azimuth: np.ndarray


def sun_position(when: datetime, lat: np.ndarray, lon: np.ndarray, refraction: bool = True) -> SunPosition:
    """The sun's elevation and azimuth at every (lat, lon) (WGS84 degrees, any shape) at the UTC time
    ``when`` (a datetime; naive means UTC): NREL SPA via ``pvlib.spa``, parallax left out.

    >>> p = sun_position(datetime(2024, 6, 20, 12, 0), np.array([23.44]), np.array([0.4]))
    >>> round(float(p.elevation[0]), 1)  # the sun overhead the Tropic of Cancer at the June solstice
    90.0
    """
    from pvlib import spa

    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    unixtime = np.array([(when - datetime(1970, 1, 1)).total_seconds()])
    v, alpha, delta = spa.solar_position_numpy(
        unixtime, 0.0, 0.0, 0, 1013.25, 12, DELTA_T_S, 0.5667, 0, sst=True
    )
    lat = np.asarray(lat, dtype=np.float64)
    h = spa.local_hour_angle(v[0], np.asarray(lon, dtype=np.float64), alpha[0])
    e0 = spa.topocentric_elevation_angle_without_atmosphere(lat, delta[0], h)
    e = (
        spa.topocentric_elevation_angle(e0, spa.atmospheric_refraction_correction(1013.25, 12, e0, 0.5667))
        if refraction
        else e0
    )
    az = spa.topocentric_azimuth_angle(spa.topocentric_astronomers_azimuth(h, delta[0], lat))
    return SunPosition(np.asarray(e), np.asarray(az))


def elevation_from_shadow(
    height: float, length: float, sigma_height: float, sigma_length: float
) -> tuple[float, float]:
    """The sun's elevation (degrees) and its standard deviation from an object's height and its
    shadow's length (same unit; first-order error propagation of atan(height / length)).

    >>> [round(x, 2) for x in elevation_from_shadow(1.0, 1.0, 0.0, 0.1)]
    [45.0, 2.86]
    """
    if height <= 0 or length <= 0:
        raise ToolInputError(
            "object height and shadow length must be positive", hint="give both in the same unit"
        )
    d = height**2 + length**2
    sigma = math.sqrt((length * sigma_height) ** 2 + (height * sigma_length) ** 2) / d
    return math.degrees(math.atan2(height, length)), math.degrees(sigma)


def _angle_diff(a: np.ndarray, b: float) -> np.ndarray:
    """Signed smallest difference a - b of angles in degrees, in (-180, 180]."""
    return (np.asarray(a) - b + 180.0) % 360.0 - 180.0


class SunInput(ToolInput):
    """What the photo says about the sun. Give a time (``time_utc``, or ``local_time`` when the zone
    is unknown) and at least one measurement."""

    time_utc: datetime | None = Field(
        None, description="capture time in UTC, ISO 8601 (EXIF time minus its offset)"
    )
    local_time: datetime | None = Field(
        None, description="capture time read off a clock in an unknown time zone (ISO 8601, no offset)"
    )
    time_sigma_min: float = Field(0.0, ge=0, le=720, description="the time is known to +- this many minutes")
    object_height: float | None = Field(None, gt=0, description="height of an upright object (any unit)")
    shadow_length: float | None = Field(
        None, gt=0, description="length of its shadow on level ground (same unit)"
    )
    height_sigma: float = Field(0.0, ge=0, description="uncertainty of the height (same unit)")
    length_sigma: float | None = Field(
        None, ge=0, description="uncertainty of the shadow length (default 10%)"
    )
    sun_elevation_deg: float | None = Field(
        None, ge=-90, le=90, description="the sun's elevation measured directly"
    )
    elevation_sigma_deg: float = Field(2.0, gt=0, description="uncertainty of sun_elevation_deg")
    shadow_azimuth_deg: float | None = Field(
        None, ge=0, lt=360, description="direction the shadow points, degrees clockwise from true north"
    )
    azimuth_sigma_deg: float = Field(10.0, gt=0, description="uncertainty of shadow_azimuth_deg")
    second_time_utc: datetime | None = Field(
        None, description="UTC time of a second photo of the same object"
    )
    shadow_ratio: float | None = Field(
        None, gt=0, description="shadow length at time_utc / shadow length at second_time_utc (same object)"
    )
    ratio_sigma: float | None = Field(None, gt=0, description="uncertainty of shadow_ratio (default 10%)")
    night: bool = Field(False, description="the sun is below the horizon (a night photo)")
    hypothesis: tuple[float, float] | None = Field(None, description="(lat, lon) to check against the region")
    place: tuple[float, float] | None = Field(
        None,
        description="chronolocation: the (lat, lon) where the photo was taken; with date, the tool solves "
        "for the time instead of the place",
    )
    date: calendar_date | None = Field(
        None, description="chronolocation: the local date at the place (ISO 8601)"
    )
    date_to: calendar_date | None = Field(
        None, description="chronolocation: last day of a date range (default: date)"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="probability mass of the feasible region")
    resolution_deg: float = Field(0.5, description="grid cell size in degrees: 0.25, 0.5, 1 or 2")

    @model_validator(mode="after")
    def _enough(self) -> SunInput:
        if self.chronolocation:
            if self.time_utc is not None or self.local_time is not None:
                raise ValueError(
                    "chronolocation (place + date) solves for the time: leave out time_utc/local_time"
                )
            if self.shadow_ratio is not None:
                raise ValueError(
                    "chronolocation takes a shadow length, elevation, direction or night, not a ratio"
                )
            if self.date_to is not None and not (0 <= (self.date_to - self.date).days < MAX_CHRONO_DAYS):
                raise ValueError(f"date_to must be on or after date, at most {MAX_CHRONO_DAYS} days later")
            if not (-90 <= self.place[0] <= 90 and -180 <= self.place[1] <= 180):
                raise ValueError("place must be (lat, lon) in WGS84 degrees")
        elif (self.place is None) != (self.date is None):
            raise ValueError("chronolocation needs both place and date")
        elif (self.time_utc is None) == (self.local_time is None):
            raise ValueError("give exactly one of time_utc and local_time")
        if (self.object_height is None) != (self.shadow_length is None):
            raise ValueError("object_height and shadow_length go together")
        if (self.shadow_ratio is None) != (self.second_time_utc is None):
            raise ValueError("shadow_ratio and second_time_utc go together")
        if self.shadow_ratio is not None and self.time_utc is None:
            raise ValueError("a shadow ratio needs time_utc for the first photo")
        has = [self.object_height, self.sun_elevation_deg, self.shadow_azimuth_deg, self.shadow_ratio]
        if all(x is None for x in has) and not self.night:
            raise ValueError(
                "give a measurement: object_height + shadow_length, sun_elevation_deg, shadow_azimuth_deg, "
                "shadow_ratio + second_time_utc, or night"
            )
        if self.night and (self.object_height is not None or self.sun_elevation_deg is not None):
            raise ValueError("a night photo has no sun elevation or shadow length")
        if self.resolution_deg not in (0.25, 0.5, 1.0, 2.0):
            raise ValueError("resolution_deg must be 0.25, 0.5, 1 or 2")
        return self

    @property
    def chronolocation(self) -> bool:
        """Solve for the time at ``place`` (True) or for the place at the time (False)."""
        return self.place is not None and self.date is not None


class TimeWindow(ToolOutput):
    """A span of minutes in which the sun at the place fits the measurements: UTC (ISO 8601, 'Z') and
    the clock time there (ISO 8601 with its offset), the best-fitting minute and its chi^2."""

    start_utc: str
    end_utc: str
    best_utc: str
    local_start: str
    local_end: str
    local_best: str
    best_chi2: float
    sun_elevation_deg: float = Field(description="the sun's apparent elevation at the best minute")
    sun_azimuth_deg: float = Field(description="the sun's azimuth at the best minute, clockwise from north")


class HypothesisCheck(ToolOutput):
    """Whether a place fits: its chi^2, the elevation the sun had there, and how far the nearest
    feasible cell is (0 inside the region)."""

    lat: float
    lon: float
    consistent: bool
    chi2: float
    sun_elevation_deg: float
    sun_azimuth_deg: float
    distance_to_region_km: float


class SunOutput(ToolOutput):
    region: dict = Field(description="the feasible region, a GeoJSON MultiPolygon geometry (lon, lat)")
    core: dict = Field(
        description="the cells that fit best (chi-square within its 50% quantile): the region's likeliest "
        "part, a GeoJSON MultiPolygon; each cell's score is exp(-chi2/2), 1 where the sun fits exactly"
    )
    area_km2: float = Field(description="area of the feasible cells on the sphere")
    share_of_earth: float
    countries: dict[str, float] = Field(description="ISO alpha-2 -> share of the region's land cells")
    measurements: list[str]
    threshold_chi2: float
    hypothesis: HypothesisCheck | None = None
    place: tuple[float, float] | None = Field(
        None, exclude_if=lambda v: v is None, description="chronolocation: the place solved for"
    )
    timezone: str | None = Field(None, exclude_if=lambda v: v is None, description="its IANA time zone")
    windows: list[TimeWindow] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="chronolocation: the time windows the measurements allow at the place",
    )

    def summary(self) -> str:
        if self.place is not None:
            lat, lon = self.place
            head = f"sun at ({lat:g}, {lon:g}), {'; '.join(self.measurements)}"
            if not self.windows:
                return head + " -> no time in the date range fits"
            ws = "; ".join(
                f"{w.start_utc[:16].replace('T', ' ')}-{w.end_utc[11:16]} UTC (local {w.local_start[11:16]}-"
                f"{w.local_end[11:16]}, best {w.local_best[11:16]})"
                for w in self.windows[:8]
            )
            more = f" ... ({len(self.windows)} windows)" if len(self.windows) > 8 else ""
            return f"{head} -> times that fit ({self.timezone}): {ws}{more}"
        top = ", ".join(list(self.countries)[:12])
        s = (
            f"sun: {'; '.join(self.measurements)} -> feasible region {self.area_km2:,.0f} km2 "
            f"({100 * self.share_of_earth:.1f}% of the Earth)"
            + (
                f", countries {top}{' ...' if len(self.countries) > 12 else ''}"
                if self.countries
                else ", no land"
            )
        )
        if self.hypothesis is not None:
            h = self.hypothesis
            s += (
                f" | ({h.lat:g}, {h.lon:g}) {'fits' if h.consistent else 'does NOT fit'} "
                f"(sun elevation there {h.sun_elevation_deg:.1f} deg, "
                f"{h.distance_to_region_km:.0f} km from the region)"
            )
        return s


@dataclass
class SunRegion:
    """The result on the grid: chi^2 per cell (min over the time window), the feasible mask, the
    threshold, the sun at the best time per cell, and the measurements used."""

    grid: Grid
    chi2: np.ndarray
    feasible: np.ndarray
    threshold: float
    elevation: np.ndarray
    azimuth: np.ndarray
    measurements: list[str] = field(default_factory=list)
    n_terms: int = 0

    def score(self) -> np.ndarray:
        """Each cell's score in 0..1: exp(-chi2/2) (1 where every measurement fits exactly)."""
        return np.exp(-0.5 * np.minimum(self.chi2, 1e6))

    def area_km2(self) -> float:
        return float(self.grid.cell_area_km2()[self.feasible].sum())

    def check(self, lat: float, lon: float) -> HypothesisCheck:
        """Whether (lat, lon) lies in a feasible cell, and how far it is from one (km)."""
        i, j = self.grid.index(lat, lon)
        inside = bool(self.feasible[i, j])
        if inside or not self.feasible.any():
            dist = 0.0 if inside else float("inf")
        else:
            fl, fo = self.grid.lat[self.feasible], self.grid.lon[self.feasible]
            dist = float(np.min(haversine_km(lat, lon, fl, fo)))
        return HypothesisCheck(
            lat=lat,
            lon=lon,
            consistent=inside,
            chi2=round(float(self.chi2[i, j]), 3),
            sun_elevation_deg=round(float(self.elevation[i, j]), 2),
            sun_azimuth_deg=round(float(self.azimuth[i, j]), 2),
            distance_to_region_km=round(dist, 1) if math.isfinite(dist) else -1.0,
        )


def _chi2(args: SunInput, pos: SunPosition, elev, second_elevation, ratio_sigma) -> np.ndarray:
    """Sum of squared z-scores of the measurements for the sun at ``pos``; inf where one cannot hold
    (no shadow without the sun up, a lit sky for a night photo)."""
    up = pos.elevation > 0
    c = np.zeros(pos.elevation.shape)
    if elev is not None:
        c += ((pos.elevation - elev[0]) / elev[1]) ** 2
    if args.shadow_azimuth_deg is not None:
        sun_az = (args.shadow_azimuth_deg + 180.0) % 360.0
        c += (_angle_diff(pos.azimuth, sun_az) / args.azimuth_sigma_deg) ** 2
    if args.shadow_ratio is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            predicted = np.tan(np.radians(second_elevation)) / np.tan(np.radians(pos.elevation))
        c += ((predicted - args.shadow_ratio) / ratio_sigma) ** 2
        up &= (second_elevation > 0) & np.isfinite(predicted)
    if elev is not None or args.shadow_azimuth_deg is not None or args.shadow_ratio is not None:
        c[~up] = np.inf  # no shadow without the sun
    if args.night:
        c[pos.elevation > NIGHT_ELEVATION_DEG] = np.inf
    return c


def _times(center: datetime, sigma_min: float) -> list[timedelta]:
    if sigma_min <= 0:
        return [timedelta(0)]
    n = min(MAX_TIME_STEPS, max(3, int(2 * sigma_min / 5) + 1))
    return [timedelta(minutes=float(m)) for m in np.linspace(-sigma_min, sigma_min, n)]


def sun_region(args: SunInput) -> SunRegion:
    """Score every grid cell against the measurements in ``args``; see the module docstring."""
    from scipy.stats import chi2 as chi2_dist

    g = grid(args.resolution_deg)
    elev, terms, n_terms = _measurement_terms(args)
    second = rs = None
    if args.shadow_ratio is not None:
        rs = args.ratio_sigma if args.ratio_sigma is not None else 0.1 * args.shadow_ratio
        terms.insert(
            len(terms) - int(args.night),
            f"shadow ratio {args.shadow_ratio:g} +- {rs:g} against {args.second_time_utc.isoformat()}",
        )
        s2 = sun_position(args.second_time_utc, g.lat[:, :1], g.lon[:1, :])
        second = SunPosition(np.broadcast_to(s2.elevation, g.shape), np.broadcast_to(s2.azimuth, g.shape))
        n_terms += 1
    threshold = float(chi2_dist.ppf(args.confidence, max(1, n_terms)))

    if args.time_utc is not None:
        base, offsets = args.time_utc, None
        terms.insert(0, f"time {args.time_utc.isoformat()} UTC +- {args.time_sigma_min:g} min")
    else:
        base = args.local_time
        offsets = utc_offset_grid(args.local_time, args.resolution_deg if args.resolution_deg >= 0.5 else 0.5)
        if offsets.shape != g.shape:  # zones at 0.5 deg, spread to finer cells
            k = int(round(0.5 / args.resolution_deg))
            offsets = np.repeat(np.repeat(offsets, k, axis=0), k, axis=1)
        terms.insert(
            0,
            f"local clock time {args.local_time.isoformat()} in each place's own time zone "
            f"+- {args.time_sigma_min:g} min",
        )

    best = np.full(g.shape, np.inf)
    best_el = np.zeros(g.shape)
    best_az = np.zeros(g.shape)
    for dt in _times(base, args.time_sigma_min):
        for off in [None] if offsets is None else np.unique(offsets):
            if off is None:  # one UTC time for the whole grid: rows and columns broadcast (fast)
                sel = slice(None)
                p = sun_position(base + dt, g.lat[:, :1], g.lon[:1, :])
                pos = SunPosition(np.broadcast_to(p.elevation, g.shape), np.broadcast_to(p.azimuth, g.shape))
            else:  # the cells whose zone has this offset
                sel = offsets == off
                pos = sun_position(base + dt - timedelta(hours=float(off)), g.lat[sel], g.lon[sel])
            c = _chi2(args, pos, elev, None if second is None else second.elevation[sel], rs)
            cur = best[sel]
            better = c < cur
            if better.any():
                cur = np.where(better, c, cur)
                best[sel] = cur
                best_el[sel] = np.where(better, pos.elevation, best_el[sel])
                best_az[sel] = np.where(better, pos.azimuth, best_az[sel])
    feasible = best <= threshold
    return SunRegion(g, best, feasible, threshold, best_el, best_az, terms, n_terms)


class SunTool(Tool):
    name = "sun"
    description = (
        "Where the sun stood as the photo's shadows say: give the capture time (UTC, or a clock time "
        "in an unknown zone) and object height + shadow length, or the sun's elevation, or the shadow's "
        "compass direction, or night. Returns the feasible band of the Earth, its countries, and whether "
        "a hypothesis (lat, lon) fits. Cite it to rule out places."
    )
    Input = SunInput
    Output = SunOutput
    timeout_s = 60.0

    def run(self, args: SunInput, ctx: ToolContext) -> SunOutput:
        if args.chronolocation:
            return chronolocate(args)
        r = sun_region(args)
        area = r.area_km2()
        from scipy.stats import chi2 as chi2_dist

        core = r.chi2 <= chi2_dist.ppf(0.5, max(1, r.n_terms)) if r.n_terms else r.feasible
        return SunOutput(
            region=region_geojson(r.grid, r.feasible),
            core=region_geojson(r.grid, core),
            area_km2=round(area, 1),
            share_of_earth=round(area / (4 * math.pi * EARTH_RADIUS_KM**2), 5),
            countries=countries_in(r.grid, r.feasible),
            measurements=r.measurements,
            threshold_chi2=round(r.threshold, 3),
            hypothesis=r.check(*args.hypothesis) if args.hypothesis is not None else None,
        )


def _measurement_terms(args: SunInput) -> tuple[tuple[float, float] | None, list[str], int]:
    """The sun's elevation (degrees, sigma) the measurements give (None without one), their
    descriptions, and how many terms the chi^2 has."""
    terms: list[str] = []
    elev = None
    if args.object_height is not None:
        ls = args.length_sigma if args.length_sigma is not None else 0.1 * args.shadow_length
        elev = elevation_from_shadow(args.object_height, args.shadow_length, args.height_sigma, ls)
        terms.append(
            f"shadow {args.shadow_length:g} of height {args.object_height:g} -> elevation "
            f"{elev[0]:.1f} +- {elev[1]:.1f} deg"
        )
    elif args.sun_elevation_deg is not None:
        elev = (args.sun_elevation_deg, args.elevation_sigma_deg)
        terms.append(f"elevation {elev[0]:g} +- {elev[1]:g} deg")
    if args.shadow_azimuth_deg is not None:
        terms.append(
            f"shadow towards {args.shadow_azimuth_deg:g} +- {args.azimuth_sigma_deg:g} deg (sun opposite)"
        )
    if args.night:
        terms.append("night: sun below the horizon")
    n_terms = sum(x is not None for x in (elev, args.shadow_azimuth_deg))
    return elev, terms, n_terms


def sun_track(lat: float, lon: float, times_utc: np.ndarray) -> SunPosition:
    """The sun's apparent elevation and azimuth (degrees) at one place (WGS84 degrees) over an array of
    UTC times (``datetime64``): NREL SPA (``pvlib.spa.solar_position_numpy``), standard atmosphere."""
    from pvlib import spa

    unixtime = times_utc.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    _, _, e, _, az, _ = spa.solar_position_numpy(unixtime, lat, lon, 0.0, 1013.25, 12, DELTA_T_S, 0.5667, 0)
    return SunPosition(np.asarray(e, dtype=np.float64), np.asarray(az, dtype=np.float64))


def chronolocate(args: SunInput) -> SunOutput:
    """When the photo was taken: the UTC time windows, minute by minute over the local date range at
    ``args.place``, in which the measurements fit (chi^2 within the ``confidence`` quantile); see the
    module docstring. Windows are listed in time order with their local clock times."""
    from zoneinfo import ZoneInfo

    from scipy.stats import chi2 as chi2_dist

    from geolocate.tools.earth_grid import timezone_finder

    lat, lon = args.place
    tz_name = timezone_finder().timezone_at(lng=lon, lat=lat) or "Etc/UTC"
    tz = ZoneInfo(tz_name)
    first, last = args.date, args.date_to or args.date
    start = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
    end = (
        (datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1))
        .astimezone(UTC)
        .replace(tzinfo=None)
    )
    times = np.arange(np.datetime64(start, "m"), np.datetime64(end, "m"), np.timedelta64(1, "m"))
    pos = sun_track(lat, lon, times)
    elev, terms, n_terms = _measurement_terms(args)
    span = f"{first.isoformat()}" + (f" to {last.isoformat()}" if last != first else "")
    terms.insert(0, f"local date {span} ({tz_name})")
    c = _chi2(args, pos, elev, None, None)
    threshold = float(chi2_dist.ppf(args.confidence, max(1, n_terms)))
    ok = c <= threshold
    windows: list[TimeWindow] = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2]):  # runs [a, b) of feasible minutes
        k = a + int(np.argmin(c[a:b]))

        def utc(i: int) -> datetime:
            return times[i].astype("datetime64[s]").astype(datetime).replace(tzinfo=UTC)

        t0, t1, tb = utc(a), utc(b - 1), utc(k)
        windows.append(
            TimeWindow(
                start_utc=t0.isoformat().replace("+00:00", "Z"),
                end_utc=t1.isoformat().replace("+00:00", "Z"),
                best_utc=tb.isoformat().replace("+00:00", "Z"),
                local_start=t0.astimezone(tz).isoformat(),
                local_end=t1.astimezone(tz).isoformat(),
                local_best=tb.astimezone(tz).isoformat(),
                best_chi2=round(float(c[k]), 3),
                sun_elevation_deg=round(float(pos.elevation[k]), 2),
                sun_azimuth_deg=round(float(pos.azimuth[k]), 2),
            )
        )
    empty = {"type": "MultiPolygon", "coordinates": []}
    return SunOutput(
        region=empty,
        core=empty,
        area_km2=0.0,
        share_of_earth=0.0,
        countries={},
        measurements=terms,
        threshold_chi2=round(threshold, 3),
        place=(lat, lon),
        timezone=tz_name,
        windows=windows,
    )
