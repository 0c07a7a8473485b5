"""Accuracy and per-photo time of a policy on the 36-photo OSV-5M sample, next to the OSV-5M baseline.

    python benchmarks/osv5m_sample.py [--policy heuristic] [--tools all,-exif] [--cli]

Prints one line per photo (time, error, answer) and a table with acc@25/200/750/2500 km, median km
and GeoScore for the policy and for ``osv5m_baseline_predictions.csv`` on the same photos. With
``--cli`` every photo also runs as a separate ``geolocate locate`` process, to time a user's runs.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from geolocate.evals.datasets import load_osv5m
from geolocate.evals.metrics import errors_km, summarize
from geolocate.evals.runner import run_dataset

REPO = Path(__file__).resolve().parents[1]

COLUMNS = ["acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km", "geoscore"]


def row(name: str, s: dict) -> str:
    return (
        f"| {name} | "
        + " | ".join(f"{100 * s[c]:.1f}%" if c.startswith("acc") else f"{s[c]:.0f}" for c in COLUMNS)
        + f" | {s['n']} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "osv5m-sample"))
    ap.add_argument("--policy", default="heuristic")
    ap.add_argument("--tools", default="all,-exif")
    ap.add_argument("--cli", action="store_true", help="also time one 'geolocate locate' process per photo")
    args = ap.parse_args()

    ds = load_osv5m(args.data)
    recs = []
    t0 = time.perf_counter()
    for r in run_dataset(ds, args.policy, args.tools, keep_trajectory=False):
        recs.append(r)
        chain = " > ".join(r.get("chain", {}).values()) or "-"
        print(
            f"{r['id']:>18}  {r['seconds']:6.2f} s  error {r['error_km']:8.1f} km  loc "
            f"{r['localizability']:.2f}  {chain}",
            flush=True,
        )
    wall = time.perf_counter() - t0
    secs = [r["seconds"] for r in recs]
    print(
        f"\nin-process: {len(recs)} photos in {wall:.1f} s; per photo p50 {statistics.median(secs):.2f} s, "
        f"first {secs[0]:.2f} s, p50 of later {statistics.median(secs[1:]):.2f} s, max {max(secs):.2f} s"
    )

    ours = summarize([r["error_km"] for r in recs])
    truth = {s.id: (s.lat, s.lon) for s in ds}
    with open(Path(args.data) / "osv5m_baseline_predictions.csv", newline="") as f:
        base = [r for r in csv.DictReader(f) if r["id"] in truth]
    bl = summarize(
        errors_km(
            [(float(r["pred_latitude"]), float(r["pred_longitude"])) for r in base],
            [truth[r["id"]] for r in base],
        )
    )
    print("\n| method | " + " | ".join(COLUMNS) + " | n |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    print(row(f"geolocate {args.policy} ({args.tools})", ours))
    print(row("OSV-5M baseline", bl))

    if args.cli:
        exe = shutil.which("geolocate")
        times = []
        for s in ds:
            t = time.perf_counter()
            subprocess.run(
                [exe, "locate", str(s.image), "--no-exif", "--quiet"], check=True, capture_output=True
            )
            times.append(time.perf_counter() - t)
        print(
            f"\nCLI: one 'geolocate locate' process per photo: p50 {statistics.median(times):.2f} s, "
            f"p90 {sorted(times)[int(0.9 * len(times))]:.2f} s, max {max(times):.2f} s"
        )


if __name__ == "__main__":
    main()
