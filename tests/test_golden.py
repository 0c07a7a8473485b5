"""The trajectories of the three example photos are identical to the stored golden ones, timings apart.

The golden files (tests/data/golden/) pin the heuristic planner's behaviour: a refactor that changes a
tool output, a decision or an evidence id shows up here. They were made by the code before the
geolocate.* namespace change and regenerated once, on purpose, for clue fusion (issue 19): every OCR
line now names its script, engine and model, CLDR votes carry their share, a one-word sign gets a
language clue, and an answer without a place name is the posterior's point of least expected
distance (its radius that distance) instead of a capital or a fixed 5,000 km; and again when the sun and
timezone tools joined the default tool list (issue 16; the trajectories differ only in that list);
and for text reading (issue 24): language clues now weigh word frequencies against py3langid (tempered
on a word or two), so "Leie co" reads Norwegian 0.78 (no longer 1.0) and that photo answers in southern
Norway (about 290 km from the truth, as before) without committing the country, and the Chinese sign's
radius moves by 12 km; script clues of a minority script on a sign carry how many letters they rest
on (``letters``; null on these two photos); and for text reading round 2 (issue 24): a word of Zipf 2.5
or more now gives its language (shop words are rarer in running text than on streets), so the Chinese
sign's "中华南路" (Zipf 2.9) reads zh 0.97 from its words instead of py3langid's zh/wuu/yue, the
country's confidence moves from 0.992 to 0.993 and the radius from 873.1 to 873.0 km; a language clue's
floor now scales with the language's speakers (few Norwegian words are seen abroad), so "Leie co" commits
Norway (0.53) and the answer moves from 291 to 267 km from the truth (radius 2507 -> 1329 km); and
when the answer became the point of greatest expected GeoScore (OSV-5M's metric) instead of least
expected distance (issue 24: between far-apart modes the median answers a country neither holds): the
Chinese sign moves from 1191 to 1147 km from the truth (Hefei; radius 873 -> 880 km), the Norwegian one
from 267 to 261 km; and when Latin alone on a photo became a weak clue (``script_only``, issue 24: Latin
text with no other script is seldom all a photo shows where another script is official): the Norwegian
sign's "Leie co" answers at the same place with a radius of 1107 km instead of 1330 km; and when
py3langid's Norwegian (no, nb, nn), like its Serbian, Croatian and Bosnian, counted as the best of its
codes instead of the last ranked (issue 24, round 4: Serbian "Апотека" had read as Russian), "Leie co"
commits Norway with 0.60 instead of 0.53 and answers 271 km from the truth instead of 261 (radius 1092
km); and when RapidOCR's boxes were cut from a region around each instead of a copy of the whole photo
(issue 24, memory: the crop's perspective matrix differs in its last bits, and OpenCV's warp samples
at 1/32 pixel), one OCR line of the Chinese sign scores 0.8566 instead of 0.8565.
Photos: OSV-5M (Mapillary, CC-BY-SA 4.0), see examples/photos/ATTRIBUTION.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geolocate.agent.cli import main
from tests.conftest import REPO

GOLDEN = Path(__file__).parent / "data" / "golden"
TIMINGS = {"elapsed_s", "policy_s", "env_s"}
LEDGER = "ledger"
"""The evidence hash chain (issue 28): its hashes cover the timings, so it differs on every run; it is
left out here and checked by tests/test_evidence.py (every hash recomputed from the trajectory)."""


def normalise(x):
    """The trajectory without timings, and with the photo's path reduced to its file name."""
    if isinstance(x, dict):
        out = {k: normalise(v) for k, v in x.items() if k not in TIMINGS and k != LEDGER}
        if "path" in out and "sha256" in out:
            out["path"] = Path(out["path"]).name
        return out
    if isinstance(x, list):
        return [normalise(v) for v in x]
    return x


@pytest.mark.parametrize("photo_id", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_trajectory_equals_the_golden_one(tmp_path, photo_id):
    out = tmp_path / "t.json"
    assert (
        main(["locate", str(REPO / "examples" / "photos" / f"{photo_id}.jpg"), "--quiet", "--json", str(out)])
        == 0
    )
    got, want = (
        normalise(json.loads(out.read_text())),
        normalise(json.loads((GOLDEN / f"{photo_id}.json").read_text())),
    )
    assert got == want
