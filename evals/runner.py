"""Run a policy over a dataset: episodes in parallel, resumable JSONL of trajectories.

Each finished episode is appended to the JSONL as one record ``{"id", "lat", "lon", "pred_lat",
"pred_lon", "error_km", "seconds", "trajectory"}``; a rerun with the same file skips the ids already
there, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from geolocate.agent.graph import run_episode
from geolocate.agent.policies import Policy, make_policy
from geolocate.agent.state import Budget
from geolocate.evals.datasets import Dataset, Sample
from geolocate.tools.errors import InputImageError
from geolocate.tools.files import OutputError, describe_os_error, open_append, write_output
from geolocate.tools.geo import haversine_km
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet

log = logging.getLogger(__name__)


def valid_record(rec: object) -> str | None:
    """Why ``rec`` is not a usable result record, or None when it is: a dict with a string ``id`` and
    either an ``error`` (an unusable image) or finite numbers for ``lat``, ``lon``, ``pred_lat`` and
    ``pred_lon`` in range (and ``error_km`` >= 0 when present)."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if not isinstance(rec.get("id"), str):
        return "no string id"
    keys = ("lat", "lon") + (() if "error" in rec else ("pred_lat", "pred_lon"))
    for k in keys + (("error_km",) if "error_km" in rec else ()):
        v = rec.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"{k} is {v!r}, not a finite number"
        limit = 90.0 if k.endswith("lat") else 180.0 if k.endswith("lon") else math.inf
        if abs(v) > limit or (k == "error_km" and v < 0):
            return f"{k} {v!r} is out of range"
    return None


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Records of a results file (the header line apart). A line that is not a usable record (a
    killed run's half line, ``{}``, ``null``, bytes that are not UTF-8, ``"lat": "oops"``) is skipped
    with a warning giving its line number and byte offset; with ``repair`` the file is rewritten
    without such lines so that appending can go on safely. A record whose id appears again later
    replaces the earlier one (the later line is the newer result).

    Raises:
        OutputError: ``repair`` could not rewrite the file (disk full, read-only).
    """
    p = Path(path)
    if not p.exists():
        return []
    raw = p.read_bytes()
    out: dict[str, dict[str, Any]] = {}
    bad, header, offset = 0, None, 0
    for n, line in enumerate(raw.split(b"\n"), 1):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        why = None
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            rec, why = None, "not UTF-8 text"
        except json.JSONDecodeError:
            rec, why = None, "not JSON (a half-written line?)"
        if isinstance(rec, dict) and "header" in rec and n == 1:
            header = rec
            continue
        why = why or valid_record(rec)
        if why is None:
            out[rec["id"]] = rec
        else:
            bad += 1
            log.warning("%s, line %d (byte offset %d): %s; skipped", p.name, n, start, why)
    if repair and (bad or not raw.endswith(b"\n")):
        from geolocate.tools.files import write_output

        lines = ([header] if header else []) + list(out.values())
        write_output(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    return list(out.values())


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The settings a results file was written with (its first line), or None (no file, or an older
    file without a header)."""
    p = Path(path)
    if not p.exists():
        return None
    with open(p, "rb") as f:
        first = f.readline()
    try:
        rec = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec.get("header") if isinstance(rec, dict) else None


class ResumeMismatchError(ValueError):
    """A results file was written with other settings than this run's (the message says which)."""


def check_resume(out: str | Path, settings: dict[str, Any], force: bool = False) -> None:
    """Refuse to resume into ``out`` when it was written with other settings (policy, tool set,
    budget, seed); with ``force`` the old file is kept as ``<out>.bak`` and the run starts afresh.

    Raises:
        ResumeMismatchError: the settings differ and ``force`` is off.
    """
    p = Path(out)
    if not p.exists() or p.stat().st_size == 0:
        return
    old = read_header(p)
    if old is None:  # an older file: compare with what its records say
        recs = read_jsonl(p)
        old = {k: recs[0].get(k) for k in ("policy", "tools")} if recs else None
    diff = {k: (old.get(k), v) for k, v in settings.items() if old is not None and k in old and old[k] != v}
    if not diff:
        return
    if not force:
        what = "; ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ResumeMismatchError(
            f"{p} holds results of another run ({what}): give another --out, or --force to start afresh "
            f"(the old file is kept as {p.name}.bak)"
        )
    p.replace(p.with_suffix(p.suffix + ".bak"))


