"""City signs in other scripts, painted on a real photo with Debian's Noto fonts: the multi-script
OCR path (RapidOCR's boxes re-read by Tesseract's script models) reads them and the planner reaches
the city: 20 signs in 12 scripts (Cyrillic in six countries and Warsaw, Greek, Hebrew, Arabic and Persian,
Thai, Devanagari, Armenian, Hangul, Georgian, Khmer, kana, simplified and traditional Han).
Photo: OSV-5M sample 1105240373293389 (Mapillary, CC-BY-SA 4.0).

Needs Debian's ``tesseract-ocr-script-*`` packs, ``fonts-noto-core`` and ``fonts-noto-cjk`` (installed
here when the test runs as root on Debian, as CI does; skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from geolocate.agent.graph import run_episode
from geolocate.agent.policies import make_policy
from geolocate.tools.geo import haversine_km
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet

NOTO = Path("/usr/share/fonts/truetype/noto")
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
HAN = NOTO_CJK if NOTO_CJK.exists() else Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
"""Han, kana and Hangul signs: Debian's Noto CJK (fonts-noto-cjk), else WenQuanYi Zen Hei."""
PACKS = ["cyrl", "grek", "hebr", "thai", "deva", "armn", "arab", "hang", "geor", "ethi", "khmr"]

SIGNS = [  # text, country, (lat, lon) of the city, font
    ("МОСКВА", "RU", 55.75, 37.62, "NotoSans-Regular.ttf"),
    ("КИЇВ", "UA", 50.45, 30.52, "NotoSans-Regular.ttf"),
    ("МИНСК", "BY", 53.90, 27.56, "NotoSans-Regular.ttf"),
    ("БЕОГРАД", "RS", 44.80, 20.47, "NotoSans-Regular.ttf"),
    ("ВАРШАВА", "PL", 52.23, 21.01, "NotoSans-Regular.ttf"),
    ("ΑΘΗΝΑ", "GR", 37.98, 23.73, "NotoSans-Regular.ttf"),
    ("תל אביב", "IL", 32.08, 34.78, "NotoSansHebrew-Regular.ttf"),
    ("กรุงเทพ", "TH", 13.75, 100.50, "NotoSansThai-Regular.ttf"),
    ("दिल्ली", "IN", 28.65, 77.23, "NotoSansDevanagari-Regular.ttf"),
    ("Երևան", "AM", 40.18, 44.51, "NotoSansArmenian-Regular.ttf"),
    ("СОФИЯ", "BG", 42.70, 23.32, "NotoSans-Regular.ttf"),
    ("АЛМАТЫ", "KZ", 43.25, 76.92, "NotoSans-Regular.ttf"),
    ("القاهرة", "EG", 30.04, 31.24, "NotoSansArabic-Regular.ttf"),  # Arabic
    ("تهران", "IR", 35.69, 51.39, "NotoSansArabic-Regular.ttf"),  # Persian
    ("서울", "KR", 37.57, 126.98, str(HAN)),
    ("თბილისი", "GE", 41.72, 44.78, "NotoSansGeorgian-Regular.ttf"),
    ("ភ្នំពេញ", "KH", 11.56, 104.92, "NotoSansKhmer-Regular.ttf"),
    ("とうきょう", "JP", 35.68, 139.69, str(HAN)),
    ("北京", "CN", 39.90, 116.40, str(HAN)),  # simplified Han
    ("臺北", "TW", 25.04, 121.53, str(HAN)),  # traditional Han
]
RAPIDOCR_OWN = {"JP", "CN", "TW"}  # kana and Han are read by RapidOCR itself


@pytest.fixture(scope="module")
def script_packs():
    from geolocate.tools.ocr import installed_scripts, tesseract_languages

    if (len(installed_scripts()) < 6 or not NOTO.is_dir()) and os.geteuid() == 0 and shutil.which("apt-get"):
        pkgs = [f"tesseract-ocr-script-{p}" for p in PACKS] + [
            "tesseract-ocr",
            "fonts-noto-core",
            "fonts-noto-cjk",
            "fonts-wqy-zenhei",
        ]
        subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], capture_output=True, timeout=900)
        tesseract_languages.cache_clear()
        import geolocate.tools.ocr as ocr

        ocr.get_backend.cache_clear()
    if len(installed_scripts()) < 6 or not NOTO.is_dir():
        pytest.skip(
            "Debian's tesseract-ocr-script-* packs and fonts-noto-core are missing (apt-get install, as root)"
        )
    return installed_scripts()


