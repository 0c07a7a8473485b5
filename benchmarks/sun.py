"""Speed of the sun tool's region on a global grid (run by hand).

    python benchmarks/sun.py [--repeat 20]

Times :func:`geolocate.tools.sun.sun_region` for one shadow measurement at a UTC time on the
0.25-degree grid (1440 x 720 cells; goal < 200 ms), the same with the azimuth and with a 30-minute
time window, and a clock time in an unknown zone (0.5 degrees; the time-zone grid is built once and
cached). Prints p50 and max per case.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime

from geolocate.tools.sun import SunInput, sun_region


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    t = datetime(2024, 6, 1, 9, 30)
    base = dict(object_height=1.0, shadow_length=0.9, length_sigma=0.05)
    cases = {
        "UTC time, shadow length, 0.25 deg": SunInput(time_utc=t, resolution_deg=0.25, **base),
        "UTC time, shadow length + azimuth, 0.25 deg": SunInput(
            time_utc=t, resolution_deg=0.25, shadow_azimuth_deg=300, **base
        ),
        "UTC time +- 30 min (13 steps), 0.25 deg": SunInput(
            time_utc=t, resolution_deg=0.25, time_sigma_min=30, **base
        ),
        "clock time, unknown zone, 0.5 deg": SunInput(local_time=t, resolution_deg=0.5, **base),
    }
    for name, a in cases.items():
        sun_region(a)  # imports, the zone grid
        ts = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r = sun_region(a)
            ts.append(time.perf_counter() - t0)
        print(
            f"{name:45s} p50 {1000 * statistics.median(ts):6.0f} ms  max {1000 * max(ts):6.0f} ms  "
            f"region {r.area_km2():,.0f} km2"
        )


if __name__ == "__main__":
    main()
