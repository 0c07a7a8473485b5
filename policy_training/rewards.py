"""Trajectory-level rewards for GRPO: small pure functions, each one's name its metric key, combined
with weights (``GRPOConfig.reward_weights``). TRL logs each as ``rewards/<name>/mean``.

Every reward function has the TRL signature ``f(prompts, completions, **kwargs) -> list[float | None]``
and reads the finished episode from the rollout's ``trajectory`` field (an ``EpisodeState`` dump) and
the labels from the dataset columns (``lat``, ``lon``, ``continent``, ``country``, ``region``,
``city``). ``None`` means "does not apply" (TRL then leaves it out of the weighted sum).

Sources: Geo-R (AAAI 2026) for the piecewise-linear distance reward and rule-based Chain-of-Region
labels; GLOBE (NeurIPS 2025) for localizability and visual-cue grounding rewards; OSV-5M (CVPR 2024)
for GeoScore.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from geolocate.agent.state import Evidence
from geolocate.tools.geo import haversine_km
from geolocate.tools.geonames import normalize_name

GEO_R_BREAKPOINTS_PAPER = (750.0, 2500.0, 20000.0)
"""Geo-R's breakpoints in km as the paper states them."""
GEO_R_BREAKPOINTS_CODE = (750.0, 3000.0, 20000.0)
"""Geo-R's breakpoints in km as its released code has them."""


# -- pure reward kernels ----------------------------------------------------------------------------
def geo_r_reward(d_km: float, breakpoints: Sequence[float] = GEO_R_BREAKPOINTS_PAPER) -> float:
    """Geo-R's coordinate reward: 1 - 0.5 d/b1 up to b1; then linear to 0.2 at b2; then linear to 0 at
    b3; 0 beyond. Default breakpoints (750, 2500, 20000) km, as in the paper.

    >>> geo_r_reward(0.0), geo_r_reward(375.0), geo_r_reward(750.0)
    (1.0, 0.75, 0.5)
    >>> round(geo_r_reward(1625.0), 6), round(geo_r_reward(2500.0), 6)
    (0.35, 0.2)
    >>> geo_r_reward(20000.0), geo_r_reward(25000.0)
    (0.0, 0.0)
    >>> round(geo_r_reward(3000.0, GEO_R_BREAKPOINTS_CODE), 6)
    0.2
    """
    b1, b2, b3 = breakpoints
    if not (0 < b1 < b2 < b3):
        raise ValueError(f"breakpoints must increase, got {breakpoints}")
    d = max(0.0, float(d_km))
    if d <= b1:
        return 1.0 - 0.5 * d / b1
    if d <= b2:
        return 0.5 - 0.3 * (d - b1) / (b2 - b1)
    if d <= b3:
        return 0.2 - 0.2 * (d - b2) / (b3 - b2)
    return 0.0


def geoscore_reward(d_km: float) -> float:
    """exp(-d / 1492.7): OSV-5M's GeoScore divided by 5000, in 0..1.

    >>> geoscore_reward(0.0), round(geoscore_reward(1492.7), 4)
    (1.0, 0.3679)
    """
    return math.exp(-max(0.0, float(d_km)) / 1492.7)


def chain_reward(committed: dict[str, str], label: dict[str, str]) -> float:
    """Share of the four levels (continent, country, region, city) committed correctly, a level counting
    only when every level above it is right. Names compare after :func:`normalize_name`.

    >>> label = {"continent": "EU", "country": "NO", "region": "Oslo", "city": "Oslo"}
    >>> chain_reward({"continent": "EU", "country": "NO", "region": "Oslo"}, label)
    0.75
    >>> chain_reward({"continent": "EU", "country": "SE", "region": "Oslo"}, label)
    0.25
    """
    score = 0
    for level in ("continent", "country", "region", "city"):
        got, want = committed.get(level), label.get(level)
        if got is None or want is None or normalize_name(got) != normalize_name(want):
            break
        score += 1
    return score / 4.0


def localizability_reward(localizability: float, hit: bool) -> float:
    """1 - Brier score of the predicted localizability against the outcome (hit = within 25 km).

    >>> localizability_reward(0.9, True), localizability_reward(0.9, False), localizability_reward(0.5, False)
    (0.99, 0.18999999999999995, 0.75)
    """
    return 1.0 - (float(localizability) - (1.0 if hit else 0.0)) ** 2


