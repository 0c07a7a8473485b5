"""Consistency of Chain-of-Region commitments, checked against GeoNames.

Each ``resolve_*`` turns what a policy wrote into the canonical value (continent code, ISO country,
GeoNames admin-1 name, GeoNames place) or raises :class:`InconsistentCommitment` with a message that
says what would be legal. Used by the Episode; injectable for tests and other gazetteers.
"""

from __future__ import annotations

from dataclasses import dataclass

from geolocate.tools.geo import haversine_km
from geolocate.tools.geonames import CONTINENTS, GeoNamesDB, get_db, normalize_name

CITY_NEAR_KM = 50.0
"""An answer is 'near' a committed city when within this great-circle distance of it, in km."""

TRANSCONTINENTAL: dict[str, set[str]] = {
    "RU": {"EU", "AS"},
    "TR": {"AS", "EU"},
    "KZ": {"AS", "EU"},
    "GE": {"AS", "EU"},
    "AZ": {"AS", "EU"},
    "AM": {"AS", "EU"},
    "CY": {"EU", "AS"},
    "EG": {"AF", "AS"},
    "ID": {"AS", "OC"},
    "PA": {"NA", "SA"},
    "TL": {"AS", "OC"},
    "PG": {"OC", "AS"},
}
"""Countries commonly placed on two continents (UN M49 vs GeoNames); either continent is accepted."""


class InconsistentCommitment(ValueError):
    """A commitment that contradicts the levels above it or cannot be resolved."""


@dataclass(frozen=True)
class Resolved:
    """A resolved commitment: canonical value, code, and a representative (lat, lon) in degrees."""

    value: str
    code: str
    lat: float | None = None
    lon: float | None = None


class Geography:
    """GeoNames-backed resolution and consistency checks for every level."""

    def __init__(self, db: GeoNamesDB | None = None):
        self._db = db

    @property
    def db(self) -> GeoNamesDB:
        if self._db is None:
            self._db = get_db()
        return self._db

    def continent(self, value: str) -> Resolved:
        code = self.db.resolve_continent(value)
        if code is None:
            raise InconsistentCommitment(
                f"unknown continent {value!r}; use one of: {', '.join(CONTINENTS.values())}"
            )
        return Resolved(CONTINENTS[code], code)

    def continents_of(self, cc: str) -> set[str]:
        c = self.db.countries.get(cc)
        return TRANSCONTINENTAL.get(cc, {c.continent} if c else set())

    def country(self, value: str, continent: str) -> Resolved:
        cc = self.db.resolve_country(value)
        if cc is None:
            raise InconsistentCommitment(
                f"unknown country {value!r}; use an ISO 3166-1 code (e.g. 'FR') or an English name"
            )
        if continent not in self.continents_of(cc):
            names = " or ".join(CONTINENTS[c] for c in sorted(self.continents_of(cc)))
            raise InconsistentCommitment(
                f"{self.db.countries[cc].name} is in {names}, not in the committed continent "
                f"{CONTINENTS[continent]}: "
                "backtrack to 'continent' or choose a country there"
            )
        c = self.db.countries[cc]
        return Resolved(c.name, cc, c.lat, c.lon)

    def region(self, value: str, cc: str) -> Resolved:
        name = self.db.resolve_admin1(cc, value)
        if name is None:
            from rapidfuzz import fuzz, process

            names = [
                r[0]
                for r in self.db.con.execute(
                    "SELECT name FROM admin1 WHERE cc=? ORDER BY population DESC", (cc,)
                )
            ]
            best = process.extractOne(
                normalize_name(value),
                {n: normalize_name(n) for n in names},
                scorer=fuzz.ratio,
                score_cutoff=85,
            )
            if best is None:
                sample = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                raise InconsistentCommitment(
                    f"no admin-1 region {value!r} in {self.db.countries[cc].name}; regions there "
                    f"include: {sample or 'none known'}"
                )
            name = best[2]
        pt = self.db.admin1_point(cc, name)
        return Resolved(name, name, *(pt or (None, None)))

    def city(self, value: str, cc: str, admin1: str | None) -> Resolved:
        from geolocate.tools.gazetteer import get_gazetteer

        gaz = get_gazetteer()
        hits = gaz.exact(value, cc, admin1, limit=1) or gaz.fuzzy(value, cc, admin1, limit=1)
        if not hits:
            where = f"{admin1}, {cc}" if admin1 else cc
            anywhere = gaz.exact(value, limit=3)
            also = (
                f"; GeoNames has it in {', '.join(f'{h.admin1}, {h.country_code}' for h in anywhere)}"
                if anywhere
                else ""
            )
            raise InconsistentCommitment(
                f"no place {value!r} in {where}{also}: backtrack or choose a place there"
            )
        h = hits[0]
        return Resolved(h.name, str(h.geonameid), h.lat, h.lon)

    def coordinates_error(self, lat: float, lon: float, chain: dict) -> str | None:
        """Why (lat, lon) contradicts the committed chain (a dict Level -> Commitment), or None.

        With a committed city: within :data:`CITY_NEAR_KM` of it. Otherwise the nearest GeoNames
        place must lie in the committed country (and region, when committed).
        """
        from geolocate.agent.stages import Level
        from geolocate.tools.geocode import reverse_batch

        city = chain.get(Level.CITY)
        if city is not None and city.lat is not None:
            d = float(haversine_km(lat, lon, city.lat, city.lon))
            if d > CITY_NEAR_KM:
                return (
                    f"({lat:.4f}, {lon:.4f}) is {d:.0f} km from the committed city {city.value}; "
                    f"stay within {CITY_NEAR_KM:.0f} km or backtrack to 'city'"
                )
            return None
        country = chain.get(Level.COUNTRY)
        if country is None:
            continent = chain.get(Level.CONTINENT)
            if continent is None:
                return None
            r = reverse_batch([(lat, lon)])[0]
            if continent.code not in self.continents_of(r.country_code):
                where = f"({lat:.4f}, {lon:.4f}) is in {r.country}"
                return f"{where}, outside the committed continent {continent.value}"
            return None
        r = reverse_batch([(lat, lon)])[0]
        if r.country_code != country.code:
            return (
                f"({lat:.4f}, {lon:.4f}) is in {r.country or 'no country'}, not in the committed country "
                f"{country.value}; move the point or backtrack"
            )
        region = chain.get(Level.REGION)
        if region is not None and r.admin1 and normalize_name(r.admin1) != normalize_name(region.value):
            return f"({lat:.4f}, {lon:.4f}) is in {r.admin1}, not in the committed region {region.value}"
        return None
