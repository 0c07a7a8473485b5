"""Clue fusion: every text clue of an episode (script, language, distinctive letters, phone numbers,
domains, currency) combined into one posterior over countries, and the answer of greatest expected
GeoScore under it.

The model is naive Bayes over countries (ISO 3166-1 alpha-2):

    P(country | clues) ~ P(country) * prod_k (FLOOR[kind_k] + share_k(country))

- Prior: the country's people in towns of 15,000+ (GeoNames, CC-BY 4.0; :func:`prior`): with no
  clue at all, a photo is likeliest where most people are.
- Likelihood of clue k: ``share_k``, the fraction of the country's people the clue fits (CLDR
  territory data through babel: population percent of a language, of a script's official languages;
  1 for a phone prefix, a country domain or a currency the country uses), plus a floor for a clue
  seen outside the countries it points to (a foreign language on a menu, an imported product). So
  "Bienvenidos" alone gives P ~ Spanish speakers per country.
- Places: the posterior of a country is spread over its places of 15,000+ people by population
  (GeoNames ``cities15000``); the answer is the place with the greatest expected GeoScore,
  mean exp(-d / 1492.7 km) over that distribution (OSV-5M's metric;
  :func:`geolocate.tools.geonames.min_expected_distance_point`), and its expected haversine distance
  is the answer's radius. Unlike the least expected distance, which falls between far-apart modes (a
  number written so in the Netherlands, Italy and South Africa: Sudan), it picks a mode.

The heuristic planner commits the continent and the country when their posterior is high enough and
answers at :meth:`CountryPosterior.best_point` within what it committed; :meth:`CountryPosterior.explain`
is the account the trajectory and the report show.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from geolocate.tools.geo import GEOSCORE_SCALE_KM
from geolocate.tools.geonames import CONTINENTS, get_db, min_expected_distance_point

FLOOR: dict[str, float] = {
    "phone": 1e-5,
    "phone_national": 1e-3,
    "postcode": 1e-3,
    "postcode_alone": 0.05,
    "script_only": 0.5,
    "domain": 1e-4,
    "email": 1e-4,
    "script": 1e-4,
    "letters": 1e-4,
    "currency": 1e-3,
    "language": 5e-4,
    "visual": 0.05,
    "date": 0.02,
    "script_seen": 0.05,
    "place": 0.2,
}
"""Likelihood of a clue of each kind in a country it does not point to (hand-set: how often such a
clue is seen away from home; a phone number almost never, a language on a sign sometimes)."""
DEFAULT_FLOOR = 1e-3
SHORT_SCRIPT_FLOOR = 0.5
"""A script clue resting on n letters has a floor of at least 0.5**n (2 letters 0.25, 4 letters 0.06,
13 letters and more: FLOOR's 1e-4): a character or two of a script are often an OCR misreading of
texture or a single foreign word, while a whole line in it is not (hand-set, as :data:`FLOOR`; the
language clue of the same letters keeps its own floor)."""
LINGUA_FRANCA_FLOOR: dict[str, float] = {"en": 1.0}
"""Floor of a language clue that may be English: shop names, tourist and station signs are written in
English in every country, so English words make an English-speaking country at most about twice as
likely as another (hand-set, as :data:`FLOOR`; CLDR's English shares are uneven besides: 90% in the
Netherlands, none in Norway)."""
LANGUAGE_ABROAD_SPEAKERS = 100e6
"""A language's words are seen outside its countries in proportion to how many speak it (diaspora,
trade, tourism): the floor of a language clue is FLOOR["language"] times its speakers over this many,
at most 1 (CLDR territory languages x GeoNames populations, :func:`~geolocate.tools.clues.language_speakers`).
Spanish, Arabic or Russian keep the full floor; an Icelandic or Slovene sign word is next to never seen
abroad, so a sure identification of it outweighs the population prior of the world's big countries
(hand-set reference, as :data:`FLOOR`)."""
MAX_CANDIDATES = 300
"""Candidate answer points: the most probable places."""


@dataclass(frozen=True)
class FusionStep:
    """One clue folded into the posterior: which evidence it came from, what it said, and the top
    countries after it (code, probability)."""

    evidence: str
    clue: str
    top: tuple[tuple[str, float], ...]


@dataclass
class CountryPosterior:
    """A probability per country (ISO alpha-2 -> P, summing to 1) and how it was reached."""

    probs: dict[str, float]
    steps: list[FusionStep] = field(default_factory=list)
    inside: np.ndarray | None = field(default=None, repr=False)
    """Which of ``populated_places`` the point constraints leave open (None: all)."""

    @property
    def informative(self) -> bool:
        """Whether any clue or constraint entered (otherwise this is the population prior)."""
        return bool(self.steps)

    def top(self) -> tuple[str, float]:
        """The most probable country and its probability."""
        return max(self.probs.items(), key=lambda kv: kv[1])

    def continents(self) -> dict[str, float]:
        """Probability per GeoNames continent code (AF, AS, EU, NA, OC, SA, AN)."""
        countries = get_db().countries
        out: dict[str, float] = {}
        for cc, p in self.probs.items():
            c = countries.get(cc)
            if c is not None:
                out[c.continent] = out.get(c.continent, 0.0) + p
        return out

    def best_point(
        self, country: str | None = None, continent: str | None = None
    ) -> tuple[float, float, float]:
        """The populated place (lat, lon, WGS84 degrees) with the greatest expected GeoScore under this
        posterior, and its expected great-circle distance in km (the answer's radius). With no clue
        (not :attr:`informative`) the posterior is the population prior, which is not where photos are
        taken (OSV-5M has none from China): its least-expected-distance point, the prior centre, is the
        guess that is robust to that. With ``country``
        or ``continent`` (a code the chain committed), the place is chosen among that country's or
        continent's places, still under the whole posterior: the point there nearest to all the
        evidence (French on a sign, Africa committed: the north of Africa, towards France).

        Raises:
            ValueError: no country with probability, or no place in the one asked for.
        """
        countries = get_db().countries
        within = None
        if country is not None or continent is not None:
            within = tuple(
                sorted(
                    cc
                    for cc, c in countries.items()
                    if (country is None or cc == country) and (continent is None or c.continent == continent)
                )
            )
        probs = tuple(sorted((cc, round(p, 6)) for cc, p in self.probs.items() if p > 1e-6))
        scale = GEOSCORE_SCALE_KM if self.informative else None
        if self.inside is None:
            return _best_point(probs, within, None, scale)
        return _best_point.__wrapped__(probs, within, self.inside, scale)

    def explain(self, n: int = 4) -> str:
        """The fusion as one line per step (prior, each clue, the continents), top ``n`` countries."""
        parts = ["prior: people per country in GeoNames towns of 15,000+"]
        for s in self.steps:
            parts.append(f"{s.clue} ({s.evidence}) -> " + ", ".join(f"{cc} {p:.2f}" for cc, p in s.top[:n]))
        cont = sorted(self.continents().items(), key=lambda kv: -kv[1])[:3]
        parts.append("continents: " + ", ".join(f"{CONTINENTS.get(c, c)} {p:.2f}" for c, p in cont))
        return "; ".join(parts)


@functools.lru_cache(maxsize=256)
def _best_point(
    probs: tuple[tuple[str, float], ...],
    within: tuple[str, ...] | None,
    inside: np.ndarray | None = None,
    geoscore_scale_km: float | None = GEOSCORE_SCALE_KM,
) -> tuple[float, float, float]:
    lat, lon, pop, cc = get_db().populated_places
    p = dict(probs)
    if not p:
        raise ValueError("no country with probability to answer in")
    mass = np.zeros(len(pop))
    for code in p:
        sel = cc == code if inside is None else (cc == code) & inside
        total = pop[sel].sum()
        if total > 0:
            mass[sel] = p[code] * pop[sel] / total
    keep = np.argsort(-mass, kind="stable")
    keep = keep[mass[keep] > 1e-9]  # every town counts: the small ones carry much of the mass
    if within is None:
        cand = keep[:MAX_CANDIDATES]
    else:  # the most populous places of the committed area (by posterior mass where it has any)
        area = np.isin(cc, within) if inside is None else np.isin(cc, within) & inside
        idx = np.flatnonzero(area)
        order = np.lexsort((-pop[idx], -mass[idx]))
        cand = idx[order[:MAX_CANDIDATES]]
    if len(keep) == 0 or len(cand) == 0:
        raise ValueError("no populated place to answer in")
    pts = np.concatenate([cand, keep])
    return min_expected_distance_point(
        lat[pts],
        lon[pts],
        np.concatenate([np.zeros(len(cand)), mass[keep]]),
        np.arange(len(cand)),
        geoscore_scale_km=geoscore_scale_km,
    )


def visual_clue(candidates) -> object:
    """GeoCLIP's candidates (:class:`~geolocate.tools.visual.Candidate`) as a clue of kind ``visual``:
    their probability per country (GeoNames reverse geocoding). Its floor (:data:`FLOOR`) is high, so
    it ranks countries the text leaves open but never overrides a text clue."""
    from geolocate.tools.clues import Clue, CountryVote
    from geolocate.tools.visual import country_shares

    shares = country_shares(list(candidates))
    return Clue(
        kind="visual",
        value="GeoCLIP candidates",
        countries=[
            CountryVote(country_code=cc, weight=round(v, 4), share=round(v, 4)) for cc, v in shares.items()
        ],
        source="GeoCLIP (NeurIPS 2023) top-k GPS candidates",
    )


@functools.cache
def prior() -> dict[str, float]:
    """P(country) with no clue: its people in places of 15,000+ (GeoNames ``cities15000``; a country
    without such a place counts its whole population, GeoNames ``countries.json``), normalised to sum
    to 1. With no clue, :meth:`CountryPosterior.best_point` is then the population-weighted centre of
    the world's towns, the same point as :attr:`~geolocate.tools.geonames.GeoNamesDB.prior_point`."""
    db = get_db()
    _, _, pop, cc = db.populated_places
    codes, inverse = np.unique(cc, return_inverse=True)
    urban = dict(zip(codes.tolist(), np.bincount(inverse, weights=pop).tolist(), strict=True))
    people = {code: urban.get(code) or float(c.population) for code, c in db.countries.items()}
    people = {code: v for code, v in people.items() if v > 0}
    total = sum(people.values())
    return {code: v / total for code, v in people.items()}


def fuse(
    clues: Iterable[tuple[str, object]],
    allowed: Callable[[str], bool] | None = None,
    within: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> CountryPosterior:
    """Fold clues into the population prior.

    Args:
        clues: (evidence id, :class:`~geolocate.tools.clues.Clue`) pairs; clues without countries
            (Latin script, an instruction) are skipped.
        allowed: countries the constraints leave open (default: all).
        within: point constraints (a bbox, a circle, the sun's band, the clock's time zones) as a
            function of (lat, lon) arrays -> bool array; a country's prior is then its people in the
            towns left open, and the answer is chosen among those towns.

    Returns:
        The posterior, with one :class:`FusionStep` per clue that entered.
    """
    base = prior()
    inside = None
    if within is not None:
        lat, lon, pop, cc = get_db().populated_places
        inside = np.asarray(within(lat, lon), dtype=bool)
        codes, inverse = np.unique(cc, return_inverse=True)
        kept = np.bincount(inverse, weights=pop * inside)
        full = np.bincount(inverse, weights=pop)
        share = dict(zip(codes.tolist(), (kept / np.maximum(full, 1.0)).tolist(), strict=True))
        base = {code: p * share.get(code, 1.0) for code, p in base.items() if share.get(code, 1.0) > 0}
    logp = {cc: float(np.log(p)) for cc, p in base.items() if allowed is None or allowed(cc)}
    steps: list[FusionStep] = []
    if inside is not None or allowed is not None:
        probs = _normalise(logp)
        top = tuple((cc, round(p, 3)) for cc, p in sorted(probs.items(), key=lambda kv: -kv[1])[:5])
        what = f"{int(inside.sum())} towns left open" if inside is not None else "countries left open"
        steps.append(FusionStep("constraints", what, top))
    for eid, clue in clues:
        if not clue.countries:
            continue
        floor = FLOOR.get(clue.kind, DEFAULT_FLOOR)
        if clue.letters:  # two Han characters misread in foliage must not outweigh a city's name
            floor = max(floor, SHORT_SCRIPT_FLOOR**clue.letters)
        if clue.kind == "language":
            floor = language_floor(str(clue.value).split("/"), floor)
        share = {v.country_code: (v.share if v.share is not None else v.weight) for v in clue.countries}
        for cc in logp:
            logp[cc] += float(np.log(floor + min(1.0, share.get(cc, 0.0))))
        probs = _normalise(logp)
        top = tuple((cc, round(p, 3)) for cc, p in sorted(probs.items(), key=lambda kv: -kv[1])[:5])
        steps.append(FusionStep(eid, f"{clue.kind} {clue.value}", top))
    return CountryPosterior(_normalise(logp), steps, inside)


def language_floor(languages: list[str], base: float = FLOOR["language"]) -> float:
    """The floor of a language clue naming ``languages`` (ISO 639 codes, likeliest first): ``base``
    scaled by the speakers of the most spoken of them (:data:`LANGUAGE_ABROAD_SPEAKERS`), and
    :data:`LINGUA_FRANCA_FLOOR` for English. A language CLDR does not know keeps ``base``.

    >>> language_floor(["is"]) < 1e-5 < language_floor(["es"]) == FLOOR["language"]
    True
    """
    from geolocate.tools.clues import _LANG_COUNTRIES_ALIASES, language_speakers

    scale = 0.0
    for lang in languages:  # wordfreq's "sh" is Croatian, Serbian and Bosnian together
        people = sum(language_speakers(code) for code in _LANG_COUNTRIES_ALIASES.get(lang, (lang,)))
        scale = max(scale, min(1.0, people / LANGUAGE_ABROAD_SPEAKERS) if people > 0 else 1.0)
    floor = base * (scale if languages else 1.0)
    return max([floor] + [LINGUA_FRANCA_FLOOR.get(lang, 0.0) for lang in languages])


def _normalise(logp: dict[str, float]) -> dict[str, float]:
    if not logp:
        return {}
    m = max(logp.values())
    w = {cc: float(np.exp(v - m)) for cc, v in logp.items()}
    total = sum(w.values())
    return {cc: v / total for cc, v in w.items()}
