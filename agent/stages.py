"""Chain-of-Region levels and their legal transitions (pure; no I/O).

The chain is continent -> country -> region (admin-1) -> city -> coordinates (Geo-R, AAAI 2026).
A level can be committed only when every level above it is committed; backtracking to a level
removes it and every level below it.

>>> next_level([Level.CONTINENT, Level.COUNTRY])
<Level.REGION: 'region'>
>>> commit_error([Level.CONTINENT], Level.CITY)
"cannot commit 'city' yet: commit 'country' first
(levels go continent -> country -> region -> city -> coordinates)"
>>> backtrack_removes([Level.CONTINENT, Level.COUNTRY, Level.REGION], Level.COUNTRY)
[<Level.COUNTRY: 'country'>, <Level.REGION: 'region'>]
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Level(StrEnum):
    """A Chain-of-Region level, in order."""

    CONTINENT = "continent"
    COUNTRY = "country"
    REGION = "region"
    CITY = "city"
    COORDINATES = "coordinates"


LEVELS: tuple[Level, ...] = tuple(Level)
ORDER = " -> ".join(lv.value for lv in LEVELS)


def parse_level(value: str) -> Level | None:
    """The Level named ``value`` (case-insensitive; 'admin1' and 'state' mean region), else None."""
    v = (value or "").strip().lower()
    aliases = {
        "admin1": "region",
        "admin-1": "region",
        "state": "region",
        "province": "region",
        "coords": "coordinates",
        "locality": "city",
    }
    v = aliases.get(v, v)
    try:
        return Level(v)
    except ValueError:
        return None


def next_level(committed: Iterable[Level]) -> Level | None:
    """The first level not yet committed (None when the chain is complete)."""
    done = set(committed)
    return next((lv for lv in LEVELS if lv not in done), None)


def commit_error(committed: Iterable[Level], level: Level) -> str | None:
    """Why committing ``level`` now is illegal, or None if it is legal."""
    committed = list(committed)
    if level in committed:
        return f"'{level.value}' is already committed: backtrack to '{level.value}' first to change it"
    nxt = next_level(committed)
    if level != nxt:
        return f"cannot commit '{level.value}' yet: commit '{nxt.value}' first (levels go {ORDER})"
    return None


def backtrack_error(committed: Iterable[Level], level: Level) -> str | None:
    """Why backtracking to ``level`` is illegal, or None."""
    if level not in set(committed):
        return f"cannot backtrack to '{level.value}': it is not committed"
    return None


def backtrack_removes(committed: Iterable[Level], level: Level) -> list[Level]:
    """Levels removed by backtracking to ``level``: it and every committed level below it."""
    i = LEVELS.index(level)
    return [lv for lv in LEVELS[i:] if lv in set(committed)]
