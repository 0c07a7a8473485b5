"""Word frequencies in every wordfreq language without holding them in memory.

``wordfreq`` (Robyn Speer et al., MIT licence; data CC-BY-SA 4.0) loads each language's frequency list
into a Python dict the first time a word of that language is looked up: a sign's words checked in 42
languages cost about 1.2 GB of memory per process. This module copies the lists once into a SQLite
table in geolocate's cache directory (words of Zipf >= :data:`INDEX_MIN_ZIPF`, about 4 million rows,
built in about 30 s, then read through the page cache) and answers :func:`zipf` from it with
wordfreq's own tokenization and combination rules. Words rarer than :data:`INDEX_MIN_ZIPF` read as
0.0 (absent), which nothing in geolocate distinguishes: a word matters from Zipf 3 on.

Zipf frequency: log10 of a word's occurrences per billion words (wordfreq's scale, 0 to about 8).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sqlite3
import threading
from importlib.metadata import version
from pathlib import Path

import regex

INDEX_MIN_ZIPF = 2.0
"""Words rarer than this (per billion words: 100) are left out of the index and read as 0.0."""
_LOCK = threading.Lock()


def _index_path() -> Path:
    from geolocate.tools.geonames import cache_dir

    return cache_dir() / f"wordfreq-{version('wordfreq')}-z{INDEX_MIN_ZIPF:g}.sqlite"


def _write_index(path: Path, what: str, schema: str, fill) -> None:
    """Build a SQLite index at ``path`` through a temporary file renamed into place (an interrupted
    build leaves nothing half-written): ``schema`` creates its table, ``fill(connection)`` inserts.

    Raises:
        OutputError: the folder cannot hold it (one line naming ``what``: a full disk says so);
            nothing is left behind.
    """
    from geolocate.tools.files import OutputError, describe_os_error

    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(tmp)
        con.execute("PRAGMA journal_mode = OFF")  # a temporary file: nothing to roll back to
        con.execute("PRAGMA synchronous = OFF")
        con.execute(schema)
        fill(con)
        con.commit()
        con.close()
        os.replace(tmp, path)
    except sqlite3.OperationalError as e:  # "database or disk is full", a read-only folder...
        raise OutputError(f"{path.parent}: cannot build the {what} ({e})") from None
    except OSError as e:
        raise OutputError(describe_os_error(e, path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def _open_index(path: Path, build) -> sqlite3.Connection:
    """Open the index at ``path`` read-only, building it first with ``build(path)`` under a lock shared
    by all processes (one build for parallel first runs)."""
    if not path.exists():
        from filelock import FileLock

        with _LOCK, FileLock(str(path) + ".lock", timeout=900):
            if not path.exists():
                build(path)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def build_index(path: Path) -> None:
    """Write every wordfreq language's ``best`` list (words of Zipf >= :data:`INDEX_MIN_ZIPF`) to a
    SQLite table ``words(lang, word, freq)`` at ``path`` (a temporary file renamed into place:
    an interrupted build leaves nothing half-written).

    Raises:
        OutputError: the folder cannot hold it (one line: a full disk says so); nothing is left behind.
    """
    from wordfreq import available_languages, get_frequency_dict

    def fill(con: sqlite3.Connection) -> None:
        floor = 10.0 ** (INDEX_MIN_ZIPF - 9)
        for lang in sorted(available_languages("best")):
            d = get_frequency_dict(lang, "best")
            # in key order, so that the B-tree grows at its end (fast and compact)
            rows = sorted((lang, w, f) for w, f in d.items() if f >= floor)
            con.executemany("INSERT INTO words VALUES (?, ?, ?)", rows)
            get_frequency_dict.cache_clear()  # one language's dict in memory at a time

    _write_index(
        path,
        "word index",
        "CREATE TABLE words (lang TEXT, word TEXT, freq REAL, PRIMARY KEY (lang, word)) WITHOUT ROWID",
        fill,
    )


@functools.cache
def _connection() -> sqlite3.Connection:
    return _open_index(_index_path(), build_index)


def ensure_index() -> None:
    """Open the word index, building it on the very first run (about 30 s, under a lock shared by all
    processes): called before an episode starts, so the build never counts against a tool's time-out."""
    _connection()


