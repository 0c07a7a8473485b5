"""Evaluation throughput (photos per minute) of the heuristic policy on the OSV-5M sample, serial and
parallel. Run by hand:

    python benchmarks/eval_throughput.py [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geolocate.evals.datasets import load_osv5m  # noqa: E402
from geolocate.evals.runner import run_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "osv5m-sample"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    ds = load_osv5m(args.data)
    list(run_dataset(ds.subset(1), keep_trajectory=False))  # warm up: index, OCR models
    for w in args.workers:
        t = time.perf_counter()
        n = sum(1 for _ in run_dataset(ds, workers=w, keep_trajectory=False))
        dt = time.perf_counter() - t
        print(f"workers={w}: {n} photos in {dt:.1f} s = {60 * n / dt:.1f} photos/min", flush=True)


if __name__ == "__main__":
    main()
