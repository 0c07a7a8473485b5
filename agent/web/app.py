"""The local web workbench: sessions list, session page (photo with OCR boxes, chain with evidence,
pending review, hints, constraints drawn on a map, manual tool calls, timeline, branches, reports),
live updates by Server-Sent Events. A thin view over :mod:`geolocate.agent.session`: every action
calls the same session functions as the CLI.

Offline by design: Leaflet and the Natural Earth world outline are served from the package, nothing
from a CDN; a tile server is used only when the user names one (``--tiles URL``).

Every request passes :class:`geolocate.agent.web.security.Security` (Host allow-list, token, Origin and
CSRF checks). Server-side paths (``path=``, ``osm_db=``) are read only under the folders given with
``--allow-dir``; uploads are stored under a sanitised name, mode 0600, and shown through thumbnails
made once. The photo a session examines is served from the store's copy, never from its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import secrets
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from geolocate.agent.options import RunOptions
from geolocate.agent.session import SessionError, SessionStore, data_home, short_id
from geolocate.agent.web.worker import SessionWorker
from geolocate.tools.errors import GeolocateError
from geolocate.tools.files import write_output

HERE = Path(__file__).parent
MAX_UPLOAD_MB = 50
"""Largest photo accepted by upload, MB (the image checks then refuse decompression bombs)."""


def safe_upload_name(name: str | None) -> str:
    """A file name from an upload's ``filename`` that is safe to create: the last path component
    (``/`` and ``\\`` both separate), control characters and anything but letters, digits, ``. _ - +``
    and spaces replaced, no leading dots (``..`` and ``.bashrc`` are not kept as such), at most 100
    characters; ``photo`` when nothing is left.

    >>> safe_upload_name("../../etc/passwd"), safe_upload_name(".."), safe_upload_name("a\\tb c.jpg")
    ('passwd', 'photo', 'a_b c.jpg')
    """
    import re

    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = re.sub(r"[^\w.+\- ]", "_", base, flags=re.UNICODE).strip(" ").lstrip(".")
    base = re.sub(r"_+", "_", base)[:100].strip()
    return base if base and base.strip("._") else "photo"


def allowed_path(text: str, allow_dirs: list[Path]) -> Path:
    """The file a form's server-side path names, when it lies under one of ``allow_dirs`` (symbolic
    links resolved first) and is a readable regular file.

    Raises:
        ValueError: server-side paths are off, or the path is outside the folders, missing or
            unreadable; the message is the same for those three, so nobody learns which files exist.
    """
    import os

    if not allow_dirs:
        raise ValueError(
            "server-side paths are off: upload the file, or start geolocate serve with --allow-dir FOLDER"
        )
    p = Path(os.path.realpath(os.path.expanduser(text.strip())))
    inside = any(p.is_relative_to(d) for d in allow_dirs)
    if not inside or not p.is_file() or not os.access(p, os.R_OK):
        raise ValueError(f"{text.strip()}: no readable image there under the allowed folders")
    return p


class Events:
    """Per-session fan-out of live events from worker threads to Server-Sent-Event streams."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queues: dict[str, list[asyncio.Queue]] = {}
        self.lock = threading.Lock()

    def subscribe(self, sid: str) -> asyncio.Queue:
        self.loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        with self.lock:
            self.queues.setdefault(sid, []).append(q)
        return q

    def unsubscribe(self, sid: str, q: asyncio.Queue) -> None:
        with self.lock:
            if q in self.queues.get(sid, []):
                self.queues[sid].remove(q)

    def publish(self, sid: str, event: dict) -> None:
        """Thread-safe: called from the worker running the session."""
        with self.lock:
            queues = list(self.queues.get(sid, []))
        if self.loop is not None:
            for q in queues:
                self.loop.call_soon_threadsafe(q.put_nowait, event)


