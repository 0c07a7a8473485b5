"""EXIF metadata: GPS position, capture time, camera and orientation (read with Pillow).

Benchmarks and evaluations strip EXIF (the answer must not come from metadata): there the ``exif``
tool is simply left out of the tool set (``--no-exif``).
"""

from __future__ import annotations

import io
import math

from PIL import ExifTags, Image
from pydantic import Field

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.geo import valid_lat_lon

_GPS = ExifTags.GPS
_BASE = ExifTags.Base


def _dms_to_degrees(dms, ref) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    if str(ref).strip().upper() in ("S", "W"):
        deg = -deg
    return deg if math.isfinite(deg) else None


class ExifInput(ToolInput):
    """No arguments: the tool reads the photo being located."""


class ExifOutput(ToolOutput):
    lat: float | None = Field(None, description="GPS latitude, WGS84 degrees")
    lon: float | None = Field(None, description="GPS longitude, WGS84 degrees")
    altitude_m: float | None = None
    timestamp: str | None = Field(
        None, description="DateTimeOriginal as 'YYYY:MM:DD HH:MM:SS', offset appended when present"
    )
    utc_offset: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="OffsetTimeOriginal, the clock's UTC offset (e.g. +05:30): the camera's time zone",
    )
    camera: str | None = None
    orientation: int | None = None
    has_exif: bool = False

    def summary(self) -> str:
        if not self.has_exif:
            return "no EXIF metadata in the file"
        parts = []
        parts.append(f"GPS ({self.lat:.6f}, {self.lon:.6f})" if self.lat is not None else "no GPS position")
        if self.timestamp:
            parts.append(
                f"taken {self.timestamp}" + (f" (UTC offset {self.utc_offset})" if self.utc_offset else "")
            )
        if self.camera:
            parts.append(f"camera {self.camera}")
        return "; ".join(parts)


def read_exif(data: bytes) -> ExifOutput:
    """Parse EXIF from image bytes. Missing or malformed fields are left None (never raises for them)."""
    try:
        exif = Image.open(io.BytesIO(data)).getexif()
    except Exception:  # noqa: BLE001 - corrupt metadata must not stop a run
        return ExifOutput()
    if not exif:
        return ExifOutput()
    out = ExifOutput(has_exif=True)
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001
        gps = {}
    if gps:
        lat = _dms_to_degrees(gps.get(_GPS.GPSLatitude), gps.get(_GPS.GPSLatitudeRef, "N"))
        lon = _dms_to_degrees(gps.get(_GPS.GPSLongitude), gps.get(_GPS.GPSLongitudeRef, "E"))
        if lat is not None and lon is not None and valid_lat_lon(lat, lon) and not (lat == 0 and lon == 0):
            out.lat, out.lon = round(lat, 7), round(lon, 7)
        alt = gps.get(_GPS.GPSAltitude)
        if alt is not None:
            try:
                a = float(alt)
                out.altitude_m = -a if gps.get(_GPS.GPSAltitudeRef) in (1, b"\x01") else a
            except (TypeError, ValueError, ZeroDivisionError):
                pass
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001
        sub = {}
    ts = sub.get(_BASE.DateTimeOriginal) or exif.get(_BASE.DateTime)
    if ts:
        off = sub.get(_BASE.OffsetTimeOriginal)
        out.timestamp = f"{str(ts).strip()}{str(off).strip() if off else ''}"
        if off and str(off).strip():
            out.utc_offset = str(off).strip().strip("\x00") or None
    cam = " ".join(str(exif.get(t, "")).strip("\x00 ") for t in (_BASE.Make, _BASE.Model)).strip()
    out.camera = cam or None
    if (o := exif.get(_BASE.Orientation)) is not None:
        try:
            out.orientation = int(o)
        except (TypeError, ValueError):
            pass
    return out


class ExifTool(Tool):
    name = "exif"
    description = (
        "Read the photo's EXIF metadata: GPS position, capture time, camera, orientation. A GPS position "
        "is strong evidence but can be wrong or edited; check it against what the photo shows."
    )
    Input = ExifInput
    Output = ExifOutput
    timeout_s = 10.0

    def run(self, args: ExifInput, ctx: ToolContext) -> ExifOutput:
        return read_exif(ctx.image.data)
