"""Speed of the sun tool's region on a global grid (run by hand).

    python benchmarks/sun.py [--repeat 20]

Times :func:`geolocate.tools.sun.sun_region` for one shadow measurement at a UTC time on the
0.25-degree grid (1440 x 720 cells; goal < 200 ms), the same with the azimuth and with a 30-minute
time window, and a clock time in an unknown zone (0.5 degrees; the time-zone grid is built once and
cached). Prints p50 and max per case. ``--figure PNG`` also draws the README's worked example: a 1 m
post casting a 0.36 m shadow at 03:00 UTC on 5 May 2025 (noon in Japan), over the world's countries.
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
    ap.add_argument("--figure", help="write the worked example's band as a PNG here")
    args = ap.parse_args()
    if args.figure:
        figure(args.figure)
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


def figure(path: str) -> None:
    """The sun band of the README's worked example on a world map (matplotlib, Natural Earth 1:110m)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geolocate.agent.analyst import countries
    from geolocate.tools.sun import SunTool

    args = SunInput(
        time_utc=datetime(2025, 5, 5, 3, 0), object_height=1.0, shadow_length=0.36, length_sigma=0.03,
        hypothesis=(35.68, 139.69),
    )  # fmt: skip
    out = SunTool().run(args, None)
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=110)
    ax.set_facecolor("#dcebf5")
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    for f in countries()["features"]:
        g = f["geometry"]
        for poly in g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]:
            ring = poly[0]
            if max(x for x, _ in ring) - min(x for x, _ in ring) > 300:  # across the antimeridian
                ring = [(x + 360 if x < 0 else x, y) for x, y in ring]  # unwrapped; the rest is off the map
            ax.fill(*zip(*ring), facecolor="#eef0e8", edgecolor="#8a8f80", linewidth=0.4)
    for poly in out.region["coordinates"]:  # rings with holes as one compound path
        band = MplPath.make_compound_path(*(MplPath(ring, closed=True) for ring in poly))
        ax.add_patch(PathPatch(band, facecolor="#e08a00", alpha=0.45, edgecolor="#b06a00", linewidth=0.8))
    ax.plot(139.69, 35.68, marker="*", color="#d1342f", markersize=12)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_title(
        f"sun tool: 1 m post, 0.36 m shadow, 2025-05-05 03:00 UTC -> {out.area_km2 / 1e6:.1f} million km2, "
        f"{', '.join(list(out.countries)[:6])}...",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}: {out.summary()[:300]}")


if __name__ == "__main__":
    main()
