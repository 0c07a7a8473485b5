"""The photo's metadata: EXIF GPS position, capture time, camera and orientation (Pillow); XMP/IPTC
location fields; C2PA Content Credentials (``c2pa-python``). Every position is validated by
:mod:`geolocate.tools.metadata` first: one that breaks a rule is not used, and a warning names the field.

Benchmarks and evaluations strip metadata (the answer must not come from it): there the ``exif``
tool is simply left out of the tool set (``--no-exif``).
"""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import ExifTags, Image
from pydantic import Field

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.geo import valid_lat_lon

_GPS = ExifTags.GPS
_BASE = ExifTags.Base


class ExifInput(ToolInput):
    """No arguments for a photo; in a case of several media, optionally which ones to read."""

    media: list[str] | None = Field(
        None, description="in a case of several media: ids of the photos or videos to read (default all)"
    )


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
    gps_error_m: float | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="GPSHPositioningError: the horizontal error of the GPS fix, metres",
    )
    location_fields: dict[str, Any] | None = Field(
        None,
        exclude_if=lambda v: not v,
        description="XMP/IPTC location: city, state, country, country_code, sublocation, lat, lon, and "
        "'fields' naming where each came from (photoshop:City, Iptc4xmpExt:LocationShown/City...)",
    )
    content_credentials: dict[str, Any] | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="C2PA Content Credentials: claim generator, signer, actions, validation state",
    )
    warnings: list[str] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="metadata that was read but not used, naming the field and why",
    )
    source: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="in a case: the medium (and for a video the container tag) the position comes from",
    )
    media: list[dict[str, Any]] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="in a case: each medium's id, path, kind, position, time, camera and warnings",
    )

    def summary(self) -> str:
        extra = []
        if self.location_fields:
            lf = self.location_fields
            names = ", ".join(str(lf[k]) for k in ("sublocation", "city", "state", "country") if lf.get(k))
            pos = f" GPS ({lf['lat']:.6f}, {lf['lon']:.6f})" if "lat" in lf else ""
            extra.append(f"XMP/IPTC location: {names or '-'}{pos}")
        if self.content_credentials:
            cc = self.content_credentials
            who = (cc.get("signer") or {}).get("common_name") or (cc.get("signer") or {}).get("issuer") or "?"
            acts = ", ".join(a.get("action", "?") for a in cc.get("actions", [])[:4])
            gen = cc.get("claim_generator") or "?"
            extra.append(
                f"C2PA Content Credentials: {cc.get('validation_state')}, by {gen}, signed by {who}"
                + (f", actions {acts}" if acts else "")
            )
        if self.warnings:
            extra.append("not used: " + "; ".join(self.warnings))
        if self.source:
            extra.append(f"position from {self.source}")
        if len(self.media) > 1:
            extra.append(
                "media: "
                + "; ".join(
                    f"{m['id']} {m['kind']}"
                    + (
                        f" GPS ({m['lat']:.5f}, {m['lon']:.5f})"
                        if m.get("lat") is not None
                        else " no position"
                    )
                    + (f" taken {m['timestamp']}" if m.get("timestamp") else "")
                    for m in self.media
                )
            )
        if not self.has_exif:
            return "; ".join(["no EXIF metadata in the file", *extra])
        parts = []
        if self.lat is not None:
            err = f" +- {self.gps_error_m:g} m" if self.gps_error_m is not None else ""
            parts.append(f"GPS ({self.lat:.6f}, {self.lon:.6f}){err}")
        else:
            parts.append("no GPS position")
        if self.timestamp:
            parts.append(
                f"taken {self.timestamp}" + (f" (UTC offset {self.utc_offset})" if self.utc_offset else "")
            )
        if self.camera:
            parts.append(f"camera {self.camera}")
        return "; ".join(parts + extra)


