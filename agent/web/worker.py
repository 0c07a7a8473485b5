"""The workbench's session runs, in a process of their own.

The page's server stays small and responsive whatever the photos: decoding an 80-megapixel upload,
the OCR models, the GeoNames indexes and the planner all live in a worker process (``spawn``ed, so it
shares no thread or lock with the server), which opens the same session store (SQLite in WAL mode, or
PostgreSQL) and writes every step as a checkpoint, as the CLI does. Each step of a run comes back to
the server over a queue and is published to the page as a live event. A worker that dies (out of
memory, killed) is replaced on the next job; the session resumes from its last checkpoint.
"""

from __future__ import annotations

import io
import multiprocessing
import queue as queue_mod
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

THUMB_PX = 320
"""Longest side of the thumbnails the sessions list shows, pixels."""
_STORE = None
_EVENTS = None


def _init(store_url: str, events) -> None:
    """Worker start: open the session store once; remember the event queue."""
    global _STORE, _EVENTS
    from geolocate.agent.session import SessionStore

    _STORE = SessionStore(store_url)
    _EVENTS = events


def _on_step(sid: str) -> Callable:
    def on_step(node: str, ep) -> None:
        last = ep.turns[-1].observations[-1].text if ep.turns and ep.turns[-1].observations else ""
        _EVENTS.put((sid, {"type": "step", "node": node, "turn": len(ep.turns), "text": last[:200]}))

    return on_step


def run_job(op: str, sid: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One job in the worker: ``create``, ``move``, ``fork``, ``switch`` (a session run, its steps sent
    as events), ``validate`` (decode an uploaded photo: None or the message) or ``thumbnail`` (JPEG
    bytes). Returns ``{"ok": ...}`` or ``{"error": message}``; never raises for a session's error."""
    from geolocate.agent.options import RunOptions
    from geolocate.agent.session import SessionError
    from geolocate.tools.errors import GeolocateError

    store = _STORE
    try:
        if op == "create":
            kw = dict(kwargs)
            kw["options"] = RunOptions.model_validate(kw.get("options") or {})
            store.create(kw.pop("photo"), on_step=_on_step(sid), sid=sid, **kw)
        elif op == "move":
            store.move(sid, kwargs["move"], on_step=_on_step(sid))
        elif op == "fork":
            store.fork(sid, kwargs["checkpoint"], on_step=_on_step(sid))
        elif op == "switch":
            store.switch(sid, kwargs["branch"])
        elif op == "split":
            store.split(sid, kwargs["media"], on_step=_on_step(sid))
        elif op == "validate":
            from geolocate.tools.image import load_image

            load_image(kwargs["path"])
        elif op == "thumbnail":
            return {"ok": thumbnail(store, store.view(sid, with_branches=False).info)}
        elif op == "case_images":
            return {"ok": case_images(store, store.view(sid, with_branches=False).info)}
        elif op == "export_medium":
            return {"ok": export_medium(store, store.view(sid, with_branches=False).info, **kwargs)}
        else:
            return {"error": f"unknown job {op!r}"}
    except (SessionError, GeolocateError, ValueError, OSError) as e:
        return {"error": " ".join(str(e).split())}
    return {"ok": None}


def thumbnail(store, info) -> bytes:
    """A small JPEG of the session's photo (the store's copy), at most :data:`THUMB_PX` a side. JPEGs
    are decoded at a reduced size (Pillow's draft mode), so a huge photo is never held whole.

    Raises:
        SessionError: no copy and no unchanged file; GeolocateError: not an image.
    """
    from PIL import Image

    from geolocate.tools.errors import InputImageError
    from geolocate.tools.image import register_heif, to_rgb8

    data = store.media(info.sha256)
    if data is None:
        data = store.examined_image(info).data
    register_heif()
    try:
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", (THUMB_PX, THUMB_PX))
        im.thumbnail((THUMB_PX, THUMB_PX))
        rgb, _ = to_rgb8(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputImageError(f"cannot make a thumbnail: {e}") from None
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


CASE_IMAGE_PX = 1280
"""Longest side of the case images (photos, keyframes) the case page shows, pixels."""


def case_images(store, info) -> dict[str, bytes]:
    """Every photo and keyframe of a case session as a JPEG of at most :data:`CASE_IMAGE_PX` a side,
    keyed by the SHA-256 the trajectory lists for it (of the file for a photo, of the pixels for a
    frame)."""
    case = store.examined_case(info)
    out = {}
    for m in case.media:
        for im in m.images:
            rgb = im.image.image.copy()
            rgb.thumbnail((CASE_IMAGE_PX, CASE_IMAGE_PX))
            buf = io.BytesIO()
            rgb.save(buf, format="JPEG", quality=85)
            out[m.sha256 if m.kind == "photo" else im.image.sha256] = buf.getvalue()
    return out


def export_medium(store, info, sha256: str, path: str) -> str:
    """Write the stored copy of the case's medium ``sha256`` to ``path`` (mode 0600; the page's video
    player reads it with range requests); returns the path.

    Raises:
        SessionError: not a medium of this session, or the store holds no copy and the file changed.
    """
    from pathlib import Path

    from geolocate.agent.session import SessionError
    from geolocate.tools.files import write_output

    ref = next((m for m in info.media if m["sha256"] == sha256), None)
    if ref is None:
        raise SessionError(f"session {info.id} has no medium {sha256[:12]}...")
    data = store.media(sha256)
    if data is None:
        import hashlib

        data = Path(ref["path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SessionError(f"{ref['path']} changed since the session started and the store has no copy")
    write_output(path, data, private=True)
    return path


class SessionWorker:
    """A pool of one worker process (``spawn``) for the session runs of one store; ``on_event(sid,
    event)`` is called in a thread of the server for each step."""

    def __init__(self, store_url: str, on_event: Callable[[str, dict], None], processes: int = 1):
        self.store_url, self.on_event, self.processes = store_url, on_event, processes
        self._ctx = multiprocessing.get_context("spawn")
        self._events = self._ctx.Queue()
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._drain, name="geolocate-events", daemon=True).start()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=self._ctx,
                    initializer=_init,
                    initargs=(self.store_url, self._events),
                )
            return self._pool

    def submit(self, op: str, sid: str | None, **kwargs) -> Future:
        """Run ``op`` in the worker; a broken pool (the worker died) is replaced once."""
        try:
            return self._executor().submit(run_job, op, sid, kwargs)
        except BrokenProcessPool:
            with self._lock:
                self._pool = None
            return self._executor().submit(run_job, op, sid, kwargs)

    def call(self, op: str, sid: str | None = None, timeout: float = 600.0, **kwargs) -> dict[str, Any]:
        """``submit`` and wait for the result (validation, thumbnails)."""
        try:
            return self.submit(op, sid, **kwargs).result(timeout=timeout)
        except BrokenProcessPool:
            with self._lock:
                self._pool = None
            return {"error": "the worker process stopped (out of memory?); try again"}

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                sid, event = self._events.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            except (EOFError, OSError):
                return
            try:
                self.on_event(sid, event)
            except Exception:  # noqa: BLE001 - a page that went away must not stop the events
                pass

    def shutdown(self) -> None:
        """Wait for the running job (it reaches its next checkpoint), then stop the worker."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
