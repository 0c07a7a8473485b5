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

from tools.geo import haversine_km

THRESHOLDS_KM: dict[int, str] = {1: "street", 25: "city", 200: "region", 750: "country", 2500: "continent"}
GEOSCORE_SCALE_KM = 1492.7


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
    p, t = np.asarray(pred, dtype=np.float64).reshape(-1, 2), np.asarray(true, dtype=np.float64).reshape(-1, 2)
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


def bootstrap_ci(values: ArrayLike, statistic=np.mean, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values`` (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or np.all(v == v[0]):
        x = float(statistic(v)) if v.size else float("nan")
        return x, x
    res = bootstrap((v,), statistic, n_resamples=n_resamples, confidence_level=confidence, method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _upper_median(x, axis=-1):
    return np.quantile(x, 0.5, axis=axis, method="higher")


def summarize_with_ci(d_km: ArrayLike, confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float, float]]:
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
