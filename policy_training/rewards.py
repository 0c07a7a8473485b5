"""Trajectory-level rewards for GRPO: small pure functions, each one's name its metric key, combined
with weights (``GRPOConfig.reward_weights``). TRL logs each as ``rewards/<name>/mean``.

Every reward function has the TRL signature ``f(prompts, completions, **kwargs) -> list[float | None]``
and reads the finished episode from the rollout's ``trajectory`` field (an ``EpisodeState`` dump) and
the labels from the dataset columns (``lat``, ``lon``, ``continent``, ``country``, ``region``,
``city``; ``entities`` for :func:`entity_recall`). ``None`` means "does not apply"; TRL's weighted
sum would count it as 0, so :func:`renormalised` rescales the rewards that apply to the full weight
(every episode's total is on the same scale; see its docstring).

Sources, stated per reward:

- Geo-R (AAAI 2026): the piecewise-linear distance reward (:func:`geo_r_distance`) and rule-based
  Chain-of-Region labels (:func:`chain_of_region` scores them per level; the per-level scoring is ours).
- GLOBE (NeurIPS 2025): :func:`globe_answer` (1.0 for city and country right, 0.2 for the country
  only), :func:`entity_recall` (recall of the visual entities tagged for the photo) and
  :func:`judge_localizability` (agreement with a judge model's P(yes) that the photo is localizable;
  any policy can be the judge).
- Ours, in GLOBE's spirit but not GLOBE's: :func:`localizability` (a Brier score against hit@25km),
  :func:`cue_grounding` (quoted cues found in what the tools read off the photo), :func:`format`,
  :func:`tool_use`.
- OSV-5M (CVPR 2024): :func:`geoscore`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from geolocate.agent.state import Evidence
from geolocate.tools.geo import GEOSCORE_SCALE_KM, haversine_km
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
    return math.exp(-max(0.0, float(d_km)) / GEOSCORE_SCALE_KM)


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
    """1 - Brier score of the predicted localizability against the outcome (hit = within 25 km). Ours
    (GLOBE rewards localizability with a judge model instead: :func:`judge_localizability`).

    >>> localizability_reward(0.9, True), localizability_reward(0.9, False), localizability_reward(0.5, False)
    (0.99, 0.18999999999999995, 0.75)
    """
    return 1.0 - (float(localizability) - (1.0 if hit else 0.0)) ** 2


_QUOTED = re.compile(
    r'"([^"\n]{2,60})"|“([^”\n]{2,60})”|«\s?([^»\n]{2,60}?)\s?»|„([^“”\n]{2,60})[“”]'
    r"|(?<![\w])'([^'\n]{2,60})'(?![\w])"
)


def claimed_cues(thoughts: Sequence[str]) -> list[str]:
    """Text cues the reasoning claims to see: quoted strings ("Vaduz", 'Apotheke', «Sortie»). An
    apostrophe inside a word (the driver's side, l'Église) is not a quote.

    >>> claimed_cues(['The sign reads "Vaduz" and a shop says \\'Apotheke\\'.'])
    ['Vaduz', 'Apotheke']
    >>> claimed_cues(["The driver's side and the bus's colour"])
    []
    """
    out = []
    for t in thoughts:
        for m in _QUOTED.finditer(t or ""):
            cue = next(g for g in m.groups() if g is not None).strip()
            if cue:
                out.append(cue)
    return out


def _words(text: str) -> str:
    """Normalised text padded with spaces, for whole-word containment tests."""
    return f" {normalize_name(text)} "


def cue_grounding_reward(claims: Sequence[str], evidence_texts: Sequence[str]) -> float | None:
    """Share of claimed cues that the tools which read the photo support: the normalised claim occurs
    as whole words in an OCR line, EXIF or a zoomed crop's reading (:func:`photo_texts`), never in the
    model's own gazetteer queries or their results. None when nothing is claimed. Ours.

    >>> cue_grounding_reward(["Vaduz", "Paris"], ["WELCOME TO VADUZ"])
    0.5
    >>> cue_grounding_reward(["Vad"], ["WELCOME TO VADUZ"])  # whole words only
    0.0
    >>> cue_grounding_reward([], ["x"]) is None
    True
    """
    if not claims:
        return None
    haystack = " | ".join(_words(t) for t in evidence_texts)
    return sum(1 for c in claims if normalize_name(c) and _words(c) in haystack) / len(claims)


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


PHOTO_TOOLS = ("ocr", "exif", "zoom")
"""Tools that read the photo itself: only their results ground a claimed visual cue."""


def photo_texts(traj: dict) -> list[str]:
    """Text that tools read off the photo (:data:`PHOTO_TOOLS`: OCR lines, EXIF fields, zoomed crops'
    lines), through each tool's output model. Gazetteer and geocoder results are left out: a model
    could otherwise ground any name by looking it up."""
    texts = []
    for raw in traj.get("evidence", []):
        ev = Evidence.model_validate(raw)
        if ev.tool not in PHOTO_TOOLS or not ev.ok:
            continue
        out = ev.typed()
        if out is None:
            continue
        texts += [ln.text for ln in getattr(out, "lines", [])]
        texts += [str(v) for k in ("camera", "timestamp") if (v := getattr(out, k, None))]
    return texts


evidence_texts = photo_texts  # the earlier name


# -- TRL reward functions: the function name is the metric key ---------------------------------------------
FALLBACK_FACTOR = 0.5
"""What the distance and chain rewards keep of a fallback answer (the budget ran out and the Episode
answered at the deepest commitment): stalling must pay strictly less than answering the same point,
or "commit a country, never answer" keeps most of the reward. Ours (Geo-R and GLOBE always answer)."""


def _discount(tr: dict, value: float | None) -> float | None:
    """``value``, times :data:`FALLBACK_FACTOR` for a fallback answer."""
    return value if value is None or _answered(tr) else FALLBACK_FACTOR * value


def geo_r_distance(
    prompts,
    completions,
    trajectory,
    lat,
    lon,
    breakpoints: Sequence[float] = GEO_R_BREAKPOINTS_PAPER,
    **kwargs,
) -> list[float | None]:
    """Geo-R distance reward of each episode's answer (see :func:`geo_r_reward`); a fallback answer
    keeps :data:`FALLBACK_FACTOR` of it."""
    out = []
    for t, la, lo in zip(trajectory, lat, lon):
        tr = _traj(t)
        d = answer_error_km(tr, la, lo)
        out.append(_discount(tr, None if d is None else geo_r_reward(d, breakpoints)))
    return out


def geoscore(prompts, completions, trajectory, lat, lon, **kwargs) -> list[float | None]:
    """exp(-d/1492.7) of each episode's answer (a fallback keeps :data:`FALLBACK_FACTOR`)."""
    out = []
    for t, la, lo in zip(trajectory, lat, lon):
        tr = _traj(t)
        d = answer_error_km(tr, la, lo)
        out.append(_discount(tr, None if d is None else geoscore_reward(d)))
    return out


