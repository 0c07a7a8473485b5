"""The ``timezone`` tool: a capture time with its UTC offset (EXIF ``OffsetTimeOriginal``, a phone's
screenshot, a news timestamp) fixes the time zone the camera was set to, and so the places whose zone
had that offset at that moment, daylight saving included.

Zones come from timezonefinder (offline polygons of the IANA zones, ocean cells as ``Etc/GMT±N``) on
a global grid (:func:`geolocate.tools.earth_grid.timezone_grid`); offsets from the IANA database
through ``zoneinfo``. A camera keeps its home zone when it travels, so the result is evidence, not
proof: the tool says so in its summary.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import numpy as np
from pydantic import Field, field_validator

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.earth_grid import countries_in, grid, region_geojson, timezone_finder, utc_offset_grid
from geolocate.tools.errors import ToolInputError

_OFFSET = re.compile(r"^([+-])(\d{1,2}):?(\d{2})?$")


def parse_offset(text: str) -> float:
    """A UTC offset such as ``+05:30``, ``-0330``, ``+9`` or ``Z`` in hours.

    >>> parse_offset("+05:45"), parse_offset("-03:30"), parse_offset("Z")
    (5.75, -3.5, 0.0)

    Raises:
        ValueError: not an offset.
    """
    t = text.strip()
    if t in ("Z", "z", "UTC", "+00:00"):
        return 0.0
    m = _OFFSET.match(t)
    if not m or int(m.group(2)) > 14 or int(m.group(3) or 0) >= 60:
        raise ValueError(f"not a UTC offset: {text!r} (write +05:30, -03:00, Z)")
    hours = int(m.group(2)) + int(m.group(3) or 0) / 60.0
    return -hours if m.group(1) == "-" else hours


def zone_offset(lat: float, lon: float, local: datetime) -> tuple[str, float]:
    """The IANA zone at (lat, lon) (WGS84 degrees; timezonefinder) and its UTC offset in hours at the
    naive local time ``local`` (zoneinfo, daylight saving included)."""
    from zoneinfo import ZoneInfo

    name = timezone_finder().timezone_at(lng=lon, lat=lat) or "Etc/UTC"
    return name, ZoneInfo(name).utcoffset(local.replace(tzinfo=None)).total_seconds() / 3600.0


class TimezoneInput(ToolInput):
    local_time: datetime | None = Field(
        None, description="capture time as the camera's clock showed it (ISO 8601, no offset); default: EXIF"
    )
    utc_offset: str | None = Field(
        None, description="the clock's UTC offset, e.g. +05:30 or -04:00; default: EXIF OffsetTimeOriginal"
    )
    hypothesis: tuple[float, float] | None = Field(None, description="(lat, lon) to check")

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, v: str | None) -> str | None:
        if v is not None:
            parse_offset(v)
        return v


class ZoneCheck(ToolOutput):
    lat: float
    lon: float
    zone: str
    zone_offset_hours: float
    consistent: bool


class TimezoneOutput(ToolOutput):
    local_time: str
    utc_offset_hours: float
    utc_time: str
    region: dict = Field(description="cells whose zone had this offset then, GeoJSON MultiPolygon (lon, lat)")
    area_km2: float
    countries: dict[str, float] = Field(description="ISO alpha-2 -> share of the region's land cells")
    hypothesis: ZoneCheck | None = None

    def summary(self) -> str:
        top = ", ".join(list(self.countries)[:15])
        s = (
            f"time zone: {self.local_time} at UTC{self.utc_offset_hours:+g} h (UTC {self.utc_time}) -> zones "
            f"with that offset then cover {self.area_km2:,.0f} km2"
            + (f", countries {top}{' ...' if len(self.countries) > 15 else ''}" if self.countries else "")
            + " (a camera may keep its home zone abroad)"
        )
        if self.hypothesis is not None:
            h = self.hypothesis
            s += f" | ({h.lat:g}, {h.lon:g}) is in {h.zone}, UTC{h.zone_offset_hours:+g} h then: " + (
                "fits" if h.consistent else "does NOT fit"
            )
        return s


def _from_exif(ctx: ToolContext) -> tuple[datetime | None, str | None]:
    """The capture time and its UTC offset from the photo's EXIF (in a case: the first medium with a
    time, a video's container included)."""
    from geolocate.tools.exif import ExifInput, ExifTool, read_exif

    if ctx is not None and ctx.case is not None and not ctx.case.single_photo:
        ex = ExifTool().run(ExifInput(), ctx)
    else:
        ex = read_exif(ctx.image.data) if ctx is not None else None
    if ex is None or not ex.timestamp:
        return None, None
    stamp = ex.timestamp[:19]
    try:
        local = datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, None
    return local, ex.utc_offset


class TimezoneTool(Tool):
    name = "timezone"
    description = (
        "Which time zones fit the capture time's UTC offset (EXIF OffsetTimeOriginal by default, or give "
        "local_time and utc_offset): the region and countries whose zone had that offset then (daylight "
        "saving included), and whether a hypothesis (lat, lon) fits."
    )
    Input = TimezoneInput
    Output = TimezoneOutput
    timeout_s = 60.0

    def run(self, args: TimezoneInput, ctx: ToolContext) -> TimezoneOutput:
        local, offset = args.local_time, args.utc_offset
        if local is None or offset is None:
            ex_local, ex_offset = _from_exif(ctx)
            local, offset = local or ex_local, offset or ex_offset
        if local is None or offset is None:
            raise ToolInputError(
                "no capture time with a UTC offset",
                hint="the photo's EXIF has none: give local_time and utc_offset (e.g. from a timestamp)",
            )
        hours = parse_offset(offset)
        g = grid(0.5)
        offsets = utc_offset_grid(local, 0.5)
        mask = np.abs(offsets - hours) < 1e-6
        area = float(g.cell_area_km2()[mask].sum())
        check = None
        if args.hypothesis is not None:
            zone, zoff = zone_offset(args.hypothesis[0], args.hypothesis[1], local)
            check = ZoneCheck(
                lat=args.hypothesis[0],
                lon=args.hypothesis[1],
                zone=zone,
                zone_offset_hours=zoff,
                consistent=math.isclose(zoff, hours),
            )
        return TimezoneOutput(
            local_time=local.isoformat(),
            utc_offset_hours=hours,
            utc_time=(local - timedelta(hours=hours)).isoformat() + "Z",
            region=region_geojson(g, mask),
            area_km2=round(area, 1),
            countries=countries_in(g, mask),
            hypothesis=check,
        )