def create_app(
    store_url: str | None = None,
    token: str | None = None,
    tiles: str | None = None,
    osm_db: str | None = None,
    hosts: list[str] | tuple[str, ...] = (),
    allow_dirs: list[str | Path] | tuple = (),
) -> FastAPI:
    """The workbench app over the session store ``store_url`` (default store when None).

    Args:
        token: required on every request when set (``Authorization: Bearer``, the ``token`` query
            parameter, or the cookie that a page visit with ``?token=`` sets).
        tiles: an XYZ tile URL template of the user's own tile server (``.../{z}/{x}/{y}.png``).
        osm_db: the local OSM index offered by default to new sessions.
        hosts: Host names allowed besides the loopback names (the bind address, ``--allow-host``).
        allow_dirs: folders whose files a form may name by path (``--allow-dir``); none by default.
    """
    import os

    from geolocate.agent.web.security import Security

    store = SessionStore(store_url)
    allowed = [Path(os.path.realpath(d)) for d in allow_dirs]
    default_db = osm_db
    pool: dict[str, SessionWorker] = {}

    def worker() -> SessionWorker:
        """The worker process that runs sessions (started on first use; see web/worker.py)."""
        if "now" not in pool:
            pool["now"] = SessionWorker(store.url, lambda sid, ev: events.publish(sid, ev))
        return pool["now"]

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        # Let a running session reach its next checkpoint. The store stays open: every step is
        # committed as it is made, and an app served again (tests, a reload) goes on using it.
        if "now" in pool:
            pool.pop("now").shutdown()

    app = FastAPI(
        title="geolocate workbench",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.add_middleware(
        Security, token=token, hosts=list(hosts), max_body=MAX_UPLOAD_MB * 1024 * 1024 + 1024 * 1024
    )
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    events = Events()
    running: dict[str, str] = {}
    uploads = data_home() / "uploads"
    thumbs = data_home() / "thumbs"
    app.state.store, app.state.worker, app.state.events, app.state.running = store, worker, events, running
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        csrf = getattr(request.state, "csrf_token", "")
        return templates.TemplateResponse(
            request,
            name,
            {"tiles": tiles, "osm_db": osm_db, "csrf_token": csrf, "allow_paths": bool(allowed), **ctx},
            status_code=status,
        )

    def error_page(request: Request, message: str, status: int) -> HTMLResponse:
        return page(request, "index.html", status, sessions=store.summaries(), error=message, running=running)

    def run_in_background(sid: str, what: str, op: str, **kwargs) -> None:
        """Run a session job in the worker process; its steps come back as live events, then its end."""
        running[sid] = what

        def done(future) -> None:
            try:
                result = future.result()
            except Exception as e:  # noqa: BLE001 - the worker died: said on the page, the server goes on
                result = {"error": f"the worker process stopped ({type(e).__name__}); resume the session"}
            running.pop(sid, None)
            if "error" in result:
                events.publish(sid, {"type": "error", "text": result["error"]})
            else:
                events.publish(sid, {"type": "paused"})

        worker().submit(op, sid, **kwargs).add_done_callback(done)

    # -- pages ---------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return page(request, "index.html", sessions=store.summaries(), running=running, error=None)

    @app.post("/sessions")
    async def new_session(
        request: Request,
        photo: UploadFile | None = None,
        path: str = Form(""),
        review: list[str] = Form([]),
        tools: str = Form("all"),
        no_exif: bool = Form(False),
        osm_db: str = Form(""),
    ):
        from geolocate.agent.analyst import parse_review_levels
        from geolocate.agent.cli_common import one_line
        from geolocate.tools.files import write_output
        from geolocate.tools.registry import ToolSet

        if photo is not None and photo.filename:
            data = await photo.read(MAX_UPLOAD_MB * 1024 * 1024 + 1)
            shown = safe_upload_name(photo.filename)
            if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
                return error_page(request, f"{shown}: over the {MAX_UPLOAD_MB} MB upload limit", 413)
            if not data:
                return error_page(request, f"{shown}: empty file (0 bytes)", 400)
            folder = uploads / hashlib.sha256(data).hexdigest()[:16]  # one folder per content: no clashes
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            source = folder / shown
            write_output(source, data, private=True)
            checked = worker().call("validate", path=str(source))  # decoded there, not in the server
            if "error" in checked:
                source.unlink(missing_ok=True)
                return error_page(request, checked["error"].replace(str(source), shown), 400)
        elif path.strip():
            try:
                source = allowed_path(path, allowed)
            except ValueError as e:
                return error_page(request, str(e), 400)
            if "error" in worker().call("validate", path=str(source)):  # the words of a missing file
                return error_page(
                    request, f"{path.strip()}: no readable image there under the allowed folders", 400
                )
        else:
            return error_page(request, "choose a photo to upload or give a path", 400)
        sid = secrets.token_hex(4)
        while sid in store.ids():
            sid = secrets.token_hex(4)
        levels = [r for r in review if r]
        try:
            parse_review_levels(",".join(levels))
            ToolSet.parse_spec(tools)
            db = osm_db.strip() or None
            if db is not None and db != default_db:  # the server's own index, or one under --allow-dir
                db = str(allowed_path(db, allowed))
            options = RunOptions(osm_db=db)
            options.build()
        except (ValueError, GeolocateError) as e:
            return error_page(request, one_line(e), 400)

        run_in_background(
            sid,
            "starting",
            "create",
            photo=str(source),
            review=levels,
            tools=tools,
            no_exif=no_exif,
            options=options.model_dump(mode="json"),
        )
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    @app.get("/sessions/{sid}", response_class=HTMLResponse)
    def session_page(request: Request, sid: str):
        if sid in running and (sid not in store.ids() or not store.ready(sid)):
            return page(request, "starting.html", sid=sid)
        try:
            sid = store.resolve(sid)
            # Whether a run is going on is read before the session: a run that ends in between left
            # its last step in the store, so the page shows it. (Read after, a run ending in between
            # gave a mid-run page that believed nothing was running and so never refreshed.)
            now_running = running.get(sid)
            view = store.view(sid)
            history = store.history(sid)
        except SessionError as e:
            return error_page(request, str(e), 404)
        return page(
            request,
            "session.html",
            view=view,
            ep=view.episode,
            history=history,
            running=now_running,
            ocr_boxes=_ocr_boxes(view.episode),
            zooms=_zooms(view.episode),
            short=short_id,
            json=json,
        )

    @app.post("/sessions/{sid}/move")
    async def session_move(request: Request, sid: str):
        from geolocate.agent.cli_common import one_line

        form = await request.form()
        try:
            sid = store.resolve(sid)
            move = _move_from_form({k: v for k, v in form.items() if isinstance(v, str)})
            if sid in running:
                raise SessionError(f"session {sid} is running ({running[sid]}): wait until it pauses")
            store.check_move(sid, move)  # a bad move changes nothing and is said at once
        except (SessionError, ValueError) as e:
            return error_page(request, one_line(e), 400)
        run_in_background(sid, move["kind"], "move", move=move)
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    @app.post("/sessions/{sid}/split")
    def session_split(request: Request, sid: str, media: str = Form(...)):
        """Split a case: two new sessions (the media named, and the rest), run in the worker; they
        appear on the sessions list."""
        try:
            sid = store.resolve(sid)
            if sid in running:
                raise SessionError(f"session {sid} is running ({running[sid]}): wait until it pauses")
            named, _ = store.check_split(sid, media.replace(",", " ").split())
        except SessionError as e:
            return error_page(request, str(e), 400)
        run_in_background(sid, "split", "split", media=named)
        return RedirectResponse("/", status_code=303)

    @app.post("/sessions/{sid}/relate")
    def session_relate(request: Request, sid: str, other: str = Form(...), within_km: float = Form(...)):
        """Relate this session to another one's answer (within ``within_km`` km of it)."""
        try:
            sid = store.resolve(sid)
            if sid in running:
                raise SessionError(f"session {sid} is running ({running[sid]}): wait until it pauses")
            move = store.relation_move(sid, other.strip(), within_km)
            store.check_move(sid, move)
        except (SessionError, ValueError) as e:
            return error_page(request, " ".join(str(e).split()), 400)
        run_in_background(sid, "relate", "move", move=move)
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    @app.post("/sessions/{sid}/fork")
    def session_fork(request: Request, sid: str, checkpoint: str = Form(...)):
        try:
            sid = store.resolve(sid)
            store.find_checkpoint(sid, checkpoint)
        except SessionError as e:
            return error_page(request, str(e), 404)
        run_in_background(sid, "fork", "fork", checkpoint=checkpoint)
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    @app.post("/sessions/{sid}/switch")
    def session_switch(request: Request, sid: str, branch: str = Form(...)):
        try:
            sid = store.resolve(sid)
            if store.find_checkpoint(sid, branch) not in {b.head for b in store.branches(sid)}:
                raise SessionError(f"{branch!r} is not the head of a branch of session {sid}")
        except SessionError as e:
            return error_page(request, str(e), 404)
        run_in_background(sid, "switch", "switch", branch=branch)
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    @app.post("/sessions/{sid}/delete")
    def session_delete(request: Request, sid: str):
        try:
            store.delete(store.resolve(sid))
        except SessionError as e:
            return error_page(request, str(e), 400)
        return RedirectResponse("/", status_code=303)

    # -- files and data ---------------------------------------------------------------------------------
    @app.get("/sessions/{sid}/photo")
    def session_photo(sid: str):
        """The examined photo: the copy kept in the store (never a file at the session's path)."""
        try:
            info = store.view(store.resolve(sid), with_branches=False).info
            image = store.examined_image(info)
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        media = "image/" + {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}.get(image.format, "")
        if media == "image/":  # HEIC, TIFF, AVIF...: shown as a JPEG the browser can display
            buf = io.BytesIO()
            image.image.save(buf, format="JPEG", quality=90)
            return Response(buf.getvalue(), media_type="image/jpeg")
        return Response(image.data, media_type=media)

    @app.get("/sessions/{sid}/thumb")
    def session_thumb(sid: str):
        """A JPEG of at most :data:`THUMB_PX` pixels a side, made once per photo and kept (mode 0600)."""
        try:
            info = store.view(store.resolve(sid), with_branches=False).info
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        path = thumbs / f"{info.sha256}.jpg"
        if not path.is_file():
            made = worker().call("thumbnail", sid)  # a huge photo is decoded there, not in the server
            if "error" in made:
                return JSONResponse({"error": made["error"]}, status_code=404)
            thumbs.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_output(path, made["ok"], private=True)
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/sessions/{sid}/media/{image_id}.jpg")
    def session_case_image(sid: str, image_id: str):
        """A photo or keyframe of a case session (a JPEG of at most 1280 px a side), by its id in the
        trajectory (m1, m2@4.0s); made once per case by the worker and kept (mode 0600)."""
        try:
            view = store.view(store.resolve(sid), with_branches=False)
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        sha = _case_image_sha(view.episode.media, image_id)
        if sha is None:
            return JSONResponse({"error": f"no photo or frame {image_id!r} in this session"}, status_code=404)
        path = thumbs / f"case-{sha}.jpg"
        if not path.is_file():
            made = worker().call("case_images", view.info.id)
            if "error" in made:
                return JSONResponse({"error": made["error"]}, status_code=404)
            thumbs.mkdir(parents=True, exist_ok=True, mode=0o700)
            for key, data in made["ok"].items():
                write_output(thumbs / f"case-{key}.jpg", data, private=True)
        if not path.is_file():
            return JSONResponse({"error": f"{image_id}: no image"}, status_code=404)
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/sessions/{sid}/media/{mid}/video")
    def session_case_video(sid: str, mid: str):
        """The original bytes of a case's video (the copy kept in the store), for the page's player;
        served with range requests so that it can seek."""
        try:
            view = store.view(store.resolve(sid), with_branches=False)
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        m = next((m for m in view.episode.media if m["id"] == mid and m["kind"] == "video"), None)
        if m is None:
            return JSONResponse({"error": f"no video {mid!r} in this session"}, status_code=404)
        ext = Path(m["path"]).suffix.lower()
        kind = VIDEO_TYPES.get(ext, "application/octet-stream")
        path = thumbs / f"video-{m['sha256']}{ext if ext in VIDEO_TYPES else ''}"
        if not path.is_file():
            thumbs.mkdir(parents=True, exist_ok=True, mode=0o700)
            made = worker().call("export_medium", view.info.id, sha256=m["sha256"], path=str(path))
            if "error" in made:
                return JSONResponse({"error": made["error"]}, status_code=404)
        return FileResponse(path, media_type=kind)

    @app.get("/sessions/{sid}/report.{fmt}")
    def session_report(sid: str, fmt: str):
        from geolocate.agent.report import render_report

        media = {"md": "text/markdown", "html": "text/html", "geojson": "application/geo+json"}
        media["kml"] = "application/vnd.google-earth.kml+xml"
        if fmt not in media:
            return JSONResponse(
                {"error": f"unknown format {fmt!r}; valid: {', '.join(media)}"}, status_code=404
            )
        try:
            sid = store.resolve(sid)
            text = render_report(store, sid, fmt)
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        headers = {"Content-Disposition": f'attachment; filename="geolocate-{sid}.{fmt}"'}
        return Response(text, media_type=media[fmt], headers=headers)

    @app.get("/api/osm/presets")
    def api_osm_presets():
        """Each OSM preset (with its default parameters) as a FeatureQuery feature, for the tool form."""
        from geolocate.tools.osm.presets import PRESETS, preset

        out = {}
        for name in sorted(PRESETS):
            try:
                out[name] = preset(name, id="f").model_dump(mode="json", exclude_none=True)
            except ValueError:  # needs a parameter (amenity: kind): offered with a typical one
                out[name] = preset(name, id="f", kind="restaurant").model_dump(mode="json", exclude_none=True)
        return out

    @app.get("/api/sessions")
    def api_sessions():
        return {"sessions": store.summaries(), "running": running}

    @app.get("/api/sessions/{sid}")
    def api_session(sid: str):
        from geolocate.agent.report import geojson

        try:
            sid = store.resolve(sid)
            view = store.view(sid)
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        chain = {
            lv.value: {"value": c.value, "code": c.code, "lat": c.lat, "lon": c.lon}
            for lv, c in view.episode.chain.items()
        }
        return {
            "id": sid,
            "status": view.status,
            "running": running.get(sid),
            "pending": view.pending,
            "chain": chain,
            "map": geojson(view.episode, view.info),
            "candidates": _candidate_countries(view),
            "osm_db": view.info.options.osm_db,
        }

    @app.get("/sessions/{sid}/osm.geojson")
    def session_osm(sid: str):
        """Roads, buildings and water of the session's local OSM index around the answer."""
        try:
            view = store.view(store.resolve(sid), with_branches=False)
        except SessionError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        return _osm_context(view)

    @app.get("/sessions/{sid}/events")
    async def session_events(request: Request, sid: str):
        from sse_starlette.sse import EventSourceResponse

        q = events.subscribe(sid)

        async def stream():
            try:
                yield {"event": "hello", "data": json.dumps({"running": running.get(sid)})}
                while True:
                    if await request.is_disconnected():
                        break
                    try:
                        ev = await asyncio.wait_for(q.get(), timeout=15)
                    except TimeoutError:
                        yield {"event": "ping", "data": "{}"}
                        continue
                    yield {"event": ev["type"], "data": json.dumps(ev)}
            finally:
                events.unsubscribe(sid, q)

        return EventSourceResponse(stream())

    return app


def _candidate_countries(view) -> dict[str, str]:
    """ISO alpha-2 codes to highlight on the map: the committed country, the one pending review, and
    those the analyst constrained to (``committed``, ``pending``, ``constraint``)."""
    out: dict[str, str] = {}
    for c in view.episode.constraints():
        if c.kind == "country":
            out[c.country] = "constraint"
    chain = {lv.value: c for lv, c in view.episode.chain.items()}
    if "country" in chain and chain["country"].code:
        out[chain["country"].code] = "committed"
    p = view.pending or {}
    if p.get("level") == "country":
        v = str(p["action"].get("value", ""))
        if len(v) == 2 and v.isalpha():
            out[v.upper()] = "pending"
    return out


VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
               ".mkv": "video/x-matroska", ".ogv": "video/ogg"}  # fmt: skip