def run_one(
    sample: Sample, policy: Policy, tools: str, budget: Budget, keep_trajectory: bool = True, seed: int = 0
) -> dict[str, Any]:
    """One episode on one sample; unusable images give a record with ``error`` and no prediction.

    ``seed`` is recorded (sampling policies get it through their own ``seed`` option).
    """
    t = time.perf_counter()
    rec: dict[str, Any] = {
        "id": sample.id,
        "lat": sample.lat,
        "lon": sample.lon,
        "policy": policy.name,
        "tools": tools,
        "seed": seed,
    }
    try:
        image = load_image(sample.image)
    except InputImageError as e:
        return {**rec, "error": str(e), "seconds": round(time.perf_counter() - t, 4)}
    state = run_episode(image, ToolSet.parse_spec(tools), policy, budget)
    a = state.answer
    rec.update(
        pred_lat=a.lat,
        pred_lon=a.lon,
        radius_km=a.radius_km,
        localizability=a.localizability,
        answer_source=a.source,
        error_km=round(float(haversine_km(a.lat, a.lon, sample.lat, sample.lon)), 4),
        status=state.status,
        chain={lv.value: c.value for lv, c in state.chain.items()},
        tool_calls={e.tool: sum(x.tool == e.tool for x in state.evidence) for e in state.evidence},
        tool_failures={
            e.tool: sum(x.tool == e.tool and not x.ok for x in state.evidence) for e in state.evidence
        },
        seconds=round(time.perf_counter() - t, 4),
    )
    if keep_trajectory:
        rec["trajectory"] = state.dump()
    return rec


def run_dataset(
    dataset: Dataset,
    policy: str | Policy = "heuristic",
    tools: str = "all,-exif",
    budget: Budget | None = None,
    out: str | Path | None = None,
    workers: int = 1,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    keep_trajectory: bool = True,
    seed: int = 0,
    force: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield one record per sample (finished ones from ``out`` first, unchanged).

    ``policy`` is a policy name or instance (one instance serves every episode: a model loads once).
    ``tools`` is a tool spec as for ``--tools`` (EXIF is excluded by default: an evaluation must not
    read the answer from metadata). With ``workers > 1`` episodes run in threads.

    ``out`` starts with a header line of the settings (policy, tools, budget, seed); resuming into a
    file written with other settings raises :class:`ResumeMismatchError` unless ``force``.
    """
    budget = budget or Budget()
    if isinstance(policy, str):
        policy = make_policy(policy)
    settings = {"policy": policy.name, "tools": tools, "budget": budget.model_dump(), "seed": seed}
    if out:
        check_resume(out, settings, force)
        if not Path(out).exists() or Path(out).stat().st_size == 0:
            write_output(out, json.dumps({"header": settings}) + "\n")
    done = {r["id"]: r for r in read_jsonl(out, repair=True)} if out else {}
    yield from done.values()
    todo = [s for s in dataset if s.id not in done]
    lock = threading.Lock()
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open_append(out)) if out else None

        def emit(rec):
            with lock:
                if fh is not None:
                    try:
                        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        fh.flush()
                    except OSError as e:
                        raise OutputError(describe_os_error(e, out)) from None
                if on_record is not None:
                    on_record(rec)
            return rec

        if workers <= 1:
            for s in todo:
                yield emit(run_one(s, policy, tools, budget, keep_trajectory, seed))
        else:
            with cf.ThreadPoolExecutor(max_workers=workers) as ex:
                futures = [ex.submit(run_one, s, policy, tools, budget, keep_trajectory, seed) for s in todo]
                for f in cf.as_completed(futures):
                    yield emit(f.result())