def chain_of_region(
    prompts, completions, trajectory, continent, country, region, city, **kwargs
) -> list[float | None]:
    """Hierarchical per-level correctness of the committed chain against the GPS-derived labels (a
    fallback answer keeps :data:`FALLBACK_FACTOR` of it)."""
    out = []
    for t, a, b, c, d in zip(trajectory, continent, country, region, city):
        tr = _traj(t)  # parsed once
        label = {"continent": a, "country": b, "region": c, "city": d}
        out.append(_discount(tr, chain_reward(committed_levels(tr), label)))
    return out


def _answered(tr: dict) -> bool:
    """Whether the policy gave its own answer (not the Episode's fallback when the budget ran out)."""
    a = tr.get("answer")
    return a is not None and a.get("source", "answer") == "answer"


def localizability(prompts, completions, trajectory, lat, lon, **kwargs) -> list[float | None]:
    """Calibration of the answer's localizability against hit@25km (1 - Brier); 0 for a fallback
    answer, so stalling until the budget ends never earns it. Ours."""
    out = []
    for t, la, lo in zip(trajectory, lat, lon):
        tr = _traj(t)
        d = answer_error_km(tr, la, lo)
        if d is None:
            out.append(None)
        else:
            out.append(
                localizability_reward(tr["answer"]["localizability"], d <= 25.0) if _answered(tr) else 0.0
            )
    return out


def cue_grounding(prompts, completions, trajectory, **kwargs) -> list[float | None]:
    """Share of quoted cues in the reasoning that tool observations support (None without claims)."""
    out = []
    for t in trajectory:
        tr = _traj(t)
        out.append(
            cue_grounding_reward(
                claimed_cues([turn.get("thought") or "" for turn in tr.get("turns", [])]), photo_texts(tr)
            )
        )
    return out


def _turn_well_formed(turn: dict) -> bool:
    """A reasoning block (``<think>``, a non-empty thought) and no parse error."""
    return bool((turn.get("thought") or "").strip()) and all(
        o["kind"] != "parse_error" for o in turn.get("observations", [])
    )


def format(prompts, completions, trajectory, **kwargs) -> list[float | None]:  # noqa: A001 - the metric's name
    """Share of turns that reason before acting (a non-empty ``<think>`` block) and parse cleanly in
    the action grammar; 0 when the policy never answered (a fallback). Ours."""
    out = []
    for t in trajectory:
        tr = _traj(t)
        turns = tr.get("turns", [])
        if not turns:
            out.append(None)
        elif tr.get("answer") is not None and not _answered(tr):
            out.append(0.0)
        else:
            out.append(sum(_turn_well_formed(turn) for turn in turns) / len(turns))
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