"""Media types the case page's player is served with, by the video's extension (else octet-stream)."""


def _case_image_sha(media: list[dict[str, Any]], image_id: str) -> str | None:
    """The SHA-256 the trajectory lists for a case's photo or keyframe ``image_id``."""
    for m in media:
        if m["kind"] == "photo" and m["id"] == image_id:
            return m["sha256"]
        for f in m.get("frames", []):
            if f["id"] == image_id:
                return f["sha256"]
    return None


def _ocr_boxes(ep) -> list[dict[str, Any]]:
    """OCR lines with their pixel boxes (for the SVG overlay on the photo); in a case, ``media`` is the
    photo or frame whose pixels the box is in (the first that read it)."""
    out = []
    for e in ep.evidence:
        if e.tool == "ocr" and e.ok:
            for ln in e.typed().lines:
                pts = " ".join(f"{x:.0f},{y:.0f}" for x, y in ln.box)
                media = ln.media[0] if ln.media else None
                out.append({"id": e.id, "text": ln.text, "score": ln.score, "points": pts, "media": media})
    return out


def _zooms(ep) -> list[dict[str, Any]]:
    """Zoom crops (pixel boxes) from the evidence."""
    out = []
    for e in ep.evidence:
        if e.tool == "zoom" and e.ok:
            x0, y0, x1, y1 = e.typed().box_px
            out.append({"id": e.id, "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0})
    return out


def _move_from_form(form: dict[str, Any]) -> dict:
    """A move dict from the session page's forms.

    Raises:
        ValueError: a field is missing or malformed (the page shows the message).
    """
    kind = str(form.get("kind", ""))
    text = {k: str(v).strip() for k, v in form.items()}
    if kind in ("approve", "conclude"):
        return {"kind": kind}
    if kind == "reject":
        if not text.get("reason"):
            raise ValueError("give a reason for the rejection: the planner reads it")
        return {"kind": "reject", "reason": text["reason"]}
    if kind == "edit":
        return {"kind": "edit", "value": text.get("value", "")}
    if kind == "hint":
        if not text.get("text"):
            raise ValueError("the hint is empty")
        return {"kind": "hint", "text": text["text"]}
    if kind == "backtrack":
        return {"kind": "backtrack", "level": text.get("level", "")}
    if kind == "constrain":
        ckind = text.get("ckind", "")
        c: dict[str, Any] = {"kind": ckind}
        try:
            if ckind in ("country", "not_country"):
                c["country"] = text.get("country", "")
            elif ckind == "bbox":
                c["bbox"] = [float(x) for x in text.get("bbox", "").split(",")]
            elif ckind == "circle":
                lat, lon, km = (float(x) for x in text.get("circle", "").split(","))
                c.update(lat=lat, lon=lon, radius_km=km)
            else:
                raise ValueError(f"unknown constraint kind {ckind!r}")
        except ValueError as e:
            raise ValueError(f"constraint: {e}") from None
        return {"kind": "constrain", "constraint": c}
    if kind == "tool":
        try:
            args = json.loads(text.get("arguments") or "{}")
        except json.JSONDecodeError as e:
            raise ValueError(f"tool arguments are not JSON: {e}") from None
        return {"kind": "tool", "name": text.get("name", ""), "arguments": args}
    raise ValueError(f"unknown action {kind!r}")


def _osm_context(view) -> dict:
    """GeoJSON of roads, buildings and water from the session's local OSM index, within 1.5 km of
    the answer (empty when the session has no index or no answer)."""
    from geolocate.tools.geo import bbox_around

    empty = {"type": "FeatureCollection", "features": []}
    a, db = view.episode.answer, view.info.options.osm_db
    if a is None or not db or not Path(db).is_file():
        return empty
    from geolocate.tools.osm import make_backend
    from geolocate.tools.osm.presets import preset
    from geolocate.tools.osm.query import FeatureQuery

    b = bbox_around(a.lat, a.lon, min(1.5, max(a.radius_km, 0.3)))
    scope = {"kind": "bbox", "south": b.south, "west": b.west, "north": b.north, "east": b.east}
    backend = make_backend(db)
    feats = []
    for name in ("road", "building", "water", "river"):
        q = FeatureQuery.model_validate(
            {"features": [preset(name, id="f").model_dump()], "scope": scope, "limit": 500}
        )
        try:
            res = backend.query(q, with_geometry=True)
        except GeolocateError:
            continue
        for m in res.matches:
            f = m.features["f"]
            feats.append(
                {
                    "type": "Feature",
                    "geometry": f.geometry,
                    "properties": {"layer": name, "id": f.id, **f.tags},
                }
            )
    return {**empty, "features": feats}