_QUOTED = re.compile(r"[\"“”«»„']([^\"“”«»„']{2,60})[\"“”«»„']")


def claimed_cues(thoughts: Sequence[str]) -> list[str]:
    """Text cues the reasoning claims to see: quoted strings ("Vaduz", 'Apotheke').

    >>> claimed_cues(['The sign reads "Vaduz" and a shop says \\'Apotheke\\'.'])
    ['Vaduz', 'Apotheke']
    """
    return [m.group(1).strip() for t in thoughts for m in _QUOTED.finditer(t or "") if m.group(1).strip()]


def cue_grounding_reward(claims: Sequence[str], evidence_texts: Sequence[str]) -> float | None:
    """Share of claimed cues that tool observations support (the normalized claim occurs in an OCR
    line or a gazetteer/geocoder result). None when nothing is claimed.

    >>> cue_grounding_reward(["Vaduz", "Paris"], ["WELCOME TO VADUZ"])
    0.5
    >>> cue_grounding_reward([], ["x"]) is None
    True
    """
    if not claims:
        return None
    haystack = " | ".join(normalize_name(t) for t in evidence_texts)
    return sum(1 for c in claims if normalize_name(c) and normalize_name(c) in haystack) / len(claims)


def tool_use_reward(n_calls: int, n_failed: int, n_repeated: int, n_over_budget: int) -> float:
    """1 minus 0.2 per failed, repeated (same tool and arguments) or over-budget call, floored at 0.

    >>> tool_use_reward(5, 0, 0, 0), tool_use_reward(5, 1, 1, 0), tool_use_reward(9, 3, 2, 1)
    (1.0, 0.6, 0.0)
    """
    return max(0.0, 1.0 - 0.2 * (n_failed + n_repeated + n_over_budget))


# -- trajectory helpers -------------------------------------------------------------------------------
def _traj(t: Any) -> dict:
    return json.loads(t) if isinstance(t, str) else t


def answer_error_km(traj: dict, lat: float, lon: float) -> float | None:
    a = traj.get("answer")
    return None if a is None else float(haversine_km(a["lat"], a["lon"], lat, lon))


def committed_levels(traj: dict) -> dict[str, str]:
    """Committed chain as level -> code/name comparable with :class:`ChainLabel` fields."""
    out = {}
    for level, c in (traj.get("chain") or {}).items():
        out[level] = c.get("code") if level in ("continent", "country") else c.get("value")
    return out


def evidence_texts(traj: dict) -> list[str]:
    """Text the trajectory's successful tool results hold (OCR lines, gazetteer and geocoder names),
    read through each tool's output model."""
    texts = []
    for raw in traj.get("evidence", []):
        out = Evidence.model_validate(raw).typed()
        if out is None:
            continue
        texts += [ln.text for ln in getattr(out, "lines", [])]
        texts += [f"{m.name} {m.matched}" for m in getattr(out, "matches", [])]
        if (r := getattr(out, "reverse", None)) is not None:
            texts.append(f"{r.city} {r.admin1 or ''} {r.country}")
        texts += [f"{f.name} {f.admin1 or ''}" for f in getattr(out, "forward", [])]
    return texts


# -- TRL reward functions: the function name is the metric key ---------------------------------------------
def geo_r_distance(
    prompts,
    completions,
    trajectory,
    lat,
    lon,
    breakpoints: Sequence[float] = GEO_R_BREAKPOINTS_PAPER,
    **kwargs,
) -> list[float | None]:
    """Geo-R distance reward of each episode's answer (see :func:`geo_r_reward`)."""
    out = []
    for t, la, lo in zip(trajectory, lat, lon):
        d = answer_error_km(_traj(t), la, lo)
        out.append(None if d is None else geo_r_reward(d, breakpoints))
    return out


def geoscore(prompts, completions, trajectory, lat, lon, **kwargs) -> list[float | None]:
    """exp(-d/1492.7) of each episode's answer."""
    out = []
    for t, la, lo in zip(trajectory, lat, lon):
        d = answer_error_km(_traj(t), la, lo)
        out.append(None if d is None else geoscore_reward(d))
    return out


