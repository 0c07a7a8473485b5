"""Run a policy over a dataset: episodes in parallel, resumable JSONL of trajectories.

Each finished episode is appended to the JSONL as one record ``{"id", "lat", "lon", "pred_lat",
"pred_lon", "error_km", "seconds", "trajectory"}``; a rerun with the same file skips the ids already
there, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
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
from geolocate.tools.geo import haversine_km
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Records of a results file; a truncated line (a killed run) is skipped, and with ``repair`` the
    file is rewritten without it so that appending can go on safely."""
    p = Path(path)
    if not p.exists():
        return []
    out, bad = [], 0
    text = p.read_text(encoding="utf-8")
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    if repair and (bad or (text and not text.endswith("\n"))):
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
        tmp.replace(p)
    return out


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
) -> Iterator[dict[str, Any]]:
    """Yield one record per sample (finished ones from ``out`` first, unchanged).

    ``policy`` is a policy name or instance (one instance serves every episode: a model loads once).
    ``tools`` is a tool spec as for ``--tools`` (EXIF is excluded by default: an evaluation must not
    read the answer from metadata). With ``workers > 1`` episodes run in threads.
    """
    budget = budget or Budget()
    if isinstance(policy, str):
        policy = make_policy(policy)
    done = {r["id"]: r for r in read_jsonl(out, repair=True)} if out else {}
    yield from done.values()
    todo = [s for s in dataset if s.id not in done]
    lock = threading.Lock()
    fh = open(out, "a", encoding="utf-8") if out else None
    try:

        def emit(rec):
            with lock:
                if fh is not None:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    fh.flush()
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
    finally:
        if fh is not None:
            fh.close()
