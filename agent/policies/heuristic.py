"""A deterministic, rule-based planner: the embedded default when no VLM is configured, and the
baseline for tool ablations.

It speaks the same action grammar to the same Episode as a VLM would, one turn at a time:

1. ``exif``: a GPS position is reverse-geocoded and committed level by level (answer radius 50 m).
2. ``ocr`` then ``clues`` on the trusted text (lines that read like instructions are left out).
3. ``gazetteer`` look-ups of place-name candidates (word n-grams) from the text.
4. Each match is scored: match quality x population prior x agreement with the clue countries x a
   penalty for names that are also common words (``wordfreq``). A strong match commits the chain down
   to the city.
5. Otherwise every clue is fused into one country posterior (:mod:`geolocate.agent.fusion`): a likely
   country (>= :data:`COUNTRY_MIN_SCORE`) commits continent and country, a likely continent only the
   continent, and the answer is the town with the least expected great-circle distance under the
   posterior (within what was committed), its radius that expected distance. With no clue at all this
   is the population prior's centre, with localizability 0.02.

Every decision reads only the Episode's evidence log, so the policy is stateless and resumable.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import regex

from geolocate.agent import fusion
from geolocate.agent.actions import Action, Answer, Backtrack, Commit, ToolCall, render_turn
from geolocate.agent.stages import LEVELS, Level
from geolocate.agent.state import REGION_TOOLS
from geolocate.tools.clues import instruction_lines
from geolocate.tools.geo import haversine_km
from geolocate.tools.geonames import CONTINENTS, get_db, normalize_name

log = logging.getLogger(__name__)

CITY_MIN_SCORE = 0.6
"""Minimum match score to commit down to the city."""
SUPPORT_KM = 30.0
"""Another word of the sign naming a place this close to a candidate supports it (km)."""
SELF_REFERENCE_POP = 100_000
"""Above this population a place's own languages are left out of the common-word check."""
BIG_CITY_POP = 500_000
"""An exact short alternate name of a city this big is its local name, not an OCR fragment."""
COUNTRY_MIN_SCORE = 0.45
"""Minimum posterior probability (clue fusion) of a country to commit it with no place name."""
CONTINENT_MIN_SCORE = 0.35
"""Minimum posterior probability of a continent to commit it when the answer point lies there anyway
(the likeliest continent at 0.5 is committed and the answer moved into it)."""
NAMED_PLACE_MIN_SHARE = 0.2
"""A gazetteer match in the country the fusion committed is where the answer goes when the words name a
place there with at least this probability (``score_without_clues``: a place rather than a word)."""
NAMED_PLACE_RADIUS_KM = 50.0
"""Radius of an answer at such a named place: the city is not committed, so the name may be a street or
a district named after it (at most the country's expected distance)."""
MAX_PLACE_QUERIES = 6

_WORD = regex.compile(r"\p{L}[\p{L}\p{M}'’.\-]*")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_NUMBERED_NAME = regex.compile(r"\p{L}[\p{L}\p{M}'’.\-]{3,}(?:\s+\p{L}[\p{L}\p{M}'’.\-]*)?\s+\d{1,2}")
"""A line that is a word or two and a number of one or two digits: a district named by its number."""


@functools.cache
def _zipf(word: str, langs: tuple[str, ...]) -> float:
    """Highest Zipf frequency of ``word`` over ``langs`` (wordfreq, through the on-disk index of
    :mod:`geolocate.tools.words`). A language wordfreq lacks, or whose tokenizer is not installed
    (Chinese needs jieba, Japanese and Korean MeCab: ``wordfreq[cjk]``), counts 0: the planner must not
    fail on a missing optional package."""
    from geolocate.tools.words import zipf

    return max((zipf(word, lang) for lang in langs), default=0.0)


ALTERNATE_NAME_PEOPLE = 0.001
"""Share of a place's people that an alternate name's expected word frequency is reckoned from."""
WORLD_CITY_POP = 1_000_000
"""A place this populous is written about in every language under its exonyms (Москва is Moscow in
Bulgarian too): its alternate names' frequency in any language is expected from all its people."""


def commonness_factor(
    name: str,
    population: int,
    languages: tuple[str, ...] = ("en",),
    country_code: str = "",
    alternate: bool = False,
) -> float:
    """In (0, 1]: how much to trust that ``name`` in a photo means the place rather than the word.

    A place name that is also a frequent word ('Stop', 'Bank') in the sign's languages (English and
    those the clues detect) is discounted unless the place is populous enough to be that frequent
    itself: expected Zipf frequency (``wordfreq``) 1.5 + 0.65 log10(pop). The languages of the
    place's own country count only for places under :data:`SELF_REFERENCE_POP`: above that, the
    name is frequent there because of the place itself (Bergen in Norwegian, Oslo, Barcelona). An
    ``alternate`` name (not the place's GeoNames name) explains its frequency only in the languages
    of the place's country (München, Минск, 上海); in any other language it is expected as if the
    place had :data:`ALTERNATE_NAME_PEOPLE` of its people: "Leie", an exonym of Leiden, is frequent in
    Norwegian because it means "rent". So is the own name of a place under :data:`SELF_REFERENCE_POP`
    in the languages its country does not speak (a city of :data:`WORLD_CITY_POP` or more is expected
    from all its people: the Bulgarian "Москва" is Moscow).

    >>> round(commonness_factor("Stop", 2000), 2), commonness_factor("Oslo", 700_000, country_code="NO")
    (0.32, 1.0)
    >>> round(commonness_factor("Leie", 119_713, ("en", "nb"), "NL", alternate=True), 2)
    0.36
    >>> round(commonness_factor("Salerni", 898, ("en", "is"), "IT"), 2)  # Icelandic: toilets
    0.24
    """
    c = get_db().countries.get(country_code)
    own = {x.split("-")[0] for x in c.languages} if c is not None else set()
    langs = list(languages)
    if c is not None and population < SELF_REFERENCE_POP:
        langs += [x.split("-")[0] for x in c.languages[:2]]
    elif not alternate:  # frequent in its own languages because of the place itself (Bergen in Norwegian)
        langs = [x for x in langs if x not in own]
    langs = list(dict.fromkeys(langs))
    # The word as written and as matched: folding drops what tells a language's word ("داخلہ", Urdu for
    # "entrance", folds to the Arabic-letter "داخله" that Urdu's list lacks; "Saída" to "saida").
    keys = list(dict.fromkeys([" ".join(name.split()), normalize_name(name)]))

    def factor(ls: list[str], people: float) -> float:
        if not ls:
            return 1.0
        expected = 1.5 + 0.65 * math.log10(max(people, 1))
        return math.exp(-0.6 * max(0.0, max(_zipf(k, tuple(ls)) for k in keys) - expected))

    if not alternate:
        if c is not None and population < SELF_REFERENCE_POP:
            # A small place explains its name's frequency only in its own country's languages: an
            # Icelandic "Salerni" (toilets) is not about a village of 900 in Italy.
            return min(
                factor([x for x in langs if x in own], population),
                factor([x for x in langs if x not in own], population * ALTERNATE_NAME_PEOPLE),
            )
        return factor(langs, population)
    foreign = [x for x in langs if x not in own]
    return min(
        factor([x for x in langs if x in own], population),
        factor(foreign, population * (1.0 if population >= WORLD_CITY_POP else ALTERNATE_NAME_PEOPLE)),
    )