def chain_of_region(
    prompts, completions, trajectory, continent, country, region, city, **kwargs
) -> list[float | None]:
    """Hierarchical per-level correctness of the committed chain against the GPS-derived labels."""
    return [
        chain_reward(committed_levels(_traj(t)), {"continent": a, "country": b, "region": c, "city": d})
        for t, a, b, c, d in zip(trajectory, continent, country, region, city)
    ]


def localizability(prompts, completions, trajectory, lat, lon, **kwargs) -> list[float | None]:
    """Calibration of the answer's localizability against hit@25km (1 - Brier)."""
    out = []
    for t, la, lo in zip(trajectory, lat, lon):
        tr = _traj(t)
        d = answer_error_km(tr, la, lo)
        out.append(None if d is None else localizability_reward(tr["answer"]["localizability"], d <= 25.0))
    return out


def cue_grounding(prompts, completions, trajectory, **kwargs) -> list[float | None]:
    """Share of quoted cues in the reasoning that tool observations support (None without claims)."""
    out = []
    for t in trajectory:
        tr = _traj(t)
        out.append(
            cue_grounding_reward(
                claimed_cues([turn.get("thought") or "" for turn in tr.get("turns", [])]), evidence_texts(tr)
            )
        )
    return out


def format(prompts, completions, trajectory, **kwargs) -> list[float | None]:  # noqa: A001 - the metric's name
    """Share of turns whose output parsed cleanly in the action grammar."""
    out = []
    for t in trajectory:
        turns = _traj(t).get("turns", [])
        out.append(
            None
            if not turns
            else sum(all(o["kind"] != "parse_error" for o in turn["observations"]) for turn in turns)
            / len(turns)
        )
    return out


def tool_use(prompts, completions, trajectory, **kwargs) -> list[float | None]:
    """Penalises failed, repeated and over-budget tool calls (see :func:`tool_use_reward`)."""
    out = []
    for t in trajectory:
        tr = _traj(t)
        ev = tr.get("evidence", [])
        kinds = Counter(o["kind"] for turn in tr.get("turns", []) for o in turn["observations"])
        n_failed = sum(not e["ok"] for e in ev)
        out.append(tool_use_reward(len(ev), n_failed, kinds["repeated_call"], kinds["over_budget"]))
    return out


REWARDS = {
    f.__name__: f
    for f in (geo_r_distance, geoscore, chain_of_region, localizability, cue_grounding, format, tool_use)
}
"""Every reward by metric key."""

DEFAULT_WEIGHTS = {
    "geo_r_distance": 1.0,
    "geoscore": 0.0,
    "chain_of_region": 0.5,
    "localizability": 0.25,
    "cue_grounding": 0.25,
    "format": 0.25,
    "tool_use": 0.1,
}


def reward_functions(
    weights: dict[str, float] | None = None, breakpoints: Sequence[float] = GEO_R_BREAKPOINTS_PAPER
):
    """(functions, weights) for GRPOTrainer: the built-in rewards in :data:`REWARDS` order, then any
    other name in ``weights``: a plug-in's reward (entry-point group ``geolocate.rewards``) or
    ``module:attr`` of a reward function (same signature; its metric key is the name given).

    Raises:
        UnknownNameError (a ValueError): a name that is none of these (the message lists the rewards).
    """
    import functools

    from geolocate.tools.errors import UnknownNameError
    from geolocate.tools.plugins import import_spec, is_import_spec, load_plugin, plugin_names

    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    extra = {}
    for name in weights:
        if name in REWARDS:
            continue
        f = load_plugin("geolocate.rewards", name) or (
            import_spec(name, "reward") if is_import_spec(name) else None
        )
        if f is None:
            raise UnknownNameError("reward", name, [*REWARDS, *plugin_names("geolocate.rewards")])
        extra[name] = f
    funcs, ws = [], []
    for name, f in [*REWARDS.items(), *extra.items()]:
        if name == "geo_r_distance" and tuple(breakpoints) != GEO_R_BREAKPOINTS_PAPER:
            f = functools.update_wrapper(functools.partial(f, breakpoints=tuple(breakpoints)), f)
        funcs.append(f)
        ws.append(float(weights[name]))
    return funcs, ws
