"""Self-hosted services benchmark (run by hand, as root on Debian; figures go in the issue note):

    python benchmarks/services.py

1. import time per extract: Nominatim (``nominatim import --offline``) and PostGIS (osm2pgsql), each
   extract alone in a throwaway services folder;
2. reverse geocoding p50/p95 through geopy against the local Nominatim;
3. the same two-feature proximity query on PostGIS and on the embedded backend, p50/p95.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OSM = REPO.parent / "shared" / "data" / "osm"


def pct(ts: list[float]) -> str:
    ts = sorted(ts)
    return f"p50 {1000 * statistics.median(ts):.1f} ms, p95 {1000 * ts[int(0.95 * (len(ts) - 1))]:.1f} ms"


def main() -> None:
    from geolocate.tools.services import Services

    for extract in ("andorra.osm.pbf", "liechtenstein-2013-08-03.osm.pbf", "helsinki.osm.pbf"):
        svc = Services(Path(tempfile.mkdtemp(prefix="geolocate-svc-")), pg_port=55433, nominatim_port=8089)
        try:
            t = svc.up([OSM / extract], log=lambda m: None)
            print(
                f"1. {extract} ({(OSM / extract).stat().st_size / 1e6:.2f} MB): Nominatim import "
                f"{t['nominatim_import_s']:.1f} s, PostGIS import {t['postgis_import_s']:.1f} s"
            )
        finally:
            svc.down()

    from geolocate.tools.geocode import NominatimGeocoder
    from geolocate.tools.osm.local import LocalBackend, build_index
    from geolocate.tools.osm.postgis import PostGISBackend
    from tests.test_osm import Q

    svc = Services.default()
    svc.up(
        [OSM / f for f in ("andorra.osm.pbf", "liechtenstein-2013-08-03.osm.pbf", "helsinki.osm.pbf")],
        log=lambda m: None,
    )
    os.environ["GEOLOCATE_CACHE_DIR"] = tempfile.mkdtemp()
    geo = NominatimGeocoder(
        "geolocate-bench/0.1", domain=svc.nominatim_domain, scheme="http", min_delay_s=0.0, cache=False
    )
    rng = random.Random(0)
    pts = [(rng.uniform(47.05, 47.27), rng.uniform(9.48, 9.62)) for _ in range(100)] + [
        (rng.uniform(42.43, 42.65), rng.uniform(1.41, 1.78)) for _ in range(100)
    ]
    geo.reverse(*pts[0])
    ts = []
    for p in pts:
        t = time.perf_counter()
        geo.reverse(*p)
        ts.append(time.perf_counter() - t)
    print(f"2. reverse geocoding through geopy, {len(pts)} points in Liechtenstein and Andorra: {pct(ts)}")

    q = Q("two_feature")
    local = LocalBackend(
        build_index(OSM / "liechtenstein-2013-08-03.osm.pbf", Path(tempfile.mkdtemp()) / "li.sqlite").path
    )
    pg = PostGISBackend(svc.dsn())
    for backend in (pg, local):
        backend.query(q)
        ts = []
        for _ in range(50):
            t = time.perf_counter()
            r = backend.query(q)
            ts.append(time.perf_counter() - t)
        print(
            "3. two-feature proximity query (place of worship within 300 m of a pharmacy, "
            f"Liechtenstein) on {backend.name}: {len(r.matches)} matches, {pct(ts)}"
        )


if __name__ == "__main__":
    main()
