"""Evidence reports of investigator sessions: Markdown, one self-contained HTML file, GeoJSON, KML.

A report shows what an investigator must be able to show: the photo (file name, SHA-256, size,
EXIF summary); the Chain of Region with the evidence behind each level; every tool call with its
arguments, result and time; every analyst move with its author and UTC time; what was ruled out
(rejected values, backtracked levels) and the branches not taken; the answer with its radius; and a
map drawn offline (Natural Earth 1:110m countries, vendored; matplotlib) with the answer circle,
the evidence points, constraints and OpenStreetMap results. GeoJSON (RFC 7946, (lon, lat) order)
and KML (simplekml) carry the same geometry for other tools.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from geolocate.agent.analyst import countries
from geolocate.agent.state import EpisodeState
from geolocate.tools.geo import HALF_CIRCUMFERENCE_KM, circle_geojson, geojson_geometry


def evidence_points(ep: EpisodeState) -> list[dict[str, Any]]:
    """Points the evidence names, for maps: ``id``, ``tool``, ``label``, ``lat``, ``lon`` (WGS84
    degrees), ``kind`` (``evidence``, ``osm`` or ``chain``). Read through the tools' output models."""
    pts: list[dict[str, Any]] = []
    for e in ep.evidence:
        out = e.typed()
        if out is None:
            continue
        if e.tool == "exif" and getattr(out, "lat", None) is not None:
            pts.append(
                {
                    "id": e.id,
                    "tool": e.tool,
                    "label": "EXIF GPS",
                    "lat": out.lat,
                    "lon": out.lon,
                    "kind": "evidence",
                }
            )
        for m in getattr(out, "matches", [])[:1] if e.tool == "gazetteer" else []:
            label = f"{m.name} ({m.country_code})"
            pts.append(
                {"id": e.id, "tool": e.tool, "label": label, "lat": m.lat, "lon": m.lon, "kind": "evidence"}
            )
        if e.tool == "geocode":
            if out.reverse is not None and out.reverse.city_lat is not None:
                r = out.reverse
                label = f"{r.city}, {r.country}"
                pts.append(
                    {
                        "id": e.id,
                        "tool": e.tool,
                        "label": label,
                        "lat": r.city_lat,
                        "lon": r.city_lon,
                        "kind": "evidence",
                    }
                )
            for f in out.forward[:3]:
                pts.append(
                    {
                        "id": e.id,
                        "tool": e.tool,
                        "label": f.name,
                        "lat": f.lat,
                        "lon": f.lon,
                        "kind": "evidence",
                    }
                )
        if e.tool == "osm_search":
            for m in out.result.matches[:50]:
                for role, f in m.features.items():
                    label = f"{role}: {f.tags.get('name', f.id)}"
                    pts.append(
                        {
                            "id": e.id,
                            "tool": e.tool,
                            "label": label,
                            "lat": f.lat,
                            "lon": f.lon,
                            "kind": "osm",
                            "osm_id": f.id,
                            "tags": f.tags,
                        }
                    )
    for lv, c in ep.chain.items():
        if c.lat is not None and lv.value in ("city", "coordinates"):
            pts.append(
                {
                    "id": lv.value,
                    "tool": "chain",
                    "label": f"{lv.value}: {c.value}",
                    "lat": c.lat,
                    "lon": c.lon,
                    "kind": "chain",
                }
            )
    return pts


def geojson(ep: EpisodeState, info=None) -> dict:
    """The answer (point and radius circle), evidence points, OSM results and the analyst's bbox and
    circle constraints as a GeoJSON FeatureCollection."""
    feats: list[dict] = []
    a = ep.answer
    if a is not None:
        props = {
            "role": "answer",
            "radius_km": a.radius_km,
            "localizability": a.localizability,
            "source": a.source,
        }
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [a.lon, a.lat]},
                "properties": props,
            }
        )
        feats.append(
            {
                "type": "Feature",
                "geometry": circle_geojson(a.lat, a.lon, min(a.radius_km, HALF_CIRCUMFERENCE_KM)),
                "properties": {**props, "role": "answer_radius"},
            }
        )
    for p in evidence_points(ep):
        props = {k: v for k, v in p.items() if k not in ("lat", "lon")} | {"role": p["kind"]}
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
                "properties": props,
            }
        )
    for c in ep.constraints():
        if c.kind == "bbox":  # cut at the antimeridian when it crosses it (RFC 7946, 3.1.9)
            geometry = geojson_geometry(c.region())
        elif c.kind == "circle":
            geometry = circle_geojson(c.lat, c.lon, c.radius_km)
        elif c.kind == "region":  # the sun's band, the clock's time zones, a drawn shape
            geometry = c.geometry
        else:
            continue
        feats.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {"role": "constraint", "text": c.describe()},
            }
        )
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    if info is not None:
        fc["properties"] = {"session": info.id, "photo": Path(info.photo).name, "sha256": info.sha256}
        if ep.media:
            fc["properties"]["media"] = media_rows(ep.media)
    return fc


