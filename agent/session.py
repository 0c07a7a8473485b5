"""Investigator sessions: durable, resumable runs of the agent with the analyst in the loop.

A session is a LangGraph thread over the agent graph (:mod:`geolocate.agent.graph`) compiled with a
checkpointer: ``SqliteSaver`` in one file under the data folder by default, ``PostgresSaver`` for a
team (``--store postgresql://...``). Every graph step is a checkpoint written before the next step
starts (``durability="sync"``), so a session killed at any point resumes from its last step with
nothing lost and nothing recorded twice. There is no second persistence layer: the session's settings,
the Episode, the analyst's moves and the branches all live in the checkpoints.

The graph pauses with ``interrupt()`` at review points (a commitment at a level the analyst asked
to review, or the answer) and after the answer; the analyst's decision or move resumes it with
``Command(resume=...)``. Forking from an earlier checkpoint (``update_state``) makes a new branch in
the same thread; the branch of the newest checkpoint is the current one.

This module is the one API that the CLI (``geolocate session ...``) and the web workbench call.

Errors are :class:`SessionError` (a ``ValueError``): unknown or ambiguous id, nothing pending, a
photo that changed on disk, a store that cannot be opened, a session in use by another process.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.types import Command
from pydantic import BaseModel, Field

from geolocate.agent.analyst import DECISIONS, MOVE, default_author, parse_review_levels, utc_now
from geolocate.agent.graph import END, AgentContext, build_graph, recursion_limit, route
from geolocate.agent.options import RunOptions
from geolocate.agent.state import Budget, EpisodeState
from geolocate.tools.errors import GeolocateError
from geolocate.tools.files import OutputError, make_private

SERDE_TYPES = [
    ("geolocate.agent.state", "EpisodeState"),
    ("geolocate.agent.stages", "Level"),
    ("geolocate.agent.actions", "ToolCall"),
    ("geolocate.agent.actions", "Commit"),
    ("geolocate.agent.actions", "Backtrack"),
    ("geolocate.agent.actions", "Answer"),
    ("geolocate.agent.session", "SessionInfo"),
    ("geolocate.agent.options", "RunOptions"),
    ("geolocate.agent.state", "Budget"),
]
"""The types a checkpoint may hold (LangGraph's msgpack allow-list: nothing else is deserialised)."""


class SessionError(GeolocateError, ValueError):
    """A session operation that cannot be done; the message says why and what to do (CLI exit 2)."""


def one_line(e: object) -> str:
    return " ".join(str(e).split())


def store_error(e: BaseException) -> str:
    """A store's error in one line (``database or disk is full`` says the disk is full)."""
    text = one_line(e)
    return "no space left on the device (disk full)" if "full" in text.lower() else text


def store_write_error(url: str, e: BaseException) -> Exception:
    """An error writing the store: a full disk is an :class:`OutputError` (CLI exit 1; the steps
    already checkpointed are kept and ``session resume`` goes on), anything else a SessionError."""
    if "full" in str(e).lower():
        return OutputError(f"session store {url}: no space left on the device (disk full)")
    return SessionError(f"session store {url}: {one_line(e)}")


def data_home() -> Path:
    """Where sessions live: ``$GEOLOCATE_HOME``, else the platform's user data folder."""
    import platformdirs

    return Path(os.environ.get("GEOLOCATE_HOME") or platformdirs.user_data_dir("geolocate"))


def default_store() -> str:
    """The default store: ``sessions.sqlite`` in :func:`data_home`."""
    return str(data_home() / "sessions.sqlite")


class SessionInfo(BaseModel):
    """A session's settings, kept in its checkpoints so that any process can resume it."""

    id: str
    photo: str = Field(description="absolute path of the photo")
    sha256: str
    policy: str = "heuristic"
    policy_args: dict[str, Any] = {}
    tools: list[str]
    review: list[str] = []
    options: RunOptions = RunOptions()
    author: str
    created: str = Field(description="UTC, ISO 8601")
    media: list[dict[str, Any]] = Field(
        default_factory=list,
        description="a case of several media: each medium's absolute path, SHA-256 and kind (photo or "
        "video), in order (ids m1, m2...); empty for a session on one photo (``photo``, ``sha256``)",
    )
    video_options: dict[str, float] = Field(
        default_factory=dict, description="how the case's videos are keyframed (max_frames, min_gap_s...)"
    )
    split_from: str | None = Field(None, description="the session this one was split from, and its media")


@dataclass
class Branch:
    """One branch of a session: the path from the first checkpoint to a leaf of the checkpoint tree."""

    head: str
    """Checkpoint id of the leaf."""
    short: str
    updated: str
    current: bool
    episode: EpisodeState
    concluded: bool


@dataclass
class SessionView:
    """What a session looks like at its current (or a given) checkpoint."""

    info: SessionInfo
    episode: EpisodeState
    checkpoint: str
    updated: str
    pending: dict | None
    """The interrupt value: a review request (``kind`` review) or the after-answer pause (``done``)."""
    concluded: bool
    next: tuple[str, ...]
    branches: list[Branch] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``review`` (waiting for a decision), ``answered`` (paused after the answer), ``concluded``,
        or ``interrupted`` (stopped mid-run: resume it)."""
        if self.concluded:
            return "concluded"
        if self.pending is not None:
            return "review" if self.pending.get("kind") == "review" else "answered"
        return "interrupted" if self.next else "concluded"


@dataclass
class HistoryEntry:
    """One checkpoint on a branch: its id, step, what the step did and the chain after it."""

    checkpoint: str
    short: str
    step: int
    source: str
    node: str
    ts: str
    summary: str


MAX_STORED_MEDIUM_BYTES = 512 * 1024 * 1024
"""Media up to this size are copied into the store (a session resumes although the file changed);
a larger video is re-read from its path and checked against its SHA-256."""


def _is_photo(path: str | Path) -> bool:
    from geolocate.tools.media import is_image_file

    return not Path(path).is_file() or is_image_file(path)


def _medium_bytes(m) -> bytes:
    """The bytes of a case's medium to keep in the store (empty: too large, the path is used)."""
    if m.kind == "photo":
        return m.images[0].image.data
    if m.size_bytes > MAX_STORED_MEDIUM_BYTES:
        return b""
    try:
        return Path(m.path).read_bytes()
    except OSError:  # gone since it was read (a split of a stored case): the store has its copy
        return b""


def short_id(checkpoint_id: str) -> str:
    """The last 8 hex digits of a checkpoint id (its random part), shown to people."""
    return checkpoint_id.replace("-", "")[-8:]


class SessionStore:
    """A store of sessions: a SQLite file (default) or a PostgreSQL database.

    Args:
        url: a file path or ``sqlite:///path``; ``postgresql://...`` for PostgreSQL; None for
            :func:`default_store`.

    Raises:
        SessionError: the store cannot be opened (not a database, locked, unreachable).
    """

    def __init__(self, url: str | None = None):
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

        self.url = str(url or default_store())
        self._listing: dict[str, tuple] = {}
        self._media_lock = threading.Lock()
        serde = JsonPlusSerializer(allowed_msgpack_modules=SERDE_TYPES)
        try:
            if self.url.startswith(("postgresql://", "postgres://")):
                self._open_postgres(serde)
            else:
                self._open_sqlite(serde, create_folder=url is None)
        except SessionError:
            raise
        except (sqlite3.Error, OSError) as e:
            if "full" in str(e).lower():
                raise store_write_error(self.url, e) from None
            raise SessionError(f"cannot open the session store {self.url}: {store_error(e)}") from None
        except Exception as e:  # psycopg errors: the module is optional
            if type(e).__module__.startswith("psycopg"):
                raise SessionError(f"cannot open the session store {self.url}: {one_line(e)}") from None
            raise
        self.graph = build_graph(self.saver)

    def _open_sqlite(self, serde, create_folder: bool) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = Path(self.url.removeprefix("sqlite:///"))
        if create_folder:  # the default store's folder (the user data folder) is made, private
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        elif not path.parent.is_dir():
            raise SessionError(
                f"cannot open the session store {self.url}: the folder {path.parent} does not exist"
            )
        if path.is_dir():
            raise SessionError(f"cannot open the session store {self.url}: it is a folder")
        if not path.exists():  # private from the first byte: investigations are nobody else's business
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.kind, self.path = "sqlite", path
        self.conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self.conn.execute(
            "PRAGMA journal_mode=WAL"
        )  # readers (a second CLI, the web page) never block the writer
        self.saver = SqliteSaver(self.conn, serde=serde)
        self.saver.setup()
        self.conn.execute("SELECT count(*) FROM checkpoints").fetchone()
        with self.saver.lock:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS geolocate_media (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL, "
                "name TEXT, format TEXT, added TEXT)"
            )
            self.conn.commit()
        for suffix in ("", "-wal", "-shm"):
            make_private(f"{path}{suffix}")

    def _open_postgres(self, serde) -> None:
        try:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg.rows import dict_row
        except ImportError:
            raise SessionError(
                "a PostgreSQL session store needs the postgres extra: pip install 'geolocate-agent[postgres]'"
            ) from None

        self.kind, self.path = "postgres", None
        self.conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        self.saver = PostgresSaver(self.conn, serde=serde)
        self.saver.setup()
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS geolocate_media (sha256 TEXT PRIMARY KEY, data BYTEA NOT NULL, "
            "name TEXT, format TEXT, added TEXT)"
        )

    # -- the examined bytes, content-addressed -----------------------------------------------------
    def put_media(self, data: bytes, name: str, image_format: str) -> str:
        """Keep ``data`` (a photo's bytes) in the store under its SHA-256; returns the hash. The same
        bytes are stored once, whatever their name.

        Raises:
            SessionError: the store cannot be written (a full disk says so).
        """
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        row = (sha, data, Path(name).name[:255], image_format, utc_now())
        try:
            if self.kind == "postgres":
                self.conn.execute(
                    "INSERT INTO geolocate_media VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                    row,
                )
            else:
                with self.saver.lock:
                    self.conn.execute("INSERT OR IGNORE INTO geolocate_media VALUES (?, ?, ?, ?, ?)", row)
                    self.conn.commit()
        except sqlite3.Error as e:
            raise store_write_error(self.url, e) from None
        return sha

    def media(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256`` (checked against it), or None when the store has none
        (a session made before the store kept copies)."""
        import hashlib

        if self.kind == "postgres":
            row = self.conn.execute(
                "SELECT data FROM geolocate_media WHERE sha256 = %s", (sha256,)
            ).fetchone()
            data = bytes(row["data"]) if row else None
        else:
            with self.saver.lock:
                row = self.conn.execute(
                    "SELECT data FROM geolocate_media WHERE sha256 = ?", (sha256,)
                ).fetchone()
            data = bytes(row[0]) if row else None
        if data is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise SessionError(f"the stored copy of photo {sha256[:12]}... is damaged (its hash differs)")
        return data

    def examined_case(self, info: SessionInfo):
        """The case a session of several media examines (:class:`geolocate.tools.media.Case`), each
        medium from the store's copy, else from its path checked against its SHA-256; a session on one
        photo gives its photo (:meth:`examined_image`).

        Raises:
            SessionError: a medium with no copy whose file is gone, unreadable or changed.
        """
        import io

        from geolocate.tools.errors import InputImageError
        from geolocate.tools.image import decode_image
        from geolocate.tools.media import Case, CaseImage, Medium, load_medium

        if not info.media:
            return self.examined_image(info)
        media = []
        for i, ref in enumerate(info.media, start=1):
            mid, data = f"m{i}", self.media(ref["sha256"])
            try:
                if data is None:
                    m = load_medium(ref["path"], mid, **info.video_options)
                    if m.sha256 != ref["sha256"]:
                        raise SessionError(
                            f"session {info.id}: {ref['path']} changed on disk since the session started and "
                            "the store has no copy of the examined one"
                        )
                elif ref["kind"] == "photo":
                    im = decode_image(data, ref["path"])
                    m = Medium(
                        mid, ref["path"], ref["sha256"], "photo", len(data), (CaseImage(mid, mid, im),)
                    )
                else:
                    m = load_medium(io.BytesIO(data), mid, name=ref["path"], **info.video_options)
            except InputImageError as e:
                raise SessionError(f"session {info.id}: {e}") from None
            media.append(m)
        return Case(tuple(media))

    def examined_image(self, info: SessionInfo):
        """The photo the session examines (a case's first image), decoded from the store's copy (or,
        for a session made before the store kept copies, from its path, checked against its SHA-256).

        Raises:
            SessionError: no copy and the file is gone, unreadable or changed.
        """
        from geolocate.tools.errors import InputImageError
        from geolocate.tools.image import decode_image, load_image

        if info.media:
            return self.examined_case(info).primary
        data = self.media(info.sha256)
        try:
            if data is not None:
                return decode_image(data, info.photo)
            image = load_image(info.photo)
        except InputImageError as e:
            raise SessionError(f"session {info.id}: {e}") from None
        if image.sha256 != info.sha256:
            raise SessionError(
                f"session {info.id}: the photo {info.photo} changed on disk since the session started "
                f"(SHA-256 {image.sha256[:12]}... != {info.sha256[:12]}...) and the store has no copy of the "
                "examined one"
            )
        return image

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- ids, locks ------------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """Every session id in the store, newest activity first."""
        seen: dict[str, None] = {}
        for c in self.saver.list(None):
            seen.setdefault(c.config["configurable"]["thread_id"], None)
        return list(seen)

    def resolve(self, prefix: str) -> str:
        """The one session whose id starts with ``prefix``.

        Raises:
            SessionError: none, or several (the message lists them).
        """
        prefix = prefix.strip()
        hits = [i for i in self.ids() if i.startswith(prefix)] if prefix else []
        if not hits:
            raise SessionError(f"no session {prefix!r} in {self.url} (geolocate session list shows them)")
        if len(hits) > 1 and prefix not in hits:
            raise SessionError(f"session id {prefix!r} is ambiguous: {', '.join(sorted(hits))}")
        return prefix if prefix in hits else hits[0]

    @contextlib.contextmanager
    def lock(self, sid: str) -> Iterator[None]:
        """Exclusive use of session ``sid`` by this process: never two writers.

        Raises:
            SessionError: another process holds it (a run in progress).
        """
        if self.kind == "postgres":
            key = int.from_bytes(sid.encode()[:8].ljust(8, b"\0"), "big", signed=True)
            got = self.conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()["ok"]
            if not got:
                raise SessionError(
                    f"session {sid} is in use by another process; try again when it has paused"
                )
            try:
                yield
            finally:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return
        from filelock import FileLock, Timeout

        locks = self.path.with_name(self.path.name + ".locks")
        locks.mkdir(exist_ok=True)
        lock = FileLock(str(locks / f"{sid}.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise SessionError(
                f"session {sid} is in use by another process; try again when it has paused"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def in_use(self, sid: str) -> bool:
        """Whether another process is running session ``sid`` now."""
        try:
            with self.lock(sid):
                return False
        except SessionError:
            return True

    # -- create, run, move -------------------------------------------------------------------------------
    def create(
        self,
        photo: str | Path | list[str | Path],
        *,
        review: list[str] | None = None,
        policy: str = "heuristic",
        policy_args: dict[str, Any] | None = None,
        tools: str = "all",
        no_exif: bool = False,
        budget: Budget | None = None,
        options: RunOptions | None = None,
        author: str | None = None,
        on_step: Callable[[str, EpisodeState], None] | None = None,
        sid: str | None = None,
        video_options: dict[str, float] | None = None,
        split_from: str | None = None,
    ) -> SessionView:
        """Start a session on ``photo`` (a path, or a list of photo and video paths: one case, one
        chain) and run it to its first pause (review point or answer). ``video_options`` say how
        videos are keyframed (:func:`geolocate.tools.media.keyframes`). A medium that cannot be used
        is left out with a warning in the episode; the others run.
        ``sid``: the new session's id (default: 8 random hex digits), for a caller that follows the
        session before it has its first checkpoint (the web workbench).

        Raises:
            InputImageError: the photo cannot be used; UnknownToolError / UnknownNameError: bad tools
            or policy; ValueError: bad options.
        """
        from geolocate.agent.policies import make_policy
        from geolocate.tools.image import load_image
        from geolocate.tools.media import Case, load_case
        from geolocate.tools.registry import ToolSet

        paths = list(photo) if isinstance(photo, list | tuple) else [photo]
        if isinstance(photo, Case):
            case = photo
            image = case
        elif len(paths) == 1 and (video_options is None or not video_options) and _is_photo(paths[0]):
            case = None
            image = load_image(paths[0])
        else:
            case = load_case(paths, **(video_options or {}))
            image = case
        first = image if case is None else case.media[0]
        toolset = ToolSet.parse_spec(tools, exclude=["exif"] if no_exif else [])
        policy_obj = make_policy(policy, **(policy_args or {}))
        options = options or RunOptions()
        options.build()  # fail now on a bad backend, not at the first tool call
        if sid is not None and sid in self.ids():
            raise SessionError(f"session {sid} exists already")
        while sid is None or sid in self.ids():
            sid = secrets.token_hex(4)
        media = (
            []
            if case is None or case.single_photo
            else [
                {"path": str(Path(m.path).resolve()), "sha256": m.sha256, "kind": m.kind} for m in case.media
            ]
        )
        info = SessionInfo(
            id=sid,
            photo=str(Path(first.path).resolve()),
            sha256=first.sha256,
            media=media,
            video_options=video_options or {},
            split_from=split_from,
            policy=policy,
            policy_args=policy_args or {},
            tools=toolset.names,
            review=parse_review_levels(",".join(review or [])),
            options=options,
            author=author or default_author(),
            created=utc_now(),
        )
        from geolocate.agent.episode import Episode

        episode = Episode(image, toolset, budget=budget, policy=policy_obj.name).state
        inputs = {
            "episode": episode,
            "pending": [],
            "review": info.review,
            "approved": False,
            "pause_at_end": True,
            "concluded": False,
            "session": info,
        }
        with self.lock(sid):
            if not media:
                one = image if case is None else case.primary
                self.put_media(one.data, one.path, one.format)
            for m in case.media if media else []:
                data = _medium_bytes(m)
                if data and hashlib.sha256(data).hexdigest() == m.sha256:
                    self.put_media(data, m.path, m.kind)
            self._stream(
                info, inputs, self._config(sid, episode.budget), on_step, image=image, policy=policy_obj
            )
        return self.view(sid)

    def split(
        self, sid: str, media_ids: list[str], on_step: Callable[[str, EpisodeState], None] | None = None
    ) -> tuple[SessionView, SessionView]:
        """Split a case: two new sessions, one on the media ``media_ids`` names (m2, m3...), one on the
        others, each with its own Chain of Region, run to its first pause with the original's tools,
        planner, review levels and options. The original session is left as it is (the record).

        Raises:
            SessionError: a session on one photo, an unknown medium, or all or none of the media named.
        """
        from geolocate.tools.errors import ToolInputError
        from geolocate.tools.media import subcase

        view = self.view(sid, with_branches=False)
        info = view.info
        named, rest = self.check_split(sid, media_ids)
        case = self.examined_case(info)
        out = []
        for group in (named, rest):
            try:
                part = subcase(case, group)
            except ToolInputError as e:
                raise SessionError(str(e)) from None
            v = self.create(
                part,
                review=info.review,
                policy=info.policy,
                policy_args=info.policy_args,
                tools=",".join(info.tools),
                budget=view.episode.budget,
                options=info.options,
                author=info.author,
                on_step=on_step,
                video_options=info.video_options,
                split_from=f"{sid} ({', '.join(group)})",
            )
            out.append(v)
        return out[0], out[1]

    def relation_move(self, sid: str, other: str, within_km: float) -> dict[str, Any]:
        """The analyst move that relates session ``sid`` to ``other``: ``sid`` was taken within
        ``within_km`` km of where ``other`` answered, i.e. a circle constraint around ``other``'s answer
        with radius ``within_km`` + its answer radius (km, great-circle). ``other`` is not changed
        (relate it the other way for both).

        Raises:
            SessionError: the same session, ``other`` has no answer yet, ``within_km`` not above 0.
        """
        if not (within_km > 0 and math.isfinite(within_km)):
            raise SessionError(f"the distance must be a positive number of km (got {within_km})")
        sid, other = self.resolve(sid), self.resolve(other)
        if sid == other:
            raise SessionError("relate two different sessions")
        a = self.view(other, with_branches=False).episode.answer
        if a is None:
            raise SessionError(f"session {other} has no answer yet: relate to it once it answers")
        constraint = {
            "kind": "circle",
            "lat": a.lat,
            "lon": a.lon,
            "radius_km": round(min(within_km + a.radius_km, 20_000.0), 3),
            "source": f"within {within_km:g} km of session {other}'s answer, +- {a.radius_km:g} km",
        }
        return {"kind": "constrain", "constraint": constraint}

    def relate(
        self,
        sid: str,
        other: str,
        within_km: float,
        *,
        on_step: Callable[[str, EpisodeState], None] | None = None,
    ) -> SessionView:
        """Apply :meth:`relation_move` to ``sid`` and run to the next pause.

        Raises:
            SessionError: see :meth:`relation_move` and :meth:`move`.
        """
        return self.move(self.resolve(sid), self.relation_move(sid, other, within_km), on_step=on_step)

    def check_split(self, sid: str, media_ids: list[str]) -> tuple[list[str], list[str]]:
        """The media ids named and the rest, for :meth:`split`.

        Raises:
            SessionError: a session on one medium, an unknown medium, or all or none of them named.
        """
        info = self.view(sid, with_branches=False).info
        if len(info.media) < 2:
            raise SessionError(f"session {sid} examines one medium: there is nothing to split")
        all_ids = [f"m{i}" for i in range(1, len(info.media) + 1)]
        named = list(dict.fromkeys(media_ids))
        if unknown := [m for m in named if m not in all_ids]:
            raise SessionError(
                f"session {sid} has no medium {', '.join(unknown)} (media: {', '.join(all_ids)})"
            )
        rest = [m for m in all_ids if m not in named]
        if not named or not rest:
            raise SessionError("name some of the media to split off, not none or all of them")
        return named, rest

    def _config(self, sid: str, budget: Budget, checkpoint: str | None = None) -> dict:
        conf: dict[str, Any] = {"thread_id": sid, "checkpoint_ns": ""}
        if checkpoint:
            conf["checkpoint_id"] = checkpoint
        return {"configurable": conf, "recursion_limit": recursion_limit(budget) + 200}

    def _context(self, info: SessionInfo, force: bool = False, image=None, policy=None) -> AgentContext:
        from geolocate.agent.policies import make_policy
        from geolocate.tools.registry import ToolSet

        if image is None:
            image = self.examined_case(info)
        return AgentContext(
            image=image,
            tools=ToolSet.from_names(info.tools),
            policy=policy or make_policy(info.policy, **info.policy_args),
            options=info.options.build(),
        )

    def _stream(
        self, info: SessionInfo, inputs, config: dict, on_step, *, force=False, image=None, policy=None
    ):
        from geolocate.agent.graph import prepare_indexes

        prepare_indexes()  # built (first run) before any tool's time-out starts
        ctx = self._context(info, force=force, image=image, policy=policy)
        try:
            for chunk in self.graph.stream(
                inputs, config, context=ctx, stream_mode="updates", durability="sync"
            ):
                for node, value in chunk.items():
                    if on_step is not None and isinstance(value, dict) and "episode" in value:
                        on_step(node, value["episode"])
        except sqlite3.Error as e:  # every step so far is checkpointed: resume goes on from there
            raise store_write_error(self.url, e) from None

    def _snapshot(self, sid: str, checkpoint: str | None = None):
        snap = self.graph.get_state(self._config(sid, Budget(), checkpoint))
        if not snap.values:
            raise SessionError(f"no session {sid!r} in {self.url}")
        return snap

    def move(
        self,
        sid: str,
        move: dict | BaseModel,
        *,
        force: bool = False,
        on_step: Callable[[str, EpisodeState], None] | None = None,
    ) -> SessionView:
        """Apply the analyst's decision or move at the current pause and run to the next pause.

        ``move`` is a model of :mod:`geolocate.agent.analyst` or its dict (``{"kind": "hint", ...}``).

        Raises:
            SessionError: the session is not paused (interrupted: resume it first), a decision with
            nothing pending review, a session in use; pydantic ``ValidationError``: a malformed move.
        """
        m = move if isinstance(move, BaseModel) else MOVE.validate_python(move)
        with self.lock(sid):
            snap = self._snapshot(sid)
            info = snap.values["session"]
            self._check_move(sid, snap, m)
            config = self._config(sid, snap.values["episode"].budget)
            self._stream(info, Command(resume=m.model_dump(mode="json")), config, on_step, force=force)
        return self.view(sid)

    def check_move(self, sid: str, move: dict | BaseModel) -> None:
        """Raise :class:`SessionError` when ``move`` cannot be applied to session ``sid`` now (not
        paused, concluded, nothing pending for a decision, or :func:`~geolocate.agent.episode.move_error`);
        nothing is changed. The web workbench checks a move with this before running it.

        Raises:
            SessionError; pydantic ``ValidationError``: a malformed move.
        """
        m = move if isinstance(move, BaseModel) else MOVE.validate_python(move)
        self._check_move(sid, self._snapshot(sid), m)

    def _check_move(self, sid: str, snap, m) -> None:
        from geolocate.agent.episode import move_error

        if snap.values.get("concluded"):
            raise SessionError(f"session {sid} is concluded; fork it from an earlier checkpoint to go on")
        if not snap.interrupts:
            raise SessionError(
                f"session {sid} is not paused for the analyst (it stopped mid-run): "
                f"geolocate session resume {sid}"
            )
        pending = snap.interrupts[0].value
        if m.kind in DECISIONS and pending.get("kind") != "review":
            raise SessionError(f"nothing is pending review in session {sid}: {m.kind} needs a review point")
        if (why := move_error(snap.values["episode"], pending, m)) is not None:
            raise SessionError(f"session {sid}: {why}")

    def resume(
        self, sid: str, *, force: bool = False, on_step: Callable[[str, EpisodeState], None] | None = None
    ) -> SessionView:
        """Go on from the last checkpoint of a session stopped mid-run (killed, crashed); a paused or
        concluded session is left as it is."""
        with self.lock(sid):
            snap = self._snapshot(sid)
            if snap.next and not snap.interrupts:
                info = snap.values["session"]
                self._stream(
                    info, None, self._config(sid, snap.values["episode"].budget), on_step, force=force
                )
        return self.view(sid)

    def fork(
        self,
        sid: str,
        checkpoint: str,
        *,
        force: bool = False,
        on_step: Callable[[str, EpisodeState], None] | None = None,
    ) -> SessionView:
        """A new branch from an earlier checkpoint of the session: the state there becomes the newest
        checkpoint (so it is the current branch), and the agent runs on to its next pause. The other
        branches stay, and the report shows them."""
        with self.lock(sid):
            cp = self.find_checkpoint(sid, checkpoint)
            if not self._snapshot(sid, cp).next:
                raise SessionError(
                    f"checkpoint {short_id(cp)} is the end of its branch: fork from an earlier one"
                )
            self._restart_from(sid, cp, on_step, force)
        return self.view(sid)

    def switch(self, sid: str, branch: str) -> SessionView:
        """Make the branch whose head is ``branch`` (a checkpoint id or its short form) the current
        one: its state is copied to a new newest checkpoint, paused as it was."""
        with self.lock(sid):
            cp = self.find_checkpoint(sid, branch)
            if cp not in {b.head for b in self.branches(sid)}:
                raise SessionError(
                    f"{branch!r} is not the head of a branch of session {sid} (see session show)"
                )
            self._restart_from(sid, cp, None, False)
        return self.view(sid)

    def _restart_from(self, sid: str, cp: str, on_step, force: bool) -> None:
        """A child of checkpoint ``cp`` with the same state (``update_state`` as the planner), run to its
        next pause. Being the newest checkpoint, it makes its branch the current one."""
        snap = self._snapshot(sid, cp)
        info, budget = snap.values["session"], snap.values["episode"].budget
        new = self.graph.update_state(self._config(sid, budget, cp), {}, as_node="plan")
        if self.graph.get_state(new).next:
            self._stream(
                info, None, {**new, "recursion_limit": recursion_limit(budget) + 200}, on_step, force=force
            )

    def delete(self, sid: str) -> None:
        """Remove session ``sid`` and all its checkpoints."""
        with self.lock(sid):
            self.saver.delete_thread(sid)
            self._listing.pop(sid, None)

    # -- reading ---------------------------------------------------------------------------------------
    def ready(self, sid: str) -> bool:
        """Whether the session has its first real checkpoint (with an episode): a session being
        created first writes one that holds only its input."""
        head = self.saver.get_tuple({"configurable": {"thread_id": sid, "checkpoint_ns": ""}})
        return head is not None and "episode" in head.checkpoint.get("channel_values", {})

    def view(self, sid: str, checkpoint: str | None = None, with_branches: bool = True) -> SessionView:
        """The session at its current checkpoint (or ``checkpoint``)."""
        snap = self._snapshot(sid, self.find_checkpoint(sid, checkpoint) if checkpoint else None)
        v = snap.values
        return SessionView(
            info=v["session"],
            episode=v["episode"],
            checkpoint=snap.config["configurable"]["checkpoint_id"],
            updated=snap.created_at or "",
            pending=snap.interrupts[0].value if snap.interrupts else None,
            concluded=bool(v.get("concluded")),
            next=tuple(snap.next),
            branches=self.branches(sid) if with_branches else [],
        )

    def _tuples(self, sid: str) -> list:
        """Every checkpoint of the session, newest first. Checkpoints never change once written, so the
        listing is cached until the head checkpoint (or its pending writes: a pause adds one) changes."""
        head = self.saver.get_tuple({"configurable": {"thread_id": sid, "checkpoint_ns": ""}})
        key = (
            None
            if head is None
            else (head.config["configurable"]["checkpoint_id"], len(head.pending_writes or []))
        )
        cached = self._listing.get(sid)
        if cached is not None and cached[0] == key:
            return cached[1]
        tuples = list(self.saver.list({"configurable": {"thread_id": sid}}))
        self._listing[sid] = (key, tuples)
        return tuples

    def find_checkpoint(self, sid: str, ref: str) -> str:
        """The full checkpoint id of session ``sid`` that ``ref`` names (full id, or a unique suffix
        or prefix such as the 8-digit short form).

        Raises:
            SessionError: none or several match.
        """
        ids = [t.config["configurable"]["checkpoint_id"] for t in self._tuples(sid)]
        ref = ref.strip()
        hits = (
            [i for i in ids if i == ref or i.replace("-", "").endswith(ref) or i.startswith(ref)]
            if ref
            else []
        )
        if len(hits) != 1:
            what = "no" if not hits else f"{len(hits)}"
            raise SessionError(
                f"{what} checkpoint of session {sid} matches {ref!r} (session history lists them)"
            )
        return hits[0]

    def branches(self, sid: str) -> list[Branch]:
        """Every branch (leaf of the checkpoint tree), newest first; the first is the current one."""
        tuples = self._tuples(sid)
        parents = {(t.parent_config or {}).get("configurable", {}).get("checkpoint_id") for t in tuples}
        leaves = [t for t in tuples if t.config["configurable"]["checkpoint_id"] not in parents]
        out = []
        for t in leaves:
            cp = t.config["configurable"]["checkpoint_id"]
            values = t.checkpoint["channel_values"]
            if "episode" not in values:  # a session being created: its first checkpoint holds the input only
                continue
            out.append(
                Branch(
                    head=cp,
                    short=short_id(cp),
                    updated=t.checkpoint.get("ts", ""),
                    current=not out,
                    episode=values["episode"],
                    concluded=bool(values.get("concluded")),
                )
            )
        return out

    def history(self, sid: str, checkpoint: str | None = None) -> list[HistoryEntry]:
        """The checkpoints of the current branch (or the branch ending at ``checkpoint``), oldest first."""
        by_id = {t.config["configurable"]["checkpoint_id"]: t for t in self._tuples(sid)}
        if not by_id:
            raise SessionError(f"no session {sid!r} in {self.url}")
        cur = self.find_checkpoint(sid, checkpoint) if checkpoint else next(iter(by_id))
        path = []
        while cur in by_id:
            t = by_id[cur]
            path.append(t)
            cur = (t.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        out = []
        for t in reversed(path):
            cp = t.config["configurable"]["checkpoint_id"]
            values = t.checkpoint["channel_values"]  # deserialised by the saver: no get_state per step
            ep = values.get("episode")
            nxt = (route(values),) if ep is not None else ("assess",)
            nxt = () if nxt == (END,) else nxt
            writes = [w for w in (t.pending_writes or []) if w[1] == "__interrupt__"]
            chain = ", ".join(f"{lv.value}={c.value}" for lv, c in ep.chain.items()) if ep else ""
            what = f"{len(ep.evidence)} evidence, chain: {chain or '-'}" if ep else "start"
            if writes:
                what += "; waiting for review" if "review" in nxt else "; paused after the answer"
            out.append(
                HistoryEntry(
                    checkpoint=cp,
                    short=short_id(cp),
                    step=int(t.metadata.get("step", -1)),
                    source=str(t.metadata.get("source", "")),
                    node=",".join(nxt) or "end",
                    ts=t.checkpoint.get("ts", ""),
                    summary=what,
                )
            )
        return out

    def summaries(self) -> list[dict]:
        """One line of facts per session for listings: id, photo, status, answer, last change."""
        out = []
        for sid in self.ids():
            try:
                v = self.view(sid, with_branches=False)
            except SessionError:
                continue
            a = v.episode.answer
            out.append(
                {
                    "id": sid,
                    "photo": v.info.photo,
                    "media": len(v.info.media) or 1,
                    "status": "running" if v.status == "interrupted" and self.in_use(sid) else v.status,
                    "answer": None if a is None else {"lat": a.lat, "lon": a.lon, "radius_km": a.radius_km},
                    "chain": {lv.value: c.value for lv, c in v.episode.chain.items()},
                    "updated": v.updated,
                    "created": v.info.created,
                }
            )
        return out
