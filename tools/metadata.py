"""Metadata a photo carries about where it was taken, validated before anything trusts it.

One place checks every position read from a file (ARCHITECTURE.md, "one safety layer each"): EXIF
GPS (degrees, minutes, seconds and hemisphere references), XMP/IPTC location fields and the GPS
position XMP may carry, and (for the case capability) container tags. A value that breaks the rules
is **not used**, and a warning names the field and says why:

* minutes or seconds of 60 or more, a negative part, a part that is not a finite number;
* a hemisphere reference other than N/S (latitude) or E/W (longitude), or none at all;
* |latitude| > 90 or |longitude| > 180, NaN or infinity;
* exactly (0, 0): "null island", what cameras write when they have no fix.

``GPSHPositioningError`` (metres, EXIF 2.31) becomes the answer's radius when present.

Sources: EXIF 2.32 (CIPA DC-008-2019) GPS IFD tags; XMP Specification Part 2 (``exif:GPSLatitude`` as
``DDD,MM,SSk`` or ``DDD,MM.mmk``); IPTC Photo Metadata Standard 2023.1 (``Iptc4xmpExt:LocationShown``,
``LocationCreated``, ``photoshop:City`` and kin); C2PA 2.1 (Content Credentials, read with
``c2pa-python``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from typing import Any

log = logging.getLogger(__name__)

_REFS = {"lat": {"N": 1.0, "S": -1.0}, "lon": {"E": 1.0, "W": -1.0}}


def _text(x: Any) -> str:
    if isinstance(x, bytes):
        return x.decode("ascii", "replace")
    return str(x)


def check_position(lat: float | None, lon: float | None, source: str) -> str | None:
    """Why (lat, lon) from ``source`` must not be used, or None when it is a usable WGS84 position.

    >>> check_position(59.9, 10.7, "EXIF GPS") is None
    True
    >>> check_position(0.0, 0.0, "EXIF GPS")
    'EXIF GPS is exactly (0, 0) ("null island", what a camera writes without a fix): not used'
    >>> check_position(91.0, 10.0, "XMP exif:GPSLatitude")
    'XMP exif:GPSLatitude: latitude 91 is out of range [-90, 90]: not used'
    """
    if lat is None or lon is None:
        return f"{source}: incomplete position: not used"
    for what, v, limit in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
        if not math.isfinite(v):
            return f"{source}: {what} is {v} (not a finite number): not used"
        if abs(v) > limit:
            return f"{source}: {what} {v:g} is out of range [-{limit:g}, {limit:g}]: not used"
    if lat == 0.0 and lon == 0.0:
        return f'{source} is exactly (0, 0) ("null island", what a camera writes without a fix): not used'
    return None


def dms_degrees(parts: Any, ref: Any, axis: str, field: str) -> tuple[float | None, str | None]:
    """Signed degrees from EXIF's (degrees, minutes, seconds) rationals and hemisphere reference.

    ``axis`` is ``lat`` or ``lon``. Returns (value, None), or (None, why it is not used) naming
    ``field`` (``GPSLatitude``).

    >>> dms_degrees((59, 54, 30), b"N", "lat", "GPSLatitude")
    (59.90833333333333, None)
    >>> dms_degrees((46, 75, 0), "N", "lat", "GPSLatitude")[1]
    'EXIF GPSLatitude: minutes 75 are not below 60: not used'
    >>> dms_degrees((59, 54, 30), "Q", "lat", "GPSLatitude")[1]
    "EXIF GPSLatitudeRef is 'Q', not N or S: not used"
    """
    try:
        d, m, s = (float(x) for x in parts)
    except (TypeError, ValueError, ZeroDivisionError):
        return None, f"EXIF {field}: not three numbers (degrees, minutes, seconds): not used"
    for what, v in (("degrees", d), ("minutes", m), ("seconds", s)):
        if not math.isfinite(v):
            return None, f"EXIF {field}: {what} are {v} (not a finite number): not used"
        if v < 0:
            return None, f"EXIF {field}: {what} {v:g} are negative: not used"
    for what, v in (("minutes", m), ("seconds", s)):
        if v >= 60:
            return None, f"EXIF {field}: {what} {v:g} are not below 60: not used"
    r = _text(ref).strip("\x00 ").upper() if ref is not None else ""
    sign = _REFS[axis].get(r)
    if sign is None:
        allowed = " or ".join(_REFS[axis])
        return None, f"EXIF {field}Ref is {r!r}, not {allowed}: not used" if r else (
            f"EXIF {field}Ref is missing (the hemisphere is unknown): not used"
        )
    return sign * (d + m / 60.0 + s / 3600.0), None


def exif_gps(gps: dict) -> tuple[float | None, float | None, float | None, list[str]]:
    """(lat, lon, horizontal error in metres, warnings) from an EXIF GPS IFD (Pillow's tag ids).

    A position that breaks a rule of the module docstring is returned as (None, None) with a warning
    naming the field; ``GPSHPositioningError`` is kept when it is a finite number >= 0.
    """
    from PIL import ExifTags

    G = ExifTags.GPS
    warnings: list[str] = []
    if G.GPSLatitude not in gps and G.GPSLongitude not in gps:
        return None, None, None, warnings
    lat, why_lat = dms_degrees(gps.get(G.GPSLatitude), gps.get(G.GPSLatitudeRef), "lat", "GPSLatitude")
    lon, why_lon = dms_degrees(gps.get(G.GPSLongitude), gps.get(G.GPSLongitudeRef), "lon", "GPSLongitude")
    warnings += [w for w in (why_lat, why_lon) if w]
    if lat is not None and lon is not None and (why := check_position(lat, lon, "EXIF GPS")):
        warnings.append(why)
        lat = lon = None
    if lat is None or lon is None:
        lat = lon = None
    error_m = None
    if (e := gps.get(G.GPSHPositioningError)) is not None:
        try:
            error_m = float(e)
        except (TypeError, ValueError, ZeroDivisionError):
            error_m = None
        if error_m is None or not math.isfinite(error_m) or error_m < 0:
            warnings.append(f"EXIF GPSHPositioningError is {_text(e)!r} (not a distance): not used")
            error_m = None
    return lat, lon, error_m, warnings


# -- XMP / IPTC ------------------------------------------------------------------------------------
NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}
"""XML namespaces of the location fields read from XMP."""
_XMP_GPS = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)(?:\s*,\s*(\d+(?:\.\d+)?))?\s*([NSEW])\s*$", re.I
)
_NAME_FIELDS = {
    "city": ("City",),
    "state": ("ProvinceState", "State"),
    "country": ("CountryName", "Country"),
    "country_code": ("CountryCode",),
    "sublocation": ("Sublocation", "Location"),
}


def xmp_packet(data: bytes) -> bytes | None:
    """The XMP packet (``<x:xmpmeta ...>...</x:xmpmeta>``) embedded in a file's bytes, or None."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start)
    return data[start : end + len(b"</x:xmpmeta>")] if end > 0 else None


def xmp_gps_degrees(text: str, axis: str, field: str) -> tuple[float | None, str | None]:
    """Signed degrees from XMP's ``DDD,MM,SSk`` / ``DDD,MM.mmk`` GPS notation (XMP Part 2).

    >>> xmp_gps_degrees("59,54.5N", "lat", "exif:GPSLatitude")
    (59.90833333333333, None)
    >>> xmp_gps_degrees("10,45,0Q", "lon", "exif:GPSLongitude")[1]
    "XMP exif:GPSLongitude: '10,45,0Q' is not DDD,MM,SSk with k one of E or W: not used"
    """
    m = _XMP_GPS.match(text or "")
    ref = m.group(4).upper() if m else ""
    if not m or ref not in _REFS[axis]:
        allowed = " or ".join(_REFS[axis])
        return None, f"XMP {field}: {text!r} is not DDD,MM,SSk with k one of {allowed}: not used"
    d, mins, secs = float(m.group(1)), float(m.group(2)), float(m.group(3) or 0.0)
    if mins >= 60 or secs >= 60:
        return None, f"XMP {field}: minutes or seconds not below 60 in {text!r}: not used"
    return _REFS[axis][ref] * (d + mins / 60.0 + secs / 3600.0), None


def xmp_location(data: bytes) -> tuple[dict[str, Any], list[str]]:
    """Location fields of the photo's XMP packet: ``city``, ``state``, ``country``,
    ``country_code``, ``sublocation`` (IPTC Core, IPTC Extension ``LocationShown`` then
    ``LocationCreated``, Photoshop), and ``lat``/``lon`` from ``exif:GPSLatitude``/``GPSLongitude``
    or the IPTC location structure, validated like EXIF; ``fields`` names where each value came
    from. Parsed with defusedxml (no entity expansion, no external entities). Returns ({}, [])
    without XMP; (partial fields, warnings) for values that break the rules.
    """
    packet = xmp_packet(data)
    if packet is None:
        return {}, []
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(packet)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as e:
        return {}, [f"XMP packet is not well-formed XML ({type(e).__name__}): not used"]
    found: dict[str, Any] = {}
    fields: dict[str, str] = {}
    warnings: list[str] = []

    def value(el) -> str | None:
        if el is None:
            return None
        text = (el.text or "").strip()
        if not text:  # rdf:Alt / rdf:Bag / rdf:Seq: the first item
            li = el.find(".//rdf:li", NS)
            text = (li.text or "").strip() if li is not None else ""
        return text[:200] or None

    def attr_or_child(node, ns: str, name: str) -> str | None:
        v = node.get(f"{{{NS[ns]}}}{name}")
        if v:
            return v.strip()[:200]
        return value(node.find(f"{ns}:{name}", NS))

    descs = root.findall(".//rdf:Description", NS)
    # IPTC Extension location structures first (LocationShown: what the photo shows)
    for struct_name in ("LocationShown", "LocationCreated"):
        for d in descs:
            holder = d.find(f"Iptc4xmpExt:{struct_name}", NS)
            if holder is None:
                continue
            items = holder.findall(".//rdf:li", NS) or [holder]
            for item in items[:1]:
                node = item.find("rdf:Description", NS)
                node = node if node is not None else item
                for key, names in _NAME_FIELDS.items():
                    for n in names:
                        v = attr_or_child(node, "Iptc4xmpExt", n)
                        if v and key not in found:
                            found[key], fields[key] = v, f"Iptc4xmpExt:{struct_name}/{n}"
                for axis, n in (("lat", "GPSLatitude"), ("lon", "GPSLongitude")):
                    v = attr_or_child(node, "exif", n) or attr_or_child(node, "Iptc4xmpExt", n)
                    if v and axis not in found:
                        deg, why = xmp_gps_degrees(v, axis, f"Iptc4xmpExt:{struct_name}/{n}")
                        if why:
                            warnings.append(why)
                        else:
                            found[axis], fields[axis] = deg, f"Iptc4xmpExt:{struct_name}/{n}"
    for d in descs:
        for key, ns, n in (
            ("city", "photoshop", "City"),
            ("state", "photoshop", "State"),
            ("country", "photoshop", "Country"),
            ("country_code", "Iptc4xmpCore", "CountryCode"),
            ("sublocation", "Iptc4xmpCore", "Location"),
        ):
            v = attr_or_child(d, ns, n)
            if v and key not in found:
                found[key], fields[key] = v, f"{ns}:{n}"
        for axis, n in (("lat", "GPSLatitude"), ("lon", "GPSLongitude")):
            v = attr_or_child(d, "exif", n)
            if v and axis not in found:
                deg, why = xmp_gps_degrees(v, axis, f"exif:{n}")
                if why:
                    warnings.append(why)
                else:
                    found[axis], fields[axis] = deg, f"exif:{n}"
    if ("lat" in found) != ("lon" in found):
        warnings.append("XMP has only one of latitude and longitude: not used")
        found.pop("lat", None), found.pop("lon", None)
    if "lat" in found and (why := check_position(found["lat"], found["lon"], "XMP GPS")):
        warnings.append(why)
        del found["lat"], found["lon"]
    if "country_code" in found and not re.fullmatch(r"[A-Za-z]{2,3}", found["country_code"]):
        warnings.append(f"XMP country code {found['country_code']!r} is not ISO 3166: not used")
        del found["country_code"]
    if found:
        found["fields"] = {k: v for k, v in fields.items() if k in found}
    return found, warnings


# -- C2PA Content Credentials ---------------------------------------------------------------------
_MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
    "GIF": "image/gif",
}