def place_candidates(lines: list[str], limit: int = MAX_PLACE_QUERIES) -> list[str]:
    """Place-name candidates from text lines: word n-grams (3, 2, 1 words), longest first; a CJK run
    is one candidate. Candidates have >= 4 letters (>= 2 in other scripts than Latin; 3 for a line that
    is one capitalised word: Lae, Osh, Ufa); a line that is a name and a number of one or two digits is
    one too (Sector 3). Duplicates are dropped.

    >>> place_candidates(["WELCOME TO VADUZ", "Tel 123"])
    ['WELCOME TO VADUZ', 'WELCOME TO', 'TO VADUZ', 'WELCOME', 'VADUZ']
    >>> place_candidates(["Sector 3"])
    ['Sector 3', 'Sector']
    >>> place_candidates(["Lae", "bus to Ufa"])
    ['bus to Ufa', 'bus to', 'to Ufa', 'Lae']
    """
    out: list[str] = []
    seen: set[str] = set()
    grams: list[tuple[int, int, str]] = []
    for li, line in enumerate(lines):
        if _CJK.search(line):
            for run in regex.findall(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]{2,}", line):
                grams.append((1, -li, run))
            continue
        words = _WORD.findall(line)
        numbered = _NUMBERED_NAME.fullmatch(line.strip())
        if numbered:  # a district by its number: "Sector 3", "Quận 1", "District 9"
            grams.append((len(words) + 1, -li, " ".join(line.split())))
        if 4 <= len(words) <= 6:  # a long name whole: "Santa Cruz de la Sierra"
            grams.append((len(words), -li, " ".join(words).strip(".-'’")))
        for n in (3, 2, 1):
            for i in range(len(words) - n + 1):
                cand = " ".join(words[i : i + n]).strip(".-'’")
                letters = sum(ch.isalpha() for ch in cand)
                alone = line.strip(" .-'’") == cand and cand[:1].isupper()  # a line of one capitalised word
                if letters >= 4 or (letters >= 2 and not cand.isascii()) or (letters == 3 and alone):
                    grams.append((n, -li, cand))
    for _n, _, cand in sorted(grams, key=lambda g: (-g[0], -g[1])):
        k = normalize_name(cand)
        if k and k not in seen:
            seen.add(k)
            out.append(cand)
    return out[: limit * 3]


HINT_COMMON_ZIPF = 4.5
"""A lower-case word group of the analyst's note at least this frequent in English (wordfreq Zipf) is
an everyday phrase ("a white van", "the bus stop"), not a place name, unless it is written capitalised."""


def hint_candidates(text: str, limit: int = MAX_PLACE_QUERIES) -> list[str]:
    """Place-like phrases of an analyst's note, wherever they stand in the sentence: word groups of one
    to three words that are written capitalised (the names in "the sign says Rua Augusta"), or that are
    a GeoNames place name as they are (lower case: "it says kaohsiung"), everyday phrases left out.
    Capitalised groups come first, longer before shorter, then the rest by the population of the
    place they name.

    >>> hint_candidates("I can see a red car, a white van and the bus stop sign says Kaohsiung")[0]
    'Kaohsiung'
    >>> hint_candidates("the bus stop sign says Kaohsiung")[:1]
    ['Kaohsiung']
    """
    from geolocate.tools.geonames import get_db

    db = get_db()
    tokens = [m.group(0).strip(".-'’") for m in _WORD.finditer(text)]
    tokens += regex.findall(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]{2,}", text)
    seen: set[str] = set()
    ranked: list[tuple[tuple, str]] = []
    for n in (3, 2, 1):
        for i in range(len(tokens) - n + 1):
            words = tokens[i : i + n]
            cand = " ".join(words)
            key = normalize_name(cand)
            letters = sum(ch.isalpha() for ch in cand)
            if not key or key in seen or (letters < 3 and not _CJK.search(cand)):
                continue
            seen.add(key)
            capitalised = all(w[:1].isupper() for w in words) and not (i == 0 and n == 1 and len(cand) < 4)
            places = db.places_by_key(key)
            if not capitalised:
                if not places or _zipf(key, ("en",)) >= HINT_COMMON_ZIPF:
                    continue
            pop = max((int(p.population or 0) for p, _ in places), default=0)
            ranked.append(((not capitalised, -n if capitalised else 0, -pop, i), cand))
    return [c for _, c in sorted(ranked)][: limit * 3]


FUZZY_MIN_POPULATION = 100_000
"""A gazetteer hit that is not an exact name match counts only for a place this populous: an OCR
slip may turn "Bageri" into "Bagheria", a common word may look like a small town's name."""
PLACE_PRIOR_FLOOR = 1_000
ALTERNATE_NAME_WEIGHT = 0.5
"""Prior weight of a namesake that bears the words only as an alternate name (an exonym: Mons is
"Bergen" in Dutch) next to namesakes that bear them as their own name: signs mostly use the local name."""
"""People added to every namesake's population: a village is not impossible next to a city."""