def globe_answer(prompts, completions, trajectory, country, city, **kwargs) -> list[float | None]:
    """GLOBE's answer reward: 1.0 when the city and the country are right, 0.2 for the country only,
    else 0. The committed chain says which; without one, the answer's point reverse-geocoded (so a
    GLOBE-style ``country:``/``city:`` answer, which the parser geocodes, scores as GLOBE scores it).
    Cities compare by normalised name."""
    from geolocate.tools.geocode import reverse_batch

    out = []
    for t, cc, ci in zip(trajectory, country, city):
        tr = _traj(t)
        got = committed_levels(tr)
        a = tr.get("answer")
        if a is None:
            out.append(None)
            continue
        if not got.get("country"):  # an answer without a chain: the place it names (GeoNames)
            r = reverse_batch([(a["lat"], a["lon"])])[0]
            got = {"country": r.country_code, "city": r.city if (r.distance_km or 0) <= 25 else ""}
        right_country = (got.get("country") or "").upper() == (cc or "").upper()
        right_city = bool(ci) and normalize_name(got.get("city") or "") == normalize_name(ci)
        out.append(1.0 if right_country and right_city else 0.2 if right_country else 0.0)
    return out


def entity_recall(prompts, completions, trajectory, entities=None, **kwargs) -> list[float | None]:
    """GLOBE's visual-cue reward: the share of the visual entities tagged for the photo (dataset
    column ``entities``, a list of strings such as "palm tree", "tuk-tuk") that the reasoning names,
    whole words, normalised. None where a photo has no tagged entities."""
    out = []
    for i, t in enumerate(trajectory):
        tags = (entities or [None] * len(trajectory))[i]
        if not tags:
            out.append(None)
            continue
        text = _words(" ".join(turn.get("thought") or "" for turn in _traj(t).get("turns", [])))
        out.append(sum(_words(e) in text for e in tags) / len(tags))
    return out


def judge_localizability(judge):
    """GLOBE's localizability reward with ``judge`` as the judge model: a callable taking the photo's
    path and returning P(yes) that the photo can be located (any policy can serve, e.g. a VLM's
    probability of "yes"); the reward is 1 - (localizability - P(yes))^2, 0 for a fallback answer.

    Returns:
        a TRL reward function named ``judge_localizability``.
    """

    def judge_localizability(prompts, completions, trajectory, **kwargs) -> list[float | None]:
        out = []
        for t in trajectory:
            tr = _traj(t)
            if tr.get("answer") is None:
                out.append(None)
            elif not _answered(tr):
                out.append(0.0)
            else:
                p = float(judge(tr["image"]["path"]))
                out.append(1.0 - (float(tr["answer"]["localizability"]) - p) ** 2)
        return out

    return judge_localizability


def renormalised(funcs: Sequence, weights: Sequence[float]) -> list:
    """Wrap reward functions so that, per episode, the rewards that apply (not None) are scaled by
    (sum of all weights) / (sum of the weights that apply): TRL's weighted sum (``nansum``) is then
    the full weight times the weighted mean of the applicable rewards, so an episode whose reasoning
    quotes no cue is on the same scale as one that does. A reward that does not apply stays None.
    TRL's ``rewards/<name>/mean`` are of the scaled values; the unscaled means are logged as
    ``rewards_raw/<name>/mean`` (through TRL's ``log_metric``).

    >>> def a(prompts, completions, **k): return [1.0, 1.0]
    >>> def b(prompts, completions, **k): return [None, 0.0]
    >>> fa, fb = renormalised([a, b], [1.0, 1.0])
    >>> fa(["p", "q"], ["x", "y"]), fb(["p", "q"], ["x", "y"])
    ([2.0, 1.0], [None, 0.0])
    """
    total = float(sum(weights))
    cache: dict = {}

    def all_values(prompts, completions, kwargs):
        key = (id(prompts), id(completions), len(completions))
        if key not in cache:
            cache.clear()
            cache[key] = [f(prompts, completions, **kwargs) for f in funcs]
            log_metric = kwargs.get("log_metric")  # TRL passes it: the unscaled means, once per batch
            if callable(log_metric):
                for f, vals in zip(funcs, cache[key], strict=True):
                    applied = [v for v in vals if v is not None]
                    if applied:
                        log_metric(f"rewards_raw/{f.__name__}/mean", sum(applied) / len(applied))
        return cache[key]

    wrapped = []
    for i, f in enumerate(funcs):

        def g(prompts, completions, _i=i, **kwargs):
            vals = all_values(prompts, completions, kwargs)
            out = []
            for j in range(len(completions)):
                applicable = sum(w for k, w in enumerate(weights) if vals[k][j] is not None)
                v = vals[_i][j]
                out.append(None if v is None or applicable == 0 else v * total / applicable)
            return out

        wrapped.append(functools.update_wrapper(g, f))
    return wrapped


REWARDS = {
    f.__name__: f
    for f in (
        geo_r_distance,
        geoscore,
        chain_of_region,
        localizability,
        cue_grounding,
        format,
        tool_use,
        globe_answer,
        entity_recall,
    )
}
"""Every reward by metric key (``judge_localizability`` needs a judge: see its factory)."""

DEFAULT_WEIGHTS = {
    "geo_r_distance": 1.0,
    "geoscore": 0.0,
    "chain_of_region": 0.5,
    "localizability": 0.25,
    "cue_grounding": 0.25,
    "format": 0.25,
    "tool_use": 0.1,
    "globe_answer": 0.0,
    "entity_recall": 0.0,
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