def media_rows(media: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per medium and per keyframe of a case: id, file name, kind, SHA-256 (of the file; of
    the decoded pixels for a frame), time in the video (seconds) and, for a video, its container's
    creation time and ISO 6709 location tag."""
    rows = []
    for m in media:
        row = {"id": m["id"], "name": Path(m["path"]).name, "kind": m["kind"], "sha256": m["sha256"]}
        if m["kind"] == "video":
            row |= {
                k: m.get(k) for k in ("duration_s", "creation_time", "location", "location_tag") if m.get(k)
            }
        rows.append(row)
        for f in m.get("frames", []):
            rows.append(
                {"id": f["id"], "name": Path(m["path"]).name, "kind": "frame", "sha256": f["sha256"],
                 "timestamp_s": f["timestamp_s"]}
            )  # fmt: skip
    return rows


def kml(ep: EpisodeState, info=None, manifest_placeholder: str | None = None) -> str:
    """The same features as :func:`geojson`, as KML 2.2 (simplekml); ``manifest_placeholder`` adds
    the Document's ``ExtendedData`` entry that carries a report's manifest."""
    import simplekml

    doc = simplekml.Kml(name=f"geolocate session {info.id}" if info else "geolocate")
    if manifest_placeholder is not None:
        doc.document.extendeddata.newdata(name="geolocate_manifest", value=manifest_placeholder)
    if ep.media:  # every medium and keyframe of a case, with its SHA-256 and time in the video
        doc.document.extendeddata.newdata(name="geolocate_media", value=json.dumps(media_rows(ep.media)))
    for f in geojson(ep, info)["features"]:
        p, g = f["properties"], f["geometry"]
        name = p.get("label") or p.get("role")
        if g["type"] == "Point":
            pt = doc.newpoint(name=name, coords=[tuple(g["coordinates"])])
            pt.description = json.dumps(p, ensure_ascii=False)
        else:
            for rings in g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]:
                poly = doc.newpolygon(
                    name=name,
                    outerboundaryis=[tuple(x) for x in rings[0]],
                    innerboundaryis=[[tuple(x) for x in r] for r in rings[1:]],
                )
                poly.description = p.get("text") or f"radius {p.get('radius_km')} km"
                poly.style.polystyle.color = simplekml.Color.changealphaint(60, simplekml.Color.red)
    return doc.kml()


def map_png(ep: EpisodeState, width_in: float = 7.0) -> bytes:
    """A map of the answer circle, evidence points, OSM results and constraints over the countries,
    drawn offline with matplotlib (Agg); PNG bytes."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fc = geojson(ep)
    fig, ax = plt.subplots(figsize=(width_in, width_in * 0.6), dpi=110)
    ax.set_facecolor("#dcebf5")  # water
    for f in countries()["features"]:
        g = f["geometry"]
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        for poly in polys:
            xs, ys = zip(*poly[0])
            ax.fill(xs, ys, facecolor="#eef0e8", edgecolor="#8a8f80", linewidth=0.4)
    colours = {"evidence": "#1f6fb4", "osm": "#2a9d3a", "chain": "#7a3db8"}
    for f in fc["features"]:
        p, g = f["properties"], f["geometry"]
        if g["type"] in ("Polygon", "MultiPolygon"):
            style = (
                {"color": "#d1342f", "linewidth": 1.5}
                if p["role"] == "answer_radius"
                else {"color": "#e08a00", "linestyle": "--"}
            )
            for poly in g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]:
                xs, ys = zip(*poly[0])
                ax.plot(xs, ys, **style)
        elif p["role"] == "answer":
            ax.plot(*g["coordinates"], marker="*", color="#d1342f", markersize=14, zorder=5)
        else:
            ax.plot(
                *g["coordinates"], marker="o", color=colours.get(p["role"], "#333"), markersize=5, zorder=4
            )
            ax.annotate(
                str(p.get("label", ""))[:28],
                g["coordinates"],
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    a = ep.answer
    if a is not None:
        half = max(0.3, min(180.0, 1.6 * a.radius_km / 111.0))
        ax.set_xlim(
            max(-180, a.lon - half / max(0.2, math.cos(math.radians(a.lat)))),
            min(180, a.lon + half / max(0.2, math.cos(math.radians(a.lat)))),
        )
        ax.set_ylim(max(-90, a.lat - half), min(90, a.lat + half))
    else:
        ax.set_xlim(-180, 180)
        ax.set_ylim(-60, 85)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("longitude (degrees)")
    ax.set_ylabel("latitude (degrees)")
    ax.set_title("answer (star, red circle), evidence (blue), OSM (green), constraints (orange)", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def examined_photo(store, info) -> dict[str, Any]:
    """The photo the session examined (the copy kept in the session store, by its SHA-256): name,
    size in bytes, SHA-256, pixel size, format, a metadata summary (the ``exif`` tool), the decoded
    image; and ``original``: what the file at the session's path holds now (``status``: ``same``,
    ``changed`` with its new SHA-256, ``missing`` or ``unreadable``). Without a copy in the store (a
    session made before copies were kept) the file is used only if its hash is still the examined one;
    otherwise ``error`` says so and nothing else is shown as the examined photo."""
    import hashlib

    from geolocate.tools.base import ToolContext
    from geolocate.tools.errors import GeolocateError
    from geolocate.tools.exif import ExifTool
    from geolocate.tools.image import decode_image

    path = Path(info.photo)
    try:
        now = hashlib.sha256(path.read_bytes()).hexdigest()
        original = {"path": str(path), "status": "same" if now == info.sha256 else "changed", "sha256": now}
    except FileNotFoundError:
        original = {"path": str(path), "status": "missing"}
    except OSError as e:
        original = {"path": str(path), "status": "unreadable", "error": e.strerror or str(e)}
    facts: dict[str, Any] = {"name": path.name, "sha256": info.sha256, "original": original}
    data = store.media(info.sha256)
    if data is None and original["status"] == "same":
        data = path.read_bytes()
    if data is None:
        facts["error"] = (
            "the session store holds no copy of the examined photo and the file is not it any more"
        )
        return facts
    facts["stored"] = store.media(info.sha256) is not None
    try:
        img = decode_image(data, str(path))
    except GeolocateError as e:
        facts["error"] = str(e)
        return facts
    exif = ExifTool()
    summary = exif.run(exif.Input(), ToolContext(image=img)).summary()
    return facts | {
        "bytes": len(img.data),
        "size": f"{img.width}x{img.height}",
        "format": img.format,
        "exif": summary,
        "image": img.image,
    }


def original_note(photo: dict[str, Any]) -> str | None:
    """One sentence on a changed, missing or unreadable original (None when it is unchanged)."""
    o = photo["original"]
    if o["status"] == "changed":
        return (
            f"the file at {o['path']} now has SHA-256 {o['sha256']}; this report is about the photo with "
            f"SHA-256 {photo['sha256']}"
        )
    if o["status"] == "missing":
        return (
            f"the file at {o['path']} is gone; this report is about the photo with SHA-256 {photo['sha256']}"
        )
    if o["status"] == "unreadable":
        return (
            f"the file at {o['path']} cannot be read ({o.get('error')}); this report is about the photo with "
            f"SHA-256 {photo['sha256']}"
        )
    return None


def report_data(store, sid: str) -> dict[str, Any]:
    """Everything a report shows, as plain data (the renderers only lay it out)."""
    from geolocate.agent.provenance import final_chain, manifest_entries

    view = store.view(sid)
    ep = view.episode
    entries = manifest_entries(ep)
    chain, answer = final_chain(entries)
    ruled_out = [
        {
            "id": e.id,
            "level": e.output.get("level"),
            "value": e.output.get("proposed"),
            "reason": e.output.get("reason", ""),
            "author": e.author,
            "utc": e.utc,
        }
        for e in ep.evidence
        if e.tool == "review" and (e.output or {}).get("decision") == "reject"
    ]
    return {
        "view": view,
        "info": view.info,
        "episode": ep,
        "photo": examined_photo(store, view.info),
        "entries": entries,
        "chain": chain,
        "answer": answer,
        "ruled_out": ruled_out,
        "other_branches": [b for b in view.branches if not b.current],
        "constraints": [c.describe() for c in ep.constraints()],
        "media": media_rows(ep.media),
        "when": when_lines(ep),
    }


def when_lines(ep: EpisodeState) -> list[str]:
    """When the photo was taken, beside where: each capture time the metadata gave (EXIF, a video's
    container) and each time window the sun tool solved for (chronolocation), with its evidence id."""
    out = []
    for e in ep.evidence:
        if not e.ok or not e.output:
            continue
        if e.tool == "exif" and e.output.get("timestamp"):
            out.append(f"capture time in the metadata ({e.id}): {e.output['timestamp']}")
        elif e.tool == "sun" and e.output.get("windows"):
            out.append(f"sun and shadows ({e.id}): {e.summary}")
    return out


def manifest(d: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The machine-readable record of a report (see :mod:`geolocate.agent.provenance`), without its
    body hash and signature."""
    from geolocate.agent.analyst import utc_now
    from geolocate.agent.provenance import REPORT_FORMAT

    info, photo, entries = d["info"], d["photo"], d["entries"]
    return {
        "format": REPORT_FORMAT,
        "report": fmt,
        "generated": utc_now(),
        "session": info.id,
        "photo": {
            "sha256": photo["sha256"],
            "name": photo["name"],
            "bytes": photo.get("bytes"),
            "kept_in_store": bool(photo.get("stored")),
        },
        "original": photo["original"],
        "entries": entries,
        "chain_head": entries[-1]["sha256"] if entries else "0" * 64,
    }


def markdown(d: dict[str, Any]) -> str:
    """The report body as Markdown: every untrusted string (hints, reasons, OCR text, file names, tool
    arguments) escaped by :func:`geolocate.agent.provenance.md_text`."""
    from geolocate.agent.provenance import answer_line, md_chain_row, md_entry_row, md_text

    info, ep, photo = d["info"], d["episode"], d["photo"]
    L = [f"# Geolocation report: session {md_text(info.id)}", ""]
    L += [
        f"- photo: {md_text(photo['name'])}" + (f" ({md_text(photo['error'])})" if "error" in photo else "")
    ]
    kept = " (a copy is kept in the session store)" if photo.get("stored") else ""
    L += [f"- SHA-256 of the examined photo: `{photo['sha256']}`{kept}"]
    if (note := original_note(photo)) is not None:
        L += [f"- **original changed**: {md_text(note)}"]
    if "error" not in photo:
        L += [f"- size: {photo['bytes']:,} bytes, {photo['size']} px, {md_text(photo['format'])}"]
        L += [f"- metadata: {md_text(photo['exif'], 600)}"]
    if d["media"]:
        L += [f"- a case of {sum(r['kind'] != 'frame' for r in d['media'])} media (listed under Media)"]
    L += [
        f"- session by {md_text(info.author)}, started {md_text(info.created)}; planner "
        f"{md_text(info.policy)}; tools {md_text(', '.join(info.tools))}"
    ]
    L += [f"- status: {d['view'].status}; review levels: {md_text(', '.join(info.review) or 'none')}", ""]
    if d["media"]:
        L += ["## Media", "", "| id | file | kind | time in video | SHA-256 |", "|---|---|---|---|---|"]
        L += [
            f"| {md_text(r['id'])} | {md_text(r['name'])} | {r['kind']} | "
            + ("" if r.get("timestamp_s") is None else f"{r['timestamp_s']:.2f} s")
            + f" | `{r['sha256']}` |"
            for r in d["media"]
        ]
        L += [""]
    L += ["## Answer", "", answer_line(d["answer"], "md"), ""]
    if d["when"]:
        L += ["## When", ""] + [f"- {md_text(w, 900)}" for w in d["when"]] + [""]
    L += ["## Chain of Region", "", "| level | value | confidence | evidence |", "|---|---|---|---|"]
    L += [md_chain_row(lv, c) for lv, c in d["chain"].items()]
    L += ["", "## Evidence chain", ""]
    L += ["Every tool call, analyst move, commitment and answer, in order; each row's hash covers its full "
          "content and the row before it (the manifest at the end holds them; `geolocate session verify` "
          "checks them).", ""]  # fmt: skip
    L += ["| seq | kind | ref | SHA-256 | what |", "|---|---|---|---|---|"]
    L += [md_entry_row(e) for e in d["entries"]]
    L += ["", "## Ruled out", ""]
    L += [
        f"- {md_text(r['level'])} = {md_text(r['value'])} rejected by {md_text(r['author'])} at "
        f"{md_text(r['utc'])}: {md_text(r['reason'])} ({md_text(r['id'])})"
        for r in d["ruled_out"]
    ]
    L += [f"- constraint: {md_text(c)}" for c in d["constraints"]]
    if not (d["ruled_out"] or d["constraints"]):
        L += ["Nothing."]
    L += ["", "## Other branches", ""]
    for b in d["other_branches"]:
        chain = " > ".join(c.value for c in b.episode.chain.values()) or "-"
        ans = f"{b.episode.answer.lat:.5f}, {b.episode.answer.lon:.5f}" if b.episode.answer else "no answer"
        L.append(
            f"- branch {md_text(b.short)} (last change {md_text(b.updated[:19])}): {md_text(chain)}; {ans}"
        )
    if not d["other_branches"]:
        L.append("None.")
    if ep.warnings:
        L += ["", "## Warnings", ""] + [f"- {md_text(w, 600)}" for w in ep.warnings]
    return "\n".join(L) + "\n\n"


def html_report(d: dict[str, Any]) -> str:
    """The report body as one self-contained HTML file (map and photo embedded as data URIs; every
    string escaped by Jinja's autoescape or :mod:`html`)."""
    import jinja2
    from markupsafe import Markup

    from geolocate.agent.provenance import answer_line, html_chain_row, html_entry_row

    photo = d["photo"]
    thumb = None
    if "image" in photo:
        im = photo["image"].copy()
        im.thumbnail((640, 640))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=85)
        thumb = base64.b64encode(buf.getvalue()).decode()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=True
    )
    return env.get_template("report.html.j2").render(
        d=d,
        map_png=base64.b64encode(map_png(d["episode"])).decode(),
        thumb=thumb,
        note=original_note(photo),
        answer=Markup(answer_line(d["answer"], "html")),
        chain_rows=[Markup(html_chain_row(lv, c)) for lv, c in d["chain"].items()],
        entry_rows=[Markup(html_entry_row(e)) for e in d["entries"]],
    )


REPORT_FORMATS = ("md", "html", "geojson", "kml")


def render_report(store, sid: str, fmt: str, sign_key=None) -> str:
    """The report of session ``sid`` in ``fmt`` (``md``, ``html``, ``geojson`` or ``kml``), its
    manifest embedded (:mod:`geolocate.agent.provenance`) and, with ``sign_key`` (an Ed25519
    private key), signed.

    Raises:
        ValueError: unknown format; SessionError: unknown session.
    """
    from geolocate.agent.provenance import KML_PLACEHOLDER, body_digest, embed, sign

    if fmt not in REPORT_FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; valid: {', '.join(REPORT_FORMATS)}")
    d = report_data(store, sid)
    if fmt == "md":
        body = markdown(d)
    elif fmt == "html":
        body = html_report(d)
    elif fmt == "geojson":
        body = json.dumps(geojson(d["episode"], d["info"]), ensure_ascii=False, indent=1)
    else:
        body = kml(d["episode"], d["info"], manifest_placeholder=KML_PLACEHOLDER)
    m = manifest(d, fmt) | {"body_sha256": body_digest(fmt, body)}
    if sign_key is not None:
        m = sign(m, sign_key)
    return embed(fmt, body, m)