def _is_word(query: str) -> bool:
    """Whether a one-word query is a word of some language as it stands (``wordfreq`` Zipf >=
    :func:`~geolocate.tools.clues.sign_word_min_zipf` in one of the word languages): near matches are
    for OCR slips, and "Salerni" (Icelandic for toilets) is not a slip of Salerno.

    >>> _is_word("Salerni"), _is_word("Salernq")
    (True, False)
    """
    from geolocate.tools.clues import _word_zipf, sign_word_min_zipf

    words = query.split()
    if len(words) != 1 or not words[0].isalpha():
        return False
    return max(z for _, z in _word_zipf(words[0].lower())) >= sign_word_min_zipf(words[0])


def resolve_places(
    gazetteer: list,
    lr: dict[str, float] | Callable[[str], dict[str, float]],
    languages: tuple[str, ...] = ("en",),
    agreement_lr: dict[str, float] | None = None,
) -> list[dict]:
    """Every place the sign's words may name, scored 0..1, best first.

    For each query (a word group of the sign), its **exact** GeoNames matches are its namesakes; only
    a query without any exact match falls back to near matches, and then only to places of
    :data:`FUZZY_MIN_POPULATION` or more, and not for a single word that is a word of some language
    as written (:func:`_is_word`). A query whose words are inside a longer query with an
    exact match is left out (the longest name wins: "Flying Fish Cove", not "Cove"). Among namesakes,
    P(place | name) is proportional to its people (plus :data:`PLACE_PRIOR_FLOOR`; times
    :data:`ALTERNATE_NAME_WEIGHT` for a name that is only an alternate one) times ``lr`` of its
    country (the other clues' likelihood ratio): a name shared by many places is resolved by the
    clues, a unique name (Vaduz, Tórshavn) is its place whatever its size. The score is that
    probability times how surely the words are a place name at all (:func:`commonness_factor`; short
    fragments and near matches count less), times how well the writing agrees with the namesakes at
    all (the people-weighted mean of ``agreement_lr`` over them, its square root, at most 1: a ř on
    the sign speaks against every Croatian "Reka"; language clues are left out of it by the caller,
    English stands on signs everywhere; not for a name only other languages use, an exonym such as
    ВАРШАВА, which is written unlike its place's country by nature), and a bonus for other words of
    the sign naming places within :data:`SUPPORT_KM`.

    ``lr`` is a country -> likelihood-ratio map, or a function of the query giving one (so that a
    query's own words do not vote for their language: "Lagos" reads as Portuguese, yet names a city
    of Nigeria first). An empty map means no clues.

    Returns dicts with ``evidence``, ``query``, ``place`` (a ``PlaceMatch``), ``score`` and
    ``score_without_clues`` (the same with ``lr`` ignored: for an analyst's note).
    """
    per_query: dict[str, tuple[Any, list, bool]] = {}
    for e, q, matches in gazetteer:
        exact = [m for m in matches if m.method == "exact" or m.score >= 0.999]
        if exact:
            per_query[q] = (e, exact, True)
            continue
        near = [m for m in matches if m.score >= 0.9 and int(m.population or 0) >= FUZZY_MIN_POPULATION]
        if near and not _is_word(q):  # a word as written ("Salerni", toilets) is no slip of a place name
            per_query[q] = (e, near, False)
    keys = {q: normalize_name(q) for q in per_query}
    longer = [k for q, k in keys.items() if per_query[q][2]]
    out: list[dict] = []
    for q, (e, ms, exact) in per_query.items():
        k = keys[q]
        if any(k != other and f" {k} " in f" {other} " for other in longer):
            continue  # part of a longer name that matched exactly
        ratios = lr(q) if callable(lr) else lr
        own = any(m.score >= 0.999 for m in ms)
        pops = {
            id(m): (int(m.population or 0) + PLACE_PRIOR_FLOOR)
            * (ALTERNATE_NAME_WEIGHT if own and exact and m.score < 0.999 else 1.0)
            for m in ms
        }
        missing = 1.0 if not ratios else 1e-3
        with_clues = {id(m): pops[id(m)] * ratios.get(m.country_code, missing) for m in ms}
        z, z0 = sum(with_clues.values()) or 1.0, sum(pops.values())
        agreement = 1.0
        if agreement_lr and own:  # an exonym (ВАРШАВА, Wien) is written unlike its place's country
            agreement = (
                min(1.0, sum(pops[id(m)] * agreement_lr.get(m.country_code, 1e-3) for m in ms) / z0) ** 0.5
            )
        top = max(ms, key=lambda m: int(m.population or 0))
        name_is_place = commonness_factor(
            top.matched, int(top.population or 0), languages, top.country_code, alternate=top.score < 0.999
        )
        short = len(k) < 4 and not _CJK.search(q)
        quality = name_is_place * (0.5 if not exact else 1.0) * (0.7 if short else 1.0)
        for m in ms:
            support = min(2, HeuristicPolicy._support(q, m, gazetteer))
            bonus = 1.0 + 0.15 * support
            out.append(
                {
                    "evidence": e,
                    "query": q,
                    "place": m,
                    "score": min(1.0, with_clues[id(m)] / z * quality * agreement * bonus),
                    "score_without_clues": min(1.0, pops[id(m)] / z0 * quality * bonus),
                }
            )
    return sorted(out, key=lambda c: -c["score"])


def metadata_position(out) -> tuple[float, float, float, str] | None:
    """(lat, lon, radius in km, source) of the position a metadata result (``ExifOutput``) gives, or
    None: EXIF GPS first (its radius GPSHPositioningError, at least 50 m), then the GPS position of the
    XMP/IPTC location fields. Positions were validated by :mod:`geolocate.tools.metadata`."""
    if out is None:
        return None
    if out.lat is not None and out.lon is not None:
        err_km = (out.gps_error_m or 0.0) / 1000.0
        return out.lat, out.lon, round(max(0.05, err_km), 3), "EXIF GPS"
    lf = out.location_fields or {}
    if "lat" in lf and "lon" in lf:
        return float(lf["lat"]), float(lf["lon"]), 0.05, "XMP GPS"
    return None


