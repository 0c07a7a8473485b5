"""OSM feature search speed (run by hand; figures go in the issue note):

    python benchmarks/osm.py

* index build rate, MB of extract per second, for the Liechtenstein and Helsinki extracts;
* query p50/p95 of a two-feature proximity query (a place of worship within 200 m of a pharmacy)
  on each, over the whole extract (target < 50 ms p50);
* Helsinki, distinct-place queries (one row per restaurant, with its nearest supports): restaurants
  within 100 m of a bench (2 features), and also within 300 m of a bus stop (3 features), in the
  city-centre box 60.15-60.20 N, 24.90-25.00 E (target < 50 ms p50).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geolocate.tools.osm.local import LocalBackend, build_index  # noqa: E402
from geolocate.tools.osm.query import FeatureQuery  # noqa: E402

OSM = REPO.parent / "shared" / "data" / "osm"
CASES = {
    "liechtenstein-2013-08-03.osm.pbf": {"south": 47.04, "west": 9.47, "north": 47.28, "east": 9.64},
    "helsinki.osm.pbf": {"south": 60.16, "west": 24.93, "north": 60.18, "east": 24.96},
}


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    for extract, bbox in CASES.items():
        stats = [build_index(OSM / extract, tmp / f"{extract}.{i}.sqlite") for i in range(3)]
        best = min(stats, key=lambda s: s.seconds)
        print(
            f"{extract}: {best.source_mb:.2f} MB -> {best.points + best.lines + best.areas:,} features "
            f"in {best.seconds:.2f} s = {best.mb_per_s:.2f} MB/s (best of 3)"
        )
        backend = LocalBackend(best.path)
        q = FeatureQuery.model_validate(
            {
                "features": [
                    {"id": "worship", "tags": [{"key": "amenity", "value": "place_of_worship"}]},
                    {"id": "pharmacy", "tags": [{"key": "amenity", "value": "pharmacy"}]},
                ],
                "relations": [{"a": "worship", "b": "pharmacy", "max_m": 200}],
                "scope": {"kind": "bbox", **bbox},
                "limit": 500,
            }
        )
        backend.query(q)
        ts = []
        for _ in range(50):
            t = time.perf_counter()
            r = backend.query(q)
            ts.append(time.perf_counter() - t)
        ts.sort()
        print(
            f"  two-feature proximity query ({len(r.matches)} matches): p50 "
            f"{1000 * statistics.median(ts):.1f} ms, p95 {1000 * ts[int(0.95 * len(ts))]:.1f} ms"
        )
        if extract.startswith("helsinki"):
            distinct_places(best.path)


def _timed(backend, q, n: int = 50) -> tuple[float, float, object]:
    backend.query(q)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        r = backend.query(q)
        ts.append(time.perf_counter() - t)
    ts.sort()
    return 1000 * statistics.median(ts), 1000 * ts[int(0.95 * len(ts))], r


def distinct_places(db: Path) -> None:
    """p50/p95 of 2- and 3-feature distinct-place queries on the Helsinki index."""
    backend = LocalBackend(db)
    box = {"kind": "bbox", "south": 60.15, "west": 24.90, "north": 60.20, "east": 25.00}
    feats = [
        {"id": "restaurant", "tags": [{"key": "amenity", "value": "restaurant"}]},
        {"id": "bench", "tags": [{"key": "amenity", "value": "bench"}]},
        {"id": "stop", "tags": [{"key": "highway", "value": "bus_stop"}]},
    ]
    rels = [{"a": "restaurant", "b": "bench", "max_m": 100}, {"a": "restaurant", "b": "stop", "max_m": 300}]
    for n in (2, 3):
        q = FeatureQuery.model_validate(
            {"features": feats[:n], "relations": rels[: n - 1], "scope": box, "limit": 50}
        )
        p50, p95, r = _timed(backend, q)
        print(
            f"  distinct places, {n} features: {r.total_places} places ({len(r.matches)}"
            f"{'+' if r.truncated else ''} combinations): p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        )


if __name__ == "__main__":
    main()
