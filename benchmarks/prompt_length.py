"""Length of the system prompt a planner sees, prompt v1 (JSON Schema per tool) against v2 (one
compact line per tool), for the default tool set and the training tool set (run by hand).

    python benchmarks/prompt_length.py

Prints characters and tokens. The Qwen2.5-VL tokenizer cannot be downloaded here, so tokens are
counted with the tests' locally trained byte-level BPE (``tests/tiny_vlm.py``, a small vocabulary:
it over-counts) and estimated as characters / 3.5 (Qwen's BPE on English and JSON).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from transformers import AutoTokenizer

    from geolocate.agent.state import Budget
    from geolocate.prompts.render import system_prompt
    from geolocate.tools.registry import ToolSet
    from tests import tiny_vlm

    tok = AutoTokenizer.from_pretrained(tiny_vlm.build(Path(tempfile.mkdtemp()) / "tiny", "qwen2_5_vl"))
    print("| tools | prompt | characters | tokens (tiny BPE) | tokens (est. chars/3.5) |")
    print("|---|---|---|---|---|")
    for spec in ("all", "ocr,clues,gazetteer,geocode"):
        schemas = ToolSet.parse_spec(spec).schemas()
        for v in (1, 2):
            text = system_prompt(schemas, Budget(), v)
            n = len(tok(text, add_special_tokens=False).input_ids)
            print(f"| {spec} ({len(schemas)}) | v{v} | {len(text):,} | {n:,} | {len(text) / 3.5:,.0f} |")


if __name__ == "__main__":
    main()
