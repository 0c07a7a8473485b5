"""Geolocation metrics, with the field's names and definitions.

* acc@1km / 25km / 200km / 750km / 2500km (street, city, region, country, continent): the share of
  predictions whose great-circle (haversine) error d satisfies d <= threshold (Im2GPS, Hays & Efros
  2008; used by GLOBE, Geo-R, OSV-5M).
* median and mean error in km. The median is the *upper* median (``np.quantile(d, 0.5,
  method="higher")``: for even n, the larger middle value), the convention behind the figures
  published with the OSV-5M sample in ``shared/data`` (415 km for its baseline; the average of the
  two middle values would give 330 km).
* GeoScore = 5000 * exp(-d / 1492.7) per photo, averaged (GeoGuessr's score as OSV-5M defines it,
  Astruc et al., CVPR 2024).

Confidence intervals are percentile bootstrap intervals from ``scipy.stats.bootstrap``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from geolocate.tools.geo import GEOSCORE_SCALE_KM, haversine_km

THRESHOLDS_KM: dict[int, str] = {1: "street", 25: "city", 200: "region", 750: "country", 2500: "continent"}


def median_km(d_km: ArrayLike) -> float:
    """Upper median of errors in km (see the module docstring).

    >>> median_km([1.0, 2.0, 3.0, 4.0])
    3.0
    """
    return float(np.quantile(np.asarray(d_km, dtype=np.float64), 0.5, method="higher"))


def geoscore(d_km: ArrayLike) -> np.ndarray | float:
    """GeoScore of errors in km: 5000 * exp(-d / 1492.7) (OSV-5M).

    >>> round(geoscore(0.0)), round(geoscore(1492.7), 1)
    (5000, 1839.4)
    """
    s = 5000.0 * np.exp(-np.asarray(d_km, dtype=np.float64) / GEOSCORE_SCALE_KM)
    return float(s) if np.ndim(s) == 0 else s


def errors_km(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """Great-circle errors in km between (N, 2) arrays of predicted and true (lat, lon) degrees."""
    p, t = (
        np.asarray(pred, dtype=np.float64).reshape(-1, 2),
        np.asarray(true, dtype=np.float64).reshape(-1, 2),
    )
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: {p.shape} predictions vs {t.shape} labels")
    return np.atleast_1d(haversine_km(p[:, 0], p[:, 1], t[:, 0], t[:, 1]))


def summarize(d_km: ArrayLike, thresholds: Sequence[int] = tuple(THRESHOLDS_KM)) -> dict[str, float]:
    """acc@Xkm (fractions 0..1), median_km, mean_km, geoscore and n for an array of errors in km.

    >>> s = summarize([0.5, 10, 100, 1000, 5000])
    >>> s["acc@1km"], s["acc@25km"], s["acc@2500km"], s["median_km"]
    (0.2, 0.4, 0.8, 100.0)
    """
    d = np.asarray(d_km, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no errors to summarize")
    out = {f"acc@{t}km": float(np.mean(d <= t)) for t in thresholds}
    out["median_km"] = median_km(d)
    out["mean_km"] = float(np.mean(d))
    out["geoscore"] = float(np.mean(geoscore(d)))
    out["n"] = int(d.size)
    return out


def bootstrap_ci(
    values: ArrayLike, statistic=np.mean, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values`` (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or np.all(v == v[0]):
        x = float(statistic(v)) if v.size else float("nan")
        return x, x
    res = bootstrap(
        (v,),
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _upper_median(x, axis=-1):
    return np.quantile(x, 0.5, axis=axis, method="higher")


def summarize_with_ci(
    d_km: ArrayLike, confidence: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """Every metric of :func:`summarize` as (value, ci_low, ci_high) by percentile bootstrap."""
    d = np.asarray(d_km, dtype=np.float64)
    point = summarize(d)
    out: dict[str, tuple[float, float, float]] = {}
    for key, value in point.items():
        if key == "n":
            continue
        if key.startswith("acc@"):
            t = float(key[4:-2])
            lo, hi = bootstrap_ci((d <= t).astype(np.float64), np.mean, confidence, seed=seed)
        elif key == "median_km":
            lo, hi = bootstrap_ci(d, _upper_median, confidence, seed=seed)
        elif key == "mean_km":
            lo, hi = bootstrap_ci(d, np.mean, confidence, seed=seed)
        else:
            lo, hi = bootstrap_ci(geoscore(d), np.mean, confidence, seed=seed)
        out[key] = (value, lo, hi)
    return out


def chain_accuracy(pred: ArrayLike, true: ArrayLike) -> dict[str, float]:
    """Per-level Chain-of-Region accuracy of predicted points against true points.

    Both are reverse-geocoded with the same offline GeoNames geocoder (the rule Geo-R uses to label
    from GPS), then compared level by level; a level counts only when the levels above it are right:
    country (ISO code), region (admin-1 name), city (nearest GeoNames place).
    """
    from geolocate.tools.geocode import reverse_batch
    from geolocate.tools.geonames import normalize_name

    p = reverse_batch(np.asarray(pred, dtype=np.float64).reshape(-1, 2))
    t = reverse_batch(np.asarray(true, dtype=np.float64).reshape(-1, 2))
    country = np.array([a.country_code == b.country_code for a, b in zip(p, t)])
    region = country & np.array([normalize_name(a.admin1) == normalize_name(b.admin1) for a, b in zip(p, t)])
    city = region & np.array([a.city == b.city and a.city_lat == b.city_lat for a, b in zip(p, t)])
    return {
        "country_acc": float(country.mean()),
        "region_acc": float(region.mean()),
        "city_acc": float(city.mean()),
    }


def localizability_calibration(
    localizability: ArrayLike, d_km: ArrayLike, threshold_km: float = 25.0
) -> dict[str, float]:
    """How well predicted localizability (0..1) anticipates a hit (d <= ``threshold_km``).

    ``loc_auroc``: ROC AUC (scikit-learn) of localizability as a score for hits; NaN when every photo
    is a hit or every photo a miss. ``loc_brier``: mean squared gap between localizability and hit.
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(localizability, dtype=np.float64)
    hit = (np.asarray(d_km, dtype=np.float64) <= threshold_km).astype(np.float64)
    auroc = float(roc_auc_score(hit, s)) if 0 < hit.sum() < hit.size else float("nan")
    return {"loc_auroc": auroc, "loc_brier": float(np.mean((s - hit) ** 2))}