@functools.cache
def _quiet_jieba() -> None:
    """jieba (wordfreq's Chinese tokenizer) prints its dictionary loading to stderr; keep it quiet."""
    import logging

    with contextlib.suppress(ImportError):
        import jieba

        jieba.setLogLevel(logging.WARNING)


_CJK_TOKENIZED = frozenset({"zh", "ja", "ko"})
CJK_CHAR = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
"""One Han, kana or Hangul character (the scripts wordfreq segments with jieba or MeCab)."""


@functools.lru_cache(maxsize=65536)
def zipf(word: str, lang: str) -> float:
    """Zipf frequency of ``word`` in ``lang`` (a wordfreq language code), as ``wordfreq.zipf_frequency``
    gives it (its tokenizer; several tokens combined as 1/f = sum 1/f_i; inferred word breaks in Chinese
    and, unlike wordfreq, in a Japanese run of two tokens discounted), but read from the on-disk index.
    0.0 for a word rarer than :data:`INDEX_MIN_ZIPF`, an unknown language, or a CJK tokenizer that is not
    installed (``wordfreq[cjk]``)."""
    from wordfreq import INFERRED_SPACE_FACTOR, available_languages, get_language_info, lossy_tokenize
    from wordfreq.numbers import digit_freq, smash_numbers

    if lang not in available_languages("best"):
        return 0.0
    try:
        if lang in _CJK_TOKENIZED and not CJK_CHAR.search(word):
            # No CJK character: the language's segmenter (jieba, MeCab: ~60 MB) would cut it as the
            # simple tokenizer does, so it is not loaded for it.
            from wordfreq.tokens import simple_tokenize

            tokens = simple_tokenize(word)
        else:
            if lang == "zh":
                _quiet_jieba()
            tokens = lossy_tokenize(word, lang)
    except ImportError:
        return 0.0
    if not tokens:
        return 0.0
    con = _connection()
    inverse = 0.0
    for token in tokens:
        smashed = smash_numbers(token)
        with _LOCK:
            row = con.execute(
                "SELECT freq FROM words WHERE word = ? AND lang = ?", (smashed, lang)
            ).fetchone()
        if row is None:
            return 0.0
        f = row[0] * (digit_freq(token) if smashed != token else 1.0)
        inverse += 1.0 / f
    freq = 1.0 / inverse
    with contextlib.suppress(KeyError):
        if get_language_info(lang)["tokenizer"] == "jieba" or (
            lang == "ja" and len(tokens) == 2 and CJK_CHAR.search(word)
        ):
            # Word breaks inferred in text written without spaces: each one makes the run less likely
            # one word (wordfreq does this for Chinese; Japanese is written without spaces as well, so
            # 洗手間, MeCab's 洗 + 手間, is a Chinese word and no Japanese one). Only for a run MeCab cuts
            # in two (a sign's word or compound): a longer one is a phrase or an address (東京都千代田区)
            # either way, and keeps its frequency.
            freq *= INFERRED_SPACE_FACTOR ** -(len(tokens) - 1)
    return round(math.log10(freq) + 9, 2) if freq > 0 else 0.0


def is_word(text: str, lang: str, min_zipf: float = 3.0) -> bool:
    """Whether ``text`` is one word of ``lang`` (one token for wordfreq's tokenizer, ``jieba`` or MeCab
    for Chinese and Japanese) of Zipf frequency ``min_zipf`` or more: 出口 is a Chinese word, 度等 two
    frequent characters side by side."""
    from wordfreq import lossy_tokenize

    try:
        if lang == "zh":
            _quiet_jieba()
        return len(lossy_tokenize(text, lang)) == 1 and zipf(text, lang) >= min_zipf
    except ImportError:
        return False


# -- Hunspell dictionaries: the languages wordfreq has no frequency list for ---------------------------
HUNSPELL_DIRS = ("/usr/share/hunspell", "/usr/share/myspell/dicts")
"""Where Debian's ``hunspell-*`` / ``myspell-*`` packages put their dictionaries (``<lang>_<REGION>.dic``
with its ``.aff``); ``geolocate doctor --install`` installs those of :data:`geolocate.tools.doctor.
HUNSPELL_PACKAGES`."""