@pytest.mark.parametrize("text, country, lat, lon, font", SIGNS, ids=[s[1] + ":" + s[0] for s in SIGNS])
def test_a_sign_in_another_script_reaches_its_city(
    tmp_path, plain_photo, script_packs, text, country, lat, lon, font
):
    im = Image.open(plain_photo).convert("RGB")
    draw = ImageDraw.Draw(im)
    f = ImageFont.truetype(font if font.startswith("/") else str(NOTO / font), 56)
    x0, y0, x1, y1 = draw.textbbox((40, 40), text, font=f)
    draw.rectangle((x0 - 16, y0 - 12, x1 + 16, y1 + 12), fill="white", outline="black", width=3)
    draw.text((40, 40), text, fill="black", font=f)
    im.save(tmp_path / "sign.jpg", quality=95)
    state = run_episode(
        load_image(tmp_path / "sign.jpg"), ToolSet.parse_spec("all,-exif"), make_policy("heuristic")
    )
    assert haversine_km(state.answer.lat, state.answer.lon, lat, lon) < 300
    assert next(c.code for lv, c in state.chain.items() if lv.value == "country") == country
    ocr = next(e.typed() for e in state.evidence if e.tool == "ocr")
    reread = [ln for ln in ocr.lines if ln.engine == "tesseract"]
    if country not in RAPIDOCR_OWN:
        assert (
            reread and reread[0].script and reread[0].model.startswith("script/") and reread[0].alternatives
        )
        assert ocr.backend == "rapidocr+tesseract"


def test_a_script_seen_but_not_read_is_a_weak_clue(tmp_path, plain_photo, script_packs, monkeypatch):
    """A box whose Georgian reading is too unsure to keep (confidence 0.5, below the 0.6 needed) is
    still listed as Georgian script seen, with its confidence, and raises Georgia in the fusion."""
    import geolocate.tools.ocr as ocr
    from geolocate.agent import fusion

    if "Georgian" not in script_packs:
        pytest.skip("no Georgian script model")
    monkeypatch.setattr(
        ocr.MultiScriptBackend,
        "_tesseract",
        lambda self, crop, script, other_height=False: ("ქართ", 0.5) if script == "Georgian" else ("", 0.0),
    )
    ocr.get_backend.cache_clear()
    im = Image.open(plain_photo).convert("RGB")
    draw = ImageDraw.Draw(im)
    f = ImageFont.truetype(str(NOTO / "NotoSansGeorgian-Regular.ttf"), 56)
    x0, y0, x1, y1 = draw.textbbox((40, 40), "საქართველო", font=f)
    draw.rectangle((x0 - 16, y0 - 12, x1 + 16, y1 + 12), fill="white", outline="black", width=3)
    draw.text((40, 40), "საქართველო", fill="black", font=f)
    im.save(tmp_path / "sign.jpg", quality=95)
    state = run_episode(
        load_image(tmp_path / "sign.jpg"), ToolSet.parse_spec("all,-exif"), make_policy("heuristic")
    )
    out = next(e.typed() for e in state.evidence if e.tool == "ocr")
    ocr.get_backend.cache_clear()
    assert not [ln for ln in out.lines if ln.script == "Georgian"]
    (seen,) = out.scripts_seen
    assert seen.script == "Georgian" and seen.score == 0.5 and not seen.read
    assert "script seen, text not read: Georgian (0.50)" in out.summary()
    why = next(t.thought for t in state.turns if "clue fusion" in t.thought)
    assert "script_seen Geor" in why
    prior_ge = fusion.prior()["GE"]
    post = fusion.fuse([("e2", c) for _, c in make_policy("heuristic")._seen_script_clues(_Ep(state))])
    assert post.probs["GE"] > 5 * prior_ge  # weak: (floor 0.05 + 0.5) / 0.05 = 11x against the rest


class _Ep:
    """The part of an Episode the planner's evidence readers use."""

    def __init__(self, state):
        self.state = state