def tool_usage(records: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per tool: mean calls per episode and failure rate, from runner records (``tool_calls`` and
    ``tool_failures`` dicts)."""
    n = max(1, len(records))
    names = sorted({t for r in records for t in r.get("tool_calls", {})})
    out = {}
    for t in names:
        calls = sum(r.get("tool_calls", {}).get(t, 0) for r in records)
        fails = sum(r.get("tool_failures", {}).get(t, 0) for r in records)
        out[t] = {"calls_per_episode": calls / n, "failure_rate": fails / calls if calls else 0.0}
    return out


def evaluate_records(records: Sequence[dict], confidence: float = 0.95, seed: int = 0) -> dict[str, object]:
    """All metrics of a run from runner records (``lat``, ``lon``, ``pred_lat``, ``pred_lon``, and
    optionally ``localizability``, ``seconds``, ``tool_calls``): distance metrics with bootstrap CIs,
    Chain-of-Region accuracy, localizability calibration, tool usage and latency.

    Records without a prediction (unusable images) count as misses at the antipode (20,015 km).
    """
    ok = [r for r in records if "pred_lat" in r]
    failed = len(records) - len(ok)
    d = np.array(
        [
            r["error_km"]
            if "error_km" in r
            else float(haversine_km(r["pred_lat"], r["pred_lon"], r["lat"], r["lon"]))
            for r in ok
        ]
        + [20015.1] * failed
    )
    out: dict[str, object] = {
        "n": len(records),
        "failed": failed,
        "metrics": summarize_with_ci(d, confidence, seed),
    }
    if ok:
        out["chain"] = chain_accuracy(
            [(r["pred_lat"], r["pred_lon"]) for r in ok], [(r["lat"], r["lon"]) for r in ok]
        )
        if all("localizability" in r for r in ok):
            out["calibration"] = localizability_calibration([r["localizability"] for r in ok], d[: len(ok)])
        if any("tool_calls" in r for r in ok):
            out["tools"] = tool_usage(ok)
        secs = [r["seconds"] for r in ok if "seconds" in r]
        if secs:
            out["latency_s"] = {
                "mean": float(np.mean(secs)),
                "p50": float(np.median(secs)),
                "p95": float(np.quantile(secs, 0.95)),
            }
    return out
