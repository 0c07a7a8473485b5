"""Paired comparisons of two runs on the photos they share (scipy.stats does the statistics).

For run A against run B on the same photos:

* GeoScore (OSV-5M: 5000 exp(-d / 1492.7)): mean difference A - B with a paired percentile bootstrap
  interval (``scipy.stats.bootstrap(..., paired=True)``) and a paired sign-flip permutation test
  (``scipy.stats.permutation_test(..., permutation_type="samples")``, two-sided);
* each acc@k: difference of hit rates with a paired bootstrap interval, and the exact McNemar test:
  of the photos one run hits and the other misses, the share is tested against 1/2 with an exact
  binomial test (``scipy.stats.binomtest``), as McNemar (1947) in its exact form.

Errors are great-circle km between the prediction and the label (haversine), as in the runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from geolocate.evals.metrics import THRESHOLDS_KM, geoscore

UNANSWERED_KM = 20015.1
"""Error given to a photo without a prediction (an unusable image): the antipode, as in metrics."""


@dataclass
class PairedDiff:
    """A - B for one metric: the difference, its paired interval, and the test's p-value."""

    metric: str
    a: float
    b: float
    diff: float
    lo: float
    hi: float
    p: float
    test: str
    n: int


def errors_by_id(records: Sequence[Mapping]) -> dict[str, float]:
    """Great-circle error (km) per photo id of a run's records (unanswered: :data:`UNANSWERED_KM`)."""
    return {str(r["id"]): float(r.get("error_km", UNANSWERED_KM)) for r in records if "id" in r}


def common_errors(a: Sequence[Mapping], b: Sequence[Mapping]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The photo ids both runs have, sorted, and the two error arrays (km) in that order."""
    ea, eb = errors_by_id(a), errors_by_id(b)
    ids = sorted(set(ea) & set(eb))
    return ids, np.array([ea[i] for i in ids]), np.array([eb[i] for i in ids])


def paired_bootstrap(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(x - y), resampling photos (pairs) together."""
    from scipy.stats import bootstrap

    if x.size < 2 or np.all(x - y == (x - y)[0]):
        d = float(np.mean(x - y)) if x.size else float("nan")
        return d, d
    res = bootstrap(
        (x, y),
        lambda u, v, axis=-1: np.mean(u - v, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=4000,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mcnemar_exact(hit_a: np.ndarray, hit_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired hits (booleans): a binomial test of the discordant
    pairs (A hit, B missed) against (A missed, B hit) at probability 1/2. 1.0 with no discordant pair.

    >>> round(mcnemar_exact(np.array([1, 1, 1, 1, 1, 0], bool), np.array([0, 0, 0, 0, 0, 0], bool)), 4)
    0.0625
    """
    from scipy.stats import binomtest

    b = int(np.sum(hit_a & ~hit_b))
    c = int(np.sum(~hit_a & hit_b))
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def permutation_p(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Two-sided p-value of mean(x - y) = 0 by a paired sign-flip permutation test (exact for up to
    13 pairs, 9,999 random sign flips beyond)."""
    from scipy.stats import permutation_test

    if x.size < 2 or np.all(x == y):
        return 1.0
    res = permutation_test(
        (x, y),
        lambda u, v, axis=-1: np.mean(u - v, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=9999,
        alternative="two-sided",
        random_state=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def compare(
    a: Sequence[Mapping], b: Sequence[Mapping], confidence: float = 0.95, seed: int = 0
) -> list[PairedDiff]:
    """Every paired difference A - B on the common photos: GeoScore, then acc@k for each threshold.

    Raises:
        ValueError: the runs share no photo.
    """
    ids, da, db = common_errors(a, b)
    if not ids:
        raise ValueError("the two runs share no photo: nothing to compare")
    ga, gb = geoscore(da), geoscore(db)
    lo, hi = paired_bootstrap(ga, gb, confidence, seed)
    out = [
        PairedDiff("geoscore", float(ga.mean()), float(gb.mean()), float((ga - gb).mean()), lo, hi,
                   permutation_p(ga, gb, seed), "permutation", len(ids)),
    ]  # fmt: skip
    for t in THRESHOLDS_KM:
        ha, hb = da <= t, db <= t
        lo, hi = paired_bootstrap(ha.astype(float), hb.astype(float), confidence, seed)
        out.append(
            PairedDiff(f"acc@{t}km", float(ha.mean()), float(hb.mean()), float(ha.mean() - hb.mean()), lo, hi,
                       mcnemar_exact(ha, hb), "McNemar exact", len(ids))
        )  # fmt: skip
    return out
