"""Investigator-session benchmarks (run by hand; figures go in the issue note).

    python benchmarks/sessions.py [--runs 12]

1. Checkpoint overhead per graph step with the SQLite store (goal: p50 < 10 ms): the time spent in
   the checkpointer's ``put`` and ``put_writes`` per step, measured by wrapping them, and the
   difference per step between a session run and the same episode without a checkpointer.
2. Resume latency: opening the store and loading a paused session (``view``), and a move that resumes
   it (``approve`` at a review point, to the answer), each in a fresh ``SessionStore``.

Photos: the OSV-5M sample (Mapillary, CC-BY-SA 4.0) in ../shared/data.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track

from geolocate.agent.graph import run_episode
from geolocate.agent.policies import make_policy
from geolocate.agent.session import SessionStore
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet

REPO = Path(__file__).resolve().parents[1]
PHOTOS = sorted((REPO.parent / "shared" / "data" / "osv5m-sample" / "images").glob("*.jpg"))


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12, help="photos (sessions) to run")
    args = ap.parse_args()
    console = Console()
    photos = PHOTOS[: args.runs]
    tools = ToolSet.parse_spec("all,-exif")
    policy = make_policy("heuristic")
    run_episode(load_image(photos[0]), tools, policy)  # warm caches (GeoNames, OCR models)
    with tempfile.TemporaryDirectory() as d:
        url = str(Path(d) / "sessions.sqlite")
        store = SessionStore(url)
        put_s: list[float] = []
        steps_per_run: list[int] = []
        for name in ("put", "put_writes"):
            orig = getattr(store.saver, name)

            def timed(*a, _orig=orig, **k):
                t = time.perf_counter()
                try:
                    return _orig(*a, **k)
                finally:
                    put_s.append(time.perf_counter() - t)

            setattr(store.saver, name, timed)
        per_step_delta, sids = [], []
        for photo in track(photos, description="sessions vs plain runs", console=console):
            image = load_image(photo)
            t = time.perf_counter()
            plain = run_episode(image, tools, policy)
            t_plain = time.perf_counter() - t
            t = time.perf_counter()
            v = store.create(photo, tools="all,-exif", review=["country"])
            while v.status == "review":
                v = store.move(v.info.id, {"kind": "approve"})
            t_session = time.perf_counter() - t
            steps = len(store.history(v.info.id))
            steps_per_run.append(steps)
            per_step_delta.append((t_session - t_plain) / steps)
            sids.append(v.info.id)
            assert v.episode.answer is not None and plain.answer is not None
        store.close()
        # resume latency: a fresh store (a new process would do the same) loading and resuming
        load_s, resume_s = [], []
        pending = []
        with SessionStore(url) as s:
            for photo in photos:
                v = s.create(photo, tools="all,-exif", review=["all"])
                if v.status == "review":
                    pending.append(v.info.id)
        for sid in track(pending, description="resume latency", console=console):
            t = time.perf_counter()
            s = SessionStore(url)
            s.view(sid)
            load_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            s.move(sid, {"kind": "approve"})
            resume_s.append(time.perf_counter() - t)
            s.close()
    console.print(f"{len(photos)} sessions, {p50(steps_per_run):.0f} checkpoints per session (p50)")
    console.print(
        f"checkpoint writes (put + put_writes): p50 {1000 * p50(put_s):.2f} ms, "
        f"p90 {1000 * statistics.quantiles(put_s, n=10)[-1]:.2f} ms over {len(put_s)} calls"
    )
    console.print(f"session minus plain run, per step: p50 {1000 * p50(per_step_delta):.2f} ms")
    console.print(f"open store + load a paused session: p50 {1000 * p50(load_s):.1f} ms")
    console.print(f"resume with a decision to the next pause: p50 {1000 * p50(resume_s):.1f} ms")


if __name__ == "__main__":
    main()