@functools.cache
def hunspell_dictionaries() -> dict[str, Path]:
    """Installed Hunspell dictionaries: ISO 639 language code -> one ``.dic`` file (symlinked duplicates
    such as ``sw_KE`` -> ``sw_TZ`` once; Serbian in Latin letters as ``sr`` too). Empty where none is
    installed."""
    out: dict[str, Path] = {}
    seen: set[Path] = set()
    for d in HUNSPELL_DIRS:
        for dic in sorted(Path(d).glob("*.dic")) if Path(d).is_dir() else ():
            real = dic.resolve()
            lang = regex.split(r"[_\-]", dic.stem)[0].lower()
            if (
                real in seen
                or not regex.fullmatch(r"[a-z]{2,3}", lang)
                or not dic.with_suffix(".aff").exists()
            ):
                continue
            seen.add(real)
            out[lang if lang not in out else f"{lang}:{dic.stem}"] = dic
    return out


def _hunspell_path(dics: dict[str, Path]) -> Path:
    import hashlib

    from geolocate.tools.geonames import cache_dir

    key = "|".join(f"{k}={p}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for k, p in sorted(dics.items()))
    return cache_dir() / f"hunspell-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sqlite"


def _dic_encoding(aff: Path) -> str:
    """The ``SET`` encoding an ``.aff`` file declares (UTF-8 when it declares none)."""
    import codecs

    with open(aff, "rb") as f:
        for raw in f:
            line = raw.strip().lstrip(b"\xef\xbb\xbf")
            if line.startswith(b"SET "):
                name = line[4:].strip().decode("ascii", "replace")
                try:
                    return codecs.lookup(name).name
                except LookupError:
                    return "utf-8"
    return "utf-8"


def build_hunspell_index(path: Path, dics: dict[str, Path]) -> None:
    """Write the stems of every dictionary in ``dics`` (the words before ``/flags``, lower-cased; affixes
    are not expanded, so a sign's dictionary form is found and most inflections are not) to a SQLite
    table ``stems(word, lang)`` at ``path``, through a temporary file renamed into place.

    Raises:
        OutputError: the folder cannot hold it; nothing is left behind.
    """

    def fill(con: sqlite3.Connection) -> None:
        for key, dic in sorted(dics.items()):
            lang = key.split(":")[0]
            enc = _dic_encoding(dic.with_suffix(".aff"))
            words = set()
            with open(dic, encoding=enc, errors="replace") as f:
                next(f, None)  # the first line is the entry count
                for line in f:
                    stem = line.split("/", 1)[0].split("\t", 1)[0].strip().lstrip("\ufeff").lower()
                    if len(stem) >= 2 and not any(ch.isdigit() or ch.isspace() for ch in stem):
                        words.add(stem)
            con.executemany("INSERT OR IGNORE INTO stems VALUES (?, ?)", sorted((w, lang) for w in words))

    _write_index(
        path,
        "Hunspell word index",
        "CREATE TABLE stems (word TEXT, lang TEXT, PRIMARY KEY (word, lang)) WITHOUT ROWID",
        fill,
    )


@functools.cache
def _hunspell_connection() -> sqlite3.Connection | None:
    """The stem index, or None where no dictionary is installed or the index cannot be built (a
    dictionary that cannot be read, a full disk: logged once; sign words then go without dictionaries)."""
    from geolocate.tools.files import OutputError

    dics = hunspell_dictionaries()
    if not dics:
        return None
    try:
        return _open_index(_hunspell_path(dics), lambda p: build_hunspell_index(p, dics))
    except (OutputError, OSError, sqlite3.Error) as e:
        import logging

        logging.getLogger(__name__).warning("Hunspell dictionaries not used: %s", e)
        return None


def ensure_hunspell_index() -> None:
    """Open the Hunspell stem index, building it from the installed dictionaries on first use (a few
    seconds; rebuilt when a dictionary is added or updated)."""
    _hunspell_connection()


@functools.lru_cache(maxsize=4096)
def dictionary_languages(word: str) -> tuple[str, ...]:
    """The ISO 639 codes of the installed Hunspell dictionaries (Debian ``hunspell-*``/``myspell-*``;
    each package's licence is in ``/usr/share/doc/<package>/copyright``) that list ``word`` as a stem,
    lower-cased; () for none or where no dictionary is installed. A word's dictionary form only:
    Estonian ``apteek`` is found, its plural ``apteegid`` is not."""
    con = _hunspell_connection()
    if con is None or not word:
        return ()
    with _LOCK:
        rows = con.execute("SELECT lang FROM stems WHERE word = ?", (word.lower(),)).fetchall()
    return tuple(sorted({r[0] for r in rows}))