def read_exif(data: bytes, image_format: str = "") -> ExifOutput:
    """Parse the metadata of image bytes: EXIF, XMP/IPTC location fields, C2PA Content Credentials.
    Malformed or invalid fields are left None, with a warning for a position that was not used
    (never raises for them)."""
    from geolocate.tools.metadata import content_credentials, exif_gps, xmp_location

    out = ExifOutput()
    try:
        im = Image.open(io.BytesIO(data))
        exif = im.getexif()
        image_format = image_format or (im.format or "")
    except Exception:  # noqa: BLE001 - corrupt metadata must not stop a run
        exif = None
    loc, loc_warnings = xmp_location(data)
    out.location_fields = loc or None
    out.warnings += loc_warnings
    try:
        out.content_credentials = content_credentials(data, image_format)
    except Exception as e:  # noqa: BLE001 - a broken manifest is reported, never fatal
        out.content_credentials = {"validation_state": "Invalid", "error": str(e)[:300]}
    if not exif:
        return out
    out.has_exif = True
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001
        gps = {}
    if gps:
        lat, lon, err, warnings = exif_gps(dict(gps))
        out.warnings += warnings
        if lat is not None and lon is not None and valid_lat_lon(lat, lon):
            out.lat, out.lon = round(lat, 7), round(lon, 7)
            out.gps_error_m = err
        alt = gps.get(_GPS.GPSAltitude)
        if alt is not None:
            try:
                a = float(alt)
                if math.isfinite(a):
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
        out.timestamp = f"{str(ts).strip()}{str(off).strip() if off else ''}"[:40]
        if off and str(off).strip():
            out.utc_offset = str(off).strip().strip("\x00")[:10] or None
    cam = " ".join(str(exif.get(t, "")).strip("\x00 ") for t in (_BASE.Make, _BASE.Model)).strip()
    out.camera = cam[:100] or None
    if (o := exif.get(_BASE.Orientation)) is not None:
        try:
            out.orientation = int(o)
        except (TypeError, ValueError):
            pass
    return out


class ExifTool(Tool):
    name = "exif"
    description = (
        "Read the photo's metadata: EXIF GPS position, capture time, camera, orientation; XMP/IPTC "
        "location fields; C2PA Content Credentials. A position is strong evidence but can be wrong or "
        "edited; check it against what the photo shows."
    )
    Input = ExifInput
    Output = ExifOutput
    timeout_s = 10.0

    def run(self, args: ExifInput, ctx: ToolContext) -> ExifOutput:
        images = ctx.images(args.media)
        if images[0][0] is None:
            return read_exif(ctx.image.data, ctx.image.format)
        return case_exif(ctx.case, list(dict.fromkeys(ctx.case.medium_of(iid) for iid, _ in images)))


def video_exif(video) -> ExifOutput:
    """A video's container metadata (:class:`geolocate.tools.media.VideoInfo`) in the EXIF tool's
    terms: the ISO 6709 position, the creation time as ``YYYY:MM:DD HH:MM:SS+HH:MM``, make and model;
    ``utc_offset`` only from Apple's local ``creationdate`` (QuickTime's ``creation_time`` is UTC)."""
    out = ExifOutput(warnings=list(video.warnings))
    if video.location is not None:
        out.lat, out.lon = video.location
        out.altitude_m = video.altitude_m
    if video.creation_time:
        from datetime import datetime

        t = datetime.fromisoformat(video.creation_time)
        off = t.strftime("%z")
        out.timestamp = t.strftime("%Y:%m:%d %H:%M:%S") + (f"{off[:3]}:{off[3:]}" if off else "")
        # QuickTime's creation_time is UTC by definition: it says nothing of the camera's zone; Apple's
        # creationdate is the local clock with its offset, which does
        if off and video.creation_time_tag == "com.apple.quicktime.creationdate":
            out.utc_offset = f"{off[:3]}:{off[3:]}"
    out.camera = " ".join(x for x in (video.make, video.model) if x) or None
    out.has_exif = any(x is not None for x in (video.location, video.creation_time, video.make, video.model))
    return out


def case_exif(case, media_ids: list[str]) -> ExifOutput:
    """The metadata of each medium ``media_ids`` names (EXIF/XMP/C2PA of a photo, container tags of a
    video): the first medium with a usable position gives the top-level fields and ``source``; every
    medium is listed in ``media``."""
    per: list[tuple[Any, ExifOutput]] = []
    for mid in media_ids:
        m = case.medium(mid)
        if m.kind == "video":
            per.append((m, video_exif(m.video)))
        else:
            im = m.images[0].image
            per.append((m, read_exif(im.data, im.format)))
    main_m, main = next(((m, o) for m, o in per if o.lat is not None), per[0])
    out = main.model_copy(deep=True)
    if out.timestamp is None:  # the time from the first medium that has one
        timed = next((o for _, o in per if o.timestamp), None)
        if timed is not None:
            out.timestamp, out.utc_offset = timed.timestamp, timed.utc_offset
    out.warnings = [f"{m.id}: {w}" for m, o in per for w in o.warnings]
    if out.lat is not None:
        tag = f", container tag {main_m.video.location_tag}" if main_m.kind == "video" else ", EXIF GPS"
        out.source = f"{main_m.id} ({main_m.path}{tag})"
    out.media = [
        {
            "id": m.id,
            "path": m.path,
            "kind": m.kind,
            "sha256": m.sha256,
            "lat": o.lat,
            "lon": o.lon,
            "timestamp": o.timestamp,
            "camera": o.camera,
            **({"location_tag": m.video.location_tag} if m.kind == "video" and m.video.location_tag else {}),
        }
        for m, o in per
    ]
    return out