def content_credentials(data: bytes, image_format: str) -> dict[str, Any] | None:
    """The C2PA Content Credentials of a photo (``c2pa-python``), or None when it has none (or the
    library is missing): the active manifest's claim generator, title, signer (issuer, common
    name, algorithm, time), actions (``c2pa.created``, ``c2pa.edited``...), the validation state
    (``Invalid``, ``Valid``: intact and signed, ``Trusted``: signed by a certificate on the trust
    list) and the failure codes. Offline: remote manifests are never fetched.
    """
    mime = _MIME.get(image_format.upper())
    if mime is None or (b"c2pa" not in data and b"jumb" not in data):
        return None
    try:
        import c2pa
    except ImportError:
        return None
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - c2pa raises its own error types for "no manifest"
        text = str(e)
        if "ManifestNotFound" in text or "no JUMBF" in text or "NotFound" in type(e).__name__:
            return None
        return {"validation_state": "Invalid", "error": text[:300]}
    with reader:
        try:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
        except Exception as e:  # noqa: BLE001 - a damaged manifest store is evidence too
            return {"validation_state": "Invalid", "error": str(e)[:300]}
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    actions = []
    for a in active.get("assertions", []):
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions", []):
                actions.append(
                    {k: act[k] for k in ("action", "softwareAgent", "when", "digitalSourceType") if k in act}
                )
    gen = active.get("claim_generator") or ", ".join(
        " ".join(str(g.get(k, "")) for k in ("name", "version")).strip()
        for g in active.get("claim_generator_info", [])
    )
    sig = active.get("signature_info") or {}
    failures = [s.get("code") for s in store.get("validation_status", []) if s.get("code")]
    return {
        "claim_generator": gen or None,
        "title": active.get("title"),
        "signer": {k: sig[k] for k in ("issuer", "common_name", "alg", "time") if k in sig},
        "actions": actions[:20],
        "validation_state": state,
        "validation_codes": failures[:20],
        "manifests": len(store.get("manifests", {})),
    }