class HeuristicPolicy:
    """Rule-based planner; see the module docstring. Deterministic; reads only the evidence log."""

    name = "heuristic"

    def __init__(self, max_place_queries: int = MAX_PLACE_QUERIES):
        self.max_place_queries = max_place_queries

    # -- helpers over the evidence log -----------------------------------------------------------------
    @staticmethod
    def _ok(ep, tool: str) -> list:
        return [e for e in ep.state.evidence if e.tool == tool and e.ok]

    @staticmethod
    def _called(ep, tool: str) -> bool:
        return any(e.tool == tool for e in ep.state.evidence)

    @staticmethod
    def _last_turn_rejected(ep) -> bool:
        if not ep.state.turns:
            return False
        return any(o.kind == "illegal" for o in ep.state.turns[-1].observations)

    # -- the policy --------------------------------------------------------------------------------------
    def act(self, ep) -> str:
        tools = ep.tools
        plan = None
        if "exif" in tools and not self._called(ep, "exif"):
            return render_turn(
                "Start with the file's metadata: an EXIF GPS position would settle it.",
                [ToolCall(name="exif")],
            )
        gps = next(
            ((e.id, pos) for e in self._ok(ep, "exif") if (pos := metadata_position(e.typed())) is not None),
            None,
        )
        if gps is not None:
            eid, pos = gps
            rev = next((e for e in self._ok(ep, "geocode") if e.arguments.get("op") == "reverse"), None)
            if rev is None and "geocode" in tools and not self._called(ep, "geocode"):
                return render_turn(
                    f"{pos[3].split()[0]} has a GPS position ({pos[0]:.5f}, {pos[1]:.5f}); "
                    "reverse-geocode it to name the regions.",
                    [ToolCall(name="geocode", arguments={"op": "reverse", "lat": pos[0], "lon": pos[1]})],
                )
            plan = self._plan_from_gps(eid, pos, rev)
        else:
            ex = next((e.typed() for e in self._ok(ep, "exif")), None)
            if ex is not None and ex.utc_offset and "timezone" in tools and not self._called(ep, "timezone"):
                return render_turn(
                    f"No GPS, but the clock's UTC offset is {ex.utc_offset}: find the time zones that had it "
                    "then, to rule out the rest of the world.",
                    [ToolCall(name="timezone")],
                )
            if "ocr" in tools and not self._called(ep, "ocr"):
                return render_turn(
                    "No GPS in the metadata. Read any text in the photo (signs, shop names, numbers).",
                    [ToolCall(name="ocr")],
                )
            lines = self._trusted_lines(ep)
            if lines and "clues" in tools and not self._called(ep, "clues"):
                return render_turn(
                    "Text found; extract script, language, phone, domain and currency clues.",
                    [ToolCall(name="clues", arguments={"text": "\n".join(lines)})],
                )
            if lines and "gazetteer" in tools and not self._called(ep, "gazetteer"):
                budget = ep.state.budget.max_tool_calls - ep.state.tool_calls - 1
                queries = place_candidates(lines, self.max_place_queries)[
                    : max(0, min(self.max_place_queries, budget))
                ]
                if queries:
                    return render_turn(
                        "Look up the words on signs that could be place names: "
                        + ", ".join(repr(q) for q in queries)
                        + ".",
                        [ToolCall(name="gazetteer", arguments={"query": q}) for q in queries],
                    )
            if "visual_candidates" in tools and not self._called(ep, "visual_candidates"):
                return render_turn(
                    "Ask GeoCLIP where the image itself looks like (a visual prior for the clues).",
                    [ToolCall(name="visual_candidates", arguments={"top_k": 10})],
                )
            if (turn := self._read_hints(ep)) is not None:
                return turn
            plan = self._plan_from_text(ep)
        return self._execute(ep, plan)

    # -- the analyst's notes and constraints --------------------------------------------------------------
    @staticmethod
    def _hint_queries(ep, hint) -> list[str]:
        """Gazetteer queries already made for ``hint`` (made after it, from its words)."""
        cands = {normalize_name(c) for c in hint_candidates(hint.output["text"], MAX_PLACE_QUERIES)}
        return [
            e.arguments.get("query", "")
            for e in ep.state.evidence
            if e.tool == "gazetteer"
            and e.turn > hint.turn
            and normalize_name(e.arguments.get("query", "")) in cands
        ]

    def _read_hints(self, ep) -> str | None:
        """The next turn that reads an analyst's hint with the clue and gazetteer tools, or None when
        every hint has been read (a hint is trusted text: instruction filtering is for the photo)."""
        for hint in (e for e in ep.state.evidence if e.tool == "hint"):
            text = hint.output["text"]
            if "clues" in ep.tools and not any(
                e.tool == "clues" and e.arguments.get("text") == text for e in ep.state.evidence
            ):
                return render_turn(
                    f"The analyst noted {text!r} ({hint.id}): extract its clues.",
                    [ToolCall(name="clues", arguments={"text": text})],
                )
            if "gazetteer" in ep.tools and not self._hint_queries(ep, hint):
                budget = ep.state.budget.max_tool_calls - ep.state.tool_calls - 1
                queries = hint_candidates(text, self.max_place_queries)[
                    : max(0, min(self.max_place_queries, budget))
                ]
                if queries:
                    return render_turn(
                        f"Look up the place names in the analyst's note {hint.id}: "
                        + ", ".join(repr(q) for q in queries)
                        + ".",
                        [ToolCall(name="gazetteer", arguments={"query": q}) for q in queries],
                    )
        return None

    @staticmethod
    def _support(query: str, m, gazetteer) -> int:
        """How many other words of the sign (queries sharing no word with ``query``) have a match
        within :data:`SUPPORT_KM` of the place ``m``."""
        words = set(normalize_name(query).split())
        n = 0
        for _e, q, matches in gazetteer:
            if words & set(normalize_name(q).split()):
                continue
            if any(haversine_km(m.lat, m.lon, x.lat, x.lon) <= SUPPORT_KM for x in matches):
                n += 1
        return n

    @staticmethod
    def _clue_scores(e, from_hint: bool) -> dict[str, float]:
        """Country scores of a clues result. For an analyst's note only what it says counts (phone
        numbers, domains, currency...), not the script or language it is written in: the analyst's
        own language says nothing about where the photo was taken."""
        out = e.typed()
        if not from_hint:
            return out.country_scores
        votes: dict[str, float] = {}
        for c in out.clues:
            if c.kind not in ("script", "language"):
                for v in c.countries:
                    votes[v.country_code] = votes.get(v.country_code, 0.0) + v.weight
        norm = sum(votes.values())
        return {cc: w / norm for cc, w in votes.items()} if norm > 0 else {}

    @staticmethod
    def _allowed(constraints, country: str, lat: float | None = None, lon: float | None = None) -> bool:
        if not all(c.allows_country(country) for c in constraints):
            return False
        return lat is None or all(c.allows_point(lat, lon) for c in constraints)

    def _trusted_lines(self, ep) -> list[str]:
        lines: list[str] = []
        for e in self._ok(ep, "ocr"):
            lines.extend(ln.text for ln in e.typed().lines)
        bad = set(instruction_lines("\n".join(lines)))
        for e in self._ok(ep, "ocr") + self._ok(ep, "clues"):
            bad.update(e.typed().untrusted_lines)
        return [ln for ln in lines if ln.strip() and ln.strip() not in bad]

    # -- plans: target chain + answer ----------------------------------------------------------------
    def _plan_from_gps(self, eid: str, pos: tuple[float, float, float, str], rev) -> dict[str, Any]:
        lat, lon, radius_km, source = pos
        plan: dict[str, Any] = {
            "why": f"{source} ({lat:.5f}, {lon:.5f})",
            "answer": Answer(lat=lat, lon=lon, radius_km=radius_km, localizability=0.95),
            "levels": [],
        }
        if rev is not None:
            r = rev.typed().reverse
            ev = [eid, rev.id]
            cc = r.country_code
            country = get_db().countries.get(cc)
            if country is not None:
                plan["levels"] = [
                    (Level.CONTINENT, CONTINENTS[country.continent], 0.95, ev),
                    (Level.COUNTRY, cc, 0.95, ev),
                ]
                if r.admin1:
                    plan["levels"].append((Level.REGION, r.admin1, 0.9, ev))
                    if r.city and (r.distance_km or 1e9) <= 25:
                        plan["levels"].append((Level.CITY, r.city, 0.9, ev))
        return plan

    def _plan_from_text(self, ep) -> dict[str, Any]:
        constraints = ep.state.constraints()
        clue_evs = self._ok(ep, "clues")
        clue_ev = next(iter(clue_evs), None)
        scores: dict[str, float] = clue_ev.typed().country_scores if clue_ev else {}
        if len(clue_evs) > 1 or constraints:  # the analyst's notes add clues; constraints remove countries
            hint_texts = {e.output["text"] for e in ep.state.evidence if e.tool == "hint"}
            total: dict[str, float] = {}
            for e in clue_evs:
                for cc, p in self._clue_scores(e, e.arguments.get("text") in hint_texts).items():
                    if self._allowed(constraints, cc):
                        total[cc] = total.get(cc, 0.0) + p
            norm = sum(total.values())
            scores = {cc: p / norm for cc, p in total.items()} if norm > 0 else {}
        hints = [e for e in ep.state.evidence if e.tool == "hint"]
        hint_queries = {normalize_name(q) for h in hints for q in self._hint_queries(ep, h)}
        hint_texts = {h.output["text"] for h in hints}
        languages = ("en",) + tuple(
            lang
            for e in clue_evs
            if e.arguments.get("text") not in hint_texts
            for c in e.typed().clues
            if c.kind == "language"
            for lang in str(c.value).split("/")  # "nb/nl/af": the likeliest languages, best first
        )
        gazetteer = [(e, e.arguments.get("query", ""), e.typed().matches) for e in self._ok(ep, "gazetteer")]
        ocr_ids = [e.id for e in self._ok(ep, "ocr")]
        vis = next(iter(self._ok(ep, "visual_candidates")), None)
        if vis is not None:
            from geolocate.tools.visual import country_shares

            visual_share = country_shares(vis.typed().candidates)
        else:
            visual_share = {}
        lr = self._clue_likelihood_ratio(ep, clue_evs, hint_texts, constraints)
        best = None
        for cand in resolve_places(gazetteer, lr, languages, agreement_lr=lr(None)):
            e, q, m, s = cand["evidence"], cand["query"], cand["place"], cand["score"]
            from_hint = normalize_name(q) in hint_queries
            if constraints and (
                not self._allowed(constraints, m.country_code, m.lat, m.lon)
                or any(
                    c.rules_out("city", m.name) or c.rules_out("region", m.admin1 or "") for c in constraints
                )
            ):
                continue
            if from_hint:  # the analyst's own words: script and language clues do not weigh against them
                s = cand["score_without_clues"]
            # Among places sure enough to commit, the one the rest of the sign's writing supports (by
            # orders of magnitude of its likelihood ratio) wins: a true "MADRID / ESTACIÓN DE ATOCHA"
            # over a "Perth" slipped onto it. GeoCLIP's candidates only break the last ties.
            ratios = lr(q)
            agrees = round(math.log10(max(ratios.get(m.country_code, 1e-3), 1e-6))) if ratios else 0
            rank = (
                from_hint and s >= CITY_MIN_SCORE,
                s >= CITY_MIN_SCORE,
                agrees if s >= CITY_MIN_SCORE and not from_hint else 0,
                round(s, 3),
                visual_share.get(m.country_code, 0.0),
            )
            if best is None or rank > best[0]:
                best = (rank, m, e.id)
        if best is not None and best[0][3] >= CITY_MIN_SCORE:
            (_, _sure, _a, s, _v), m, gid = best
            ev = ocr_ids + [gid] + ([clue_ev.id] if clue_ev and scores.get(m.country_code, 0) > 0 else [])
            if best[0][0]:
                ev = [h.id for h in hints] + [gid]

            levels = [
                (Level.CONTINENT, CONTINENTS.get(m.continent, m.continent), min(0.95, s + 0.1), ev),
                (Level.COUNTRY, m.country_code, min(0.95, s + 0.05), ev),
            ]
            if m.admin1:
                levels.append((Level.REGION, m.admin1, s, ev))
                levels.append((Level.CITY, str(m.name), s, ev))
            radius = round(5.0 + 2.0 * math.log10(max(m.population, 10)), 1)
            return {
                "why": f"the sign text matches {m.name} ({m.admin1 or '?'}, {m.country_code}, pop "
                f"{m.population}), score {s:.2f}",
                "levels": levels,
                "answer": Answer(
                    lat=m.lat, lon=m.lon, radius_km=radius, localizability=round(min(0.9, s), 3)
                ),
            }
        return self._plan_from_posterior(ep, clue_evs, hint_texts, constraints, languages)

    @staticmethod
    def _clue_likelihood_ratio(ep, clue_evs, hint_texts, constraints) -> Callable[[str], dict[str, float]]:
        """For a gazetteer query: P(country | the text's clues) / P(country), from the clue fusion
        without place clues (an analyst's note counts for what it says, not its script or language):
        how much more likely the clues make each country than its people alone. The language clues
        are read again from the text without the query's own words (a place name's language is its
        namesakes' business, not a clue); for ``None``, language clues are left out altogether.
        Empty (all 1) without clues."""
        from geolocate.tools.clues import language_evidence

        base = [
            (e.id, c)
            for e in clue_evs
            for c in e.typed().clues
            if c.kind != "language" and (e.arguments.get("text") not in hint_texts or c.kind != "script")
        ]
        texts = [(e.id, e.arguments.get("text") or "") for e in clue_evs]
        texts = [(eid, t) for eid, t in texts if t not in hint_texts]
        prior = fusion.prior()

        @functools.cache
        def ratios(query: str | None) -> dict[str, float]:
            q = (query or "").strip()
            words = regex.compile(rf"(?i)(?<!\w){regex.escape(q)}(?!\w)") if q else None
            pairs = list(base)
            for eid, text in texts if query is not None else ():
                flagged = set(instruction_lines(text))
                trusted = "\n".join(ln for ln in text.splitlines() if ln.strip() not in flagged)
                rest = words.sub(" ", trusted) if words else trusted
                pairs += [(eid, c) for c in language_evidence(rest)]
            post = fusion.fuse(pairs)
            if not post.informative:
                return {}
            return {cc: p / prior[cc] for cc, p in post.probs.items() if prior.get(cc)}

        return ratios

    def _seen_script_clues(self, ep) -> list[tuple[str, Any]]:
        """Scripts the OCR saw but could not read (``OcrOutput.scripts_seen``) as weak ``script_seen``
        clues: the countries of that script (CLDR), scaled by the script model's confidence."""
        from geolocate.tools.clues import script_clues

        out = []
        for e in self._ok(ep, "ocr"):
            for ln in e.typed().scripts_seen:
                for c in script_clues(ln.text):
                    votes = [
                        v.model_copy(update={"share": (v.share or v.weight) * ln.score}) for v in c.countries
                    ]
                    if votes:
                        out.append(
                            (
                                e.id,
                                c.model_copy(
                                    update={
                                        "kind": "script_seen",
                                        "countries": votes,
                                        "detail": f"seen, not read ({ln.score:.2f})",
                                    }
                                ),
                            )  # fmt: skip
                        )
        return out

    @staticmethod
    def _resolved_places(ep, languages: tuple[str, ...]) -> list[dict[str, Any]]:
        """The episode's gazetteer matches through :func:`resolve_places` without the other clues (the
        fusion adds those): the candidates of :meth:`_place_clues` and :meth:`_named_place_in`."""
        gazetteer = [
            (e, e.arguments.get("query", ""), e.typed().matches) for e in HeuristicPolicy._ok(ep, "gazetteer")
        ]
        return resolve_places(gazetteer, {}, languages)

    @staticmethod
    def _place_clues(candidates: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        """Gazetteer matches too weak to commit a city, as clues for the fusion: per query, the countries
        of its namesakes (:func:`resolve_places`, without the other clues: the fusion adds those),
        each country's share the probability that the words name a place there (``place`` clues have
        a high floor, see fusion.FLOOR). Words that are likelier a common word than a place name
        (``Leie``, Norwegian for "rent", an exonym of Leiden) are a mixture: share + (1 - P(place)),
        so they move the posterior little."""
        from geolocate.tools.clues import Clue, CountryVote

        by_query: dict[str, tuple[str, dict[str, float]]] = {}
        for cand in candidates:
            eid, shares = by_query.setdefault(cand["query"], (cand["evidence"].id, {}))
            cc = cand["place"].country_code
            shares[cc] = shares.get(cc, 0.0) + cand["score_without_clues"]
        out = []
        floor = fusion.FLOOR["place"]
        for q, (eid, shares) in by_query.items():
            # The words name a place with probability ~ the sum of the shares; else they are a word and
            # say nothing: likelihood share + max(floor, 1 - that), scaled to the fusion's fixed floor.
            scale = floor / max(floor, 1.0 - min(1.0, sum(shares.values())))
            shares = {cc: round(min(1.0, w * scale), 3) for cc, w in shares.items() if w * scale >= 0.05}
            if shares:
                votes = [CountryVote(country_code=cc, weight=w, share=w) for cc, w in shares.items()]
                out.append((eid, Clue(kind="place", value=q, countries=votes, source="GeoNames gazetteer")))
        return out

    @staticmethod
    def _named_place_in(candidates: list[dict[str, Any]], country: str):
        """The most probable exact gazetteer match among ``candidates`` (:meth:`_resolved_places`, score
        0.9 or more: a name as written, not a near match) in the committed ``country``, or None: Niš read
        as "Ниш" commits Serbia by the fusion, and the answer is then Niš rather than the country's
        likeliest point."""
        cands = [
            c
            for c in candidates
            if c["place"].country_code == country and c["place"].score >= 0.9 and c["place"].method == "exact"
        ]
        if not cands:
            return None
        best = max(cands, key=lambda c: (c["score_without_clues"], int(c["place"].population or 0)))
        return best["place"] if best["score_without_clues"] >= NAMED_PLACE_MIN_SHARE else None

    def _plan_from_posterior(
        self, ep, clue_evs, hint_texts, constraints, languages=("en",)
    ) -> dict[str, Any]:
        """No place name matched: fuse the clues into a country posterior (:mod:`geolocate.agent.fusion`)
        and commit what it is sure of; answer at the point of least expected distance within it."""
        pairs = [
            (e.id, c)
            for e in clue_evs
            for c in e.typed().clues
            if e.arguments.get("text") not in hint_texts or c.kind not in ("script", "language")
        ]
        places = self._resolved_places(ep, languages)
        for e, clue in self._place_clues(places):
            pairs.append((e, clue))
        pairs += self._seen_script_clues(ep)
        visual = next(iter(self._ok(ep, "visual_candidates")), None)
        if visual is not None:  # GeoCLIP's candidates enter as a weak prior (fusion.FLOOR["visual"])
            pairs.append((visual.id, fusion.visual_clue(visual.typed().candidates)))
        points = [c for c in constraints if c.kind in ("bbox", "circle", "region")]
        post = fusion.fuse(
            pairs,
            allowed=(lambda cc: self._allowed(constraints, cc)) if constraints else None,
            within=(lambda la, lo: np.logical_and.reduce([c.allows_points(la, lo) for c in points]))
            if points
            else None,
        )
        pinned = next((c for c in constraints if c.kind == "country"), None)
        if not post.probs:
            lat, lon = get_db().prior_point
            return {
                "why": "the analyst's constraints leave no country",
                "levels": [],
                "answer": Answer(lat=lat, lon=lon, radius_km=5000.0, localizability=0.02),
            }
        cc, p = post.top()
        ev = list(dict.fromkeys(s.evidence for s in post.steps if s.evidence != "constraints"))
        if pinned is not None:
            ev += [
                e.id
                for e in ep.state.evidence
                if e.is_analyst_move and (e.output or {}).get("constraint", {}).get("country") == cc
            ]
        ev += [e.id for e in ep.state.evidence if e.tool in REGION_TOOLS and e.ok]  # sun, time zone
        if not ev:
            lat, lon, km = post.best_point()
            return {
                "why": "no usable evidence: this photo is hardly localizable without visual recognition; "
                f"answer at the prior's centre ({post.explain()})",
                "levels": [],
                "answer": Answer(lat=lat, lon=lon, radius_km=round(km, 1), localizability=0.02),
            }
        conts = post.continents()
        cont, pc = max(conts.items(), key=lambda kv: kv[1])
        levels: list = []
        try:
            if p >= COUNTRY_MIN_SCORE:
                country = get_db().countries[cc]
                lat, lon, km = post.best_point(country=cc)
                named = self._named_place_in(places, cc)
                if named is not None:  # the place clue's likelihood peaks at the place it names
                    lat, lon, km = named.lat, named.lon, min(km, NAMED_PLACE_RADIUS_KM)
                levels = [
                    (Level.CONTINENT, CONTINENTS[country.continent], min(0.9, conts[country.continent]), ev),
                    (Level.COUNTRY, cc, round(p, 3), ev),
                ]
                loc = 0.4 * p
            else:
                lat, lon, km = post.best_point()
                here = self._continent_of(lat, lon)  # the answer's own continent, if it has the mass
                if pc < 0.5 and here is not None and conts.get(here, 0.0) >= CONTINENT_MIN_SCORE:
                    cont, pc = here, conts[here]
                if pc >= 0.5 or (pc >= CONTINENT_MIN_SCORE and here == cont):
                    lat, lon, km = post.best_point(continent=cont)
                    levels = [(Level.CONTINENT, CONTINENTS[cont], round(pc, 3), ev)]
                loc = 0.2 * pc
        except (ValueError, KeyError):  # no populated place where the clues point: stay with the prior
            lat, lon, km = fusion.fuse([]).best_point()
            levels, loc = [], 0.02
        if visual is not None:  # GeoCLIP's likeliest point where the chain allows it is sharper than a town
            lat, lon = self._visual_point(visual.typed().candidates, levels, constraints, (lat, lon))
        return {
            "why": f"clue fusion, as no place name matched ({post.explain()})",
            "levels": levels,
            "answer": Answer(lat=lat, lon=lon, radius_km=round(km, 1), localizability=round(loc, 3)),
        }

    def _visual_point(
        self, candidates, levels, constraints, default: tuple[float, float]
    ) -> tuple[float, float]:
        """The most probable GeoCLIP candidate inside the committed continent/country and the
        constraints, else ``default``."""
        from geolocate.tools.geocode import reverse_batch

        want = {lv: val for lv, val, _c, _e in levels}
        places = reverse_batch([(c.lat, c.lon) for c in candidates]) if candidates else []
        for c, place in zip(candidates, places, strict=True):
            cc = place.country_code
            country = get_db().countries.get(cc)
            if Level.COUNTRY in want and cc != want[Level.COUNTRY]:
                continue
            if Level.CONTINENT in want and (
                country is None or CONTINENTS[country.continent] != want[Level.CONTINENT]
            ):
                continue
            if self._allowed(constraints, cc, c.lat, c.lon):
                return c.lat, c.lon
        return default

    @staticmethod
    def _continent_of(lat: float, lon: float) -> str | None:
        """GeoNames continent code of the country (lat, lon) reverse-geocodes to."""
        from geolocate.tools.geocode import reverse_batch

        c = get_db().countries.get(reverse_batch([(lat, lon)])[0].country_code)
        return c.continent if c else None

    @staticmethod
    def _score_match(
        query: str,
        m,
        country_scores: dict[str, float],
        languages: tuple[str, ...] = ("en",),
        support: int = 0,
    ) -> float:
        """Score of a gazetteer match (:class:`~geolocate.tools.gazetteer.PlaceMatch`) for ``query``.

        ``languages``: the sign's languages, for the common-word discount; ``support``: how many other
        words on the sign name a place within :data:`SUPPORT_KM` of this one (each raises the score
        by 10%, at most two: "BARCELONA SANTS" is Barcelona, Spain).
        """
        pop = int(m.population or 0)
        pop_prior = 0.55 + 0.45 * min(1.0, math.log10(pop + 1) / 6.5)
        # Clues that point elsewhere lower a match, but not below 0.65: a sign in one script may name a
        # city abroad (ВАРШАВА on a Russian road sign is Warsaw).
        # Agreement is relative to the strongest clue country: Cyrillic supports Ukraine too, though
        # fewer read it there than in Russia.
        top = max(country_scores.values(), default=0.0)
        clue = 1.0 if not top else 0.65 + 0.35 * country_scores.get(m.country_code, 0.0) / top
        words = len(query.split())
        # Short names are often OCR fragments; a short *alternate* name doubly so, unless it names a
        # big city outright (Wien, Roma: the local name of Vienna and Rome).
        short = min(len(normalize_name(query)), len(normalize_name(m.matched))) < 6 and not _CJK.search(query)
        length = 1.0 if not short else (0.85 if m.score >= 1.0 or pop >= BIG_CITY_POP else 0.6)
        multi = 1.1 if words >= 2 and normalize_name(query) == normalize_name(m.matched) else 1.0
        s = min(1.0, m.score * pop_prior * clue * length * multi)
        s = min(1.0, s * (1.0 + 0.1 * min(support, 2)))
        if s < CITY_MIN_SCORE:  # cannot pass anyway: skip the word-frequency look-up
            return s
        return s * commonness_factor(m.matched, pop, languages, m.country_code)

    @staticmethod
    def _fit_to_constraints(ep, plan: dict[str, Any]) -> dict[str, Any]:
        """Move the plan's answer into the analyst's bbox or circle when it lies outside (to the
        constraint's centre, with its size as the radius); a rejected answer falls back to the
        deepest committed level with that level's radius."""
        constraints = ep.state.constraints()
        a = plan["answer"]
        if not constraints:
            return plan
        if any(c.rules_out("answer", f"{a.lat:.5f}, {a.lon:.5f}") for c in constraints):
            chain = ep.state.chain
            for lv in reversed(LEVELS[:-2]):
                c = chain.get(lv)
                if c is not None and c.lat is not None and (c.lat, c.lon) != (a.lat, a.lon):
                    radius = {Level.CITY: 25.0, Level.REGION: 200.0, Level.COUNTRY: 750.0}.get(lv, 2500.0)
                    a = Answer(lat=c.lat, lon=c.lon, radius_km=radius, localizability=min(0.4, c.confidence))
                    break
        for c in constraints:
            if c.kind in ("bbox", "circle") and not c.allows_point(a.lat, a.lon):
                if c.kind == "circle":
                    lat, lon, r = c.lat, c.lon, c.radius_km
                else:
                    s, w, n, e = c.bbox
                    lat, lon = (s + n) / 2, (w + e) / 2
                    r = max(1.0, haversine_km(s, w, n, e) / 2)
                a = Answer(lat=lat, lon=lon, radius_km=round(r, 1), localizability=min(a.localizability, 0.5))
        return {**plan, "answer": a}

    def _execute(self, ep, plan: dict[str, Any]) -> str:
        """Commit the plan's remaining levels in one turn, then answer; fall back when rejected.

        When new evidence (an analyst's note or constraint) changes the plan, a committed level that
        disagrees with it is backtracked first, unless the analyst set that level."""
        plan = self._fit_to_constraints(ep, plan)
        chain = ep.state.chain
        for lv, val, _conf, _ev in plan["levels"]:
            c = chain.get(lv)
            if c is not None and c.raw != val and not any(e.startswith("a") for e in c.evidence):
                return render_turn(
                    f"The evidence now points to {val} for the {lv.value}, not {c.value}: undo it.",
                    [Backtrack(level=lv.value, reason=f"the evidence now points to {val}")],
                )
        if self._last_turn_rejected(ep):
            last = ep.state.turns[-1]
            if any(a.get("kind") == "answer" for a in last.actions):
                deepest = next(
                    (lv for lv in reversed(LEVELS) if lv in chain and chain[lv].lat is not None), None
                )
                if deepest is None:
                    if chain:
                        return render_turn(
                            "The answer was rejected; clear the chain.",
                            [Backtrack(level=Level.CONTINENT.value, reason="answer rejected")],
                        )
                    lat, lon = get_db().prior_point
                    return render_turn(
                        "Answer at the prior.",
                        [Answer(lat=lat, lon=lon, radius_km=5000.0, localizability=0.02)],
                    )
                c = chain[deepest]
                return render_turn(
                    f"The answer was rejected; answer at the committed {deepest.value} instead.",
                    [Answer(lat=c.lat, lon=c.lon, radius_km=25.0, localizability=min(0.5, c.confidence))],
                )
            # A commit was rejected: keep what was committed and answer at its deepest level.
            plan = {**plan, "levels": [lv for lv in plan["levels"] if lv[0] in chain]}
            deepest = next((lv for lv in reversed(LEVELS) if lv in chain and chain[lv].lat is not None), None)
            if deepest is not None and deepest is not Level.CITY:
                c = chain[deepest]
                plan["answer"] = Answer(
                    lat=c.lat,
                    lon=c.lon,
                    radius_km=200.0 if deepest is Level.REGION else 750.0,
                    localizability=min(0.4, c.confidence),
                )
        todo: list[Action] = [
            Commit(level=lv.value, value=val, confidence=round(conf, 3), evidence=ev)
            for lv, val, conf, ev in plan["levels"]
            if lv not in chain
        ]
        if todo:
            return render_turn(f"Commit the chain from {plan['why']}.", todo)
        return render_turn(f"Answer: {plan['why']}.", [plan["answer"]])
