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
import html
import io
import json
from pathlib import Path
from typing import Any

from geolocate.agent.analyst import countries
from geolocate.agent.state import EpisodeState
from geolocate.tools.geo import geodesic_circle


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
        ring = geodesic_circle(a.lat, a.lon, a.radius_km)
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
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
        if c.kind == "bbox":
            s, w, n, e = c.bbox
            geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        elif c.kind == "circle":
            geometry = {
                "type": "Polygon",
                "coordinates": [[list(x) for x in geodesic_circle(c.lat, c.lon, c.radius_km)]],
            }
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
    return fc


def kml(ep: EpisodeState, info=None) -> str:
    """The same features as :func:`geojson`, as KML 2.2 (simplekml)."""
    import simplekml

    doc = simplekml.Kml(name=f"geolocate session {info.id}" if info else "geolocate")
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


def photo_facts(path: str) -> dict[str, Any]:
    """File name, size in bytes, SHA-256, pixel size, format and an EXIF summary (Pillow through the
    ``exif`` tool); ``error`` when the file cannot be read any more."""
    from geolocate.tools.base import ToolContext
    from geolocate.tools.errors import GeolocateError
    from geolocate.tools.exif import ExifTool
    from geolocate.tools.image import load_image

    try:
        img = load_image(path)
    except GeolocateError as e:
        return {"name": Path(path).name, "error": str(e)}
    exif = ExifTool()
    summary = exif.run(exif.Input(), ToolContext(image=img)).summary()
    return {
        "name": Path(path).name,
        "bytes": len(img.data),
        "sha256": img.sha256,
        "size": f"{img.width}x{img.height}",
        "format": img.format,
        "exif": summary,
        "image": img.image,
    }


def report_data(store, sid: str) -> dict[str, Any]:
    """Everything a report shows, as plain data (the templates only lay it out)."""
    view = store.view(sid)
    ep = view.episode
    ev = {e.id: e for e in ep.evidence}
    chain = [
        {
            "level": lv.value,
            "value": c.value,
            "code": c.code,
            "confidence": c.confidence,
            "evidence": [
                {
                    "id": i,
                    "tool": ev[i].tool if i in ev else "image",
                    "summary": ev[i].summary if i in ev else "the photo",
                }
                for i in c.evidence
            ],
        }
        for lv, c in ep.chain.items()
    ]
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
    backtracks = [o.text for t in ep.turns for o in t.observations if o.kind == "backtracked"]
    return {
        "view": view,
        "info": view.info,
        "episode": ep,
        "photo": photo_facts(view.info.photo),
        "chain": chain,
        "tool_calls": [e for e in ep.evidence if not e.is_analyst_move],
        "moves": [e for e in ep.evidence if e.author is not None],
        "ruled_out": ruled_out,
        "backtracks": backtracks,
        "other_branches": [b for b in view.branches if not b.current],
        "constraints": [c.describe() for c in ep.constraints()],
    }


def markdown(d: dict[str, Any]) -> str:
    """The report as Markdown."""
    info, ep, photo = d["info"], d["episode"], d["photo"]
    L = [f"# Geolocation report: session {info.id}", ""]
    L += [f"- photo: `{photo['name']}`" + (f" ({photo['error']})" if "error" in photo else "")]
    if "error" not in photo:
        L += [
            f"- SHA-256: `{photo['sha256']}`",
            f"- size: {photo['bytes']:,} bytes, {photo['size']} px, {photo['format']}",
        ]
        L += [f"- EXIF: {photo['exif']}"]
    L += [
        f"- session by {info.author}, started {info.created}; planner `{info.policy}`; tools "
        f"{', '.join(info.tools)}"
    ]
    L += [f"- status: {d['view'].status}; review levels: {', '.join(info.review) or 'none'}", ""]
    a = ep.answer
    L += ["## Answer", ""]
    if a is None:
        L += ["No answer yet.", ""]
    else:
        L += [
            f"**{a.lat:.5f}, {a.lon:.5f}** +- {a.radius_km:g} km, localizability {a.localizability:.2f} "
            f"({a.source}); "
            f"https://www.openstreetmap.org/?mlat={a.lat:.6f}&mlon={a.lon:.6f}",
            "",
        ]
    L += ["## Chain of Region", "", "| level | value | confidence | evidence |", "|---|---|---|---|"]
    for c in d["chain"]:
        cites = "; ".join(f"{x['id']} ({x['tool']}): {x['summary'][:80]}" for x in c["evidence"]).replace(
            "|", "\\|"
        )
        code = f" ({c['code']})" if c["code"] and c["code"] != c["value"] else ""
        L.append(f"| {c['level']} | {c['value']}{code} | {c['confidence']:.2f} | {cites} |")
    L += ["", "## Tool calls", "", "| id | tool | arguments | result | s | by |", "|---|---|---|---|---|---|"]
    for e in d["tool_calls"]:
        args = json.dumps(e.arguments, ensure_ascii=False)[:80]
        result = (e.summary if e.ok else f"FAILED: {e.error}")[:120].replace("|", "\\|")
        L.append(
            f"| {e.id} | {e.tool} | `{args}` | {result} | {e.elapsed_s:.2f} | {e.author or 'planner'} "
            f"{e.utc or ''} |"
        )
    L += ["", "## Analyst moves", ""]
    L += [f"- {e.id} {e.tool} by {e.author} at {e.utc}: {e.summary}" for e in d["moves"]] or ["None."]
    L += ["", "## Ruled out", ""]
    L += [
        f"- {r['level']} = {r['value']} rejected by {r['author']} at {r['utc']}: {r['reason']} ({r['id']})"
        for r in d["ruled_out"]
    ]
    L += [f"- backtracked: {t}" for t in d["backtracks"]]
    L += [f"- constraint: {c}" for c in d["constraints"]]
    if not (d["ruled_out"] or d["backtracks"] or d["constraints"]):
        L += ["Nothing."]
    L += ["", "## Other branches", ""]
    for b in d["other_branches"]:
        chain = " > ".join(c.value for c in b.episode.chain.values()) or "-"
        ans = f"{b.episode.answer.lat:.5f}, {b.episode.answer.lon:.5f}" if b.episode.answer else "no answer"
        L.append(f"- branch {b.short} (last change {b.updated[:19]}): {chain}; {ans}")
    if not d["other_branches"]:
        L.append("None.")
    if ep.warnings:
        L += ["", "## Warnings", ""] + [f"- {w}" for w in ep.warnings]
    return "\n".join(L) + "\n"


def html_report(d: dict[str, Any]) -> str:
    """The report as one self-contained HTML file (map and photo embedded as data URIs)."""
    import jinja2

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
        d=d, map_png=base64.b64encode(map_png(d["episode"])).decode(), thumb=thumb, json=json, html=html
    )


def render_report(store, sid: str, fmt: str) -> str:
    """The report of session ``sid`` in ``fmt``: ``md``, ``html``, ``geojson`` or ``kml``.

    Raises:
        ValueError: unknown format; SessionError: unknown session.
    """
    if fmt == "geojson":
        view = store.view(sid, with_branches=False)
        return json.dumps(geojson(view.episode, view.info), ensure_ascii=False, indent=1) + "\n"
    if fmt == "kml":
        view = store.view(sid, with_branches=False)
        return kml(view.episode, view.info)
    d = report_data(store, sid)
    if fmt == "md":
        return markdown(d)
    if fmt == "html":
        return html_report(d)
    raise ValueError(f"unknown report format {fmt!r}; valid: md, html, geojson, kml")
