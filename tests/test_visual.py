"""visual_candidates: GeoCLIP's real location encoder, image head and GPS gallery (from the ``geoclip``
wheel) with a tiny randomly initialised CLIP image encoder built here from a config (the ViT-L/14
weights are not available offline). Plumbing, shapes, probabilities, and the planner using the
candidates only as a prior."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from geolocate.agent.graph import run_episode
from geolocate.agent.policies import make_policy
from geolocate.tools.base import ToolContext
from geolocate.tools.geocode import reverse_batch
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet, builtin, create
from geolocate.tools.visual import GeoClip, VisualCandidatesUnavailable, VisualInput

GALLERY = 3000  # the first 3,000 of the wheel's 100,000 GPS points keep the test fast


@pytest.fixture(scope="module")
def geoclip_installed():
    """geoclip's own requirements pin a CUDA torch; it runs on ours, so it is installed without them."""
    if importlib.util.find_spec("geoclip") is None:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "geoclip==1.3.0"],
            capture_output=True,
            timeout=600,
        )
        importlib.invalidate_caches()
        if r.returncode != 0 or importlib.util.find_spec("geoclip") is None:
            pytest.skip("geoclip is not installed and could not be (pip install --no-deps geoclip==1.3.0)")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, geoclip_installed) -> str:
    """A 2-layer CLIP with GeoCLIP's 768-d projection, random weights, saved like a hub checkpoint."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        projection_dim=768,
        text_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
            projection_dim=768, vocab_size=100, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
            patch_size=32, image_size=224, projection_dim=768,
        ),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(cfg).save_pretrained(out)
    CLIPImageProcessor().save_pretrained(out)
    return str(out)


def test_candidates_are_gallery_points_with_a_softmax(tiny_clip, plain_photo):
    g = GeoClip(tiny_clip, gallery_size=GALLERY)
    assert tuple(g.gallery.shape) == (GALLERY, 2) and tuple(g.gallery_features.shape) == (GALLERY, 512)
    assert torch.allclose(g.gallery_features.norm(dim=1), torch.ones(GALLERY), atol=1e-5)
    image = load_image(plain_photo).image
    cands = g.candidates(image, top_k=GALLERY)
    probs = [p for _, _, p in cands]
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)  # the softmax over the whole gallery
    assert probs == sorted(probs, reverse=True)
    top = g.candidates(image, top_k=5)
    assert top == cands[:5]
    gallery = {(round(float(a), 4), round(float(b), 4)) for a, b in g.gallery.tolist()}
    assert all((round(a, 4), round(b, 4)) in gallery for a, b, _ in top)


def test_without_clip_weights_the_tool_explains_and_the_run_goes_on(plain_photo, monkeypatch):
    monkeypatch.delenv("GEOLOCATE_CLIP_MODEL", raising=False)
    assert "visual_candidates" not in builtin()  # not in "all": it needs weights
    with pytest.raises(VisualCandidatesUnavailable, match="CLIP ViT-L/14"):
        create("visual_candidates").run(VisualInput(), ToolContext(image=load_image(plain_photo)))
    state = run_episode(
        load_image(plain_photo), ToolSet.parse_spec("all,-exif,visual_candidates"), make_policy("heuristic")
    )
    ev = next(e for e in state.evidence if e.tool == "visual_candidates")
    assert not ev.ok and "--clip-model" in ev.error
    assert state.status == "answered"


def test_the_planner_uses_the_candidates_only_as_a_prior(tiny_clip, plain_photo, tmp_path):
    from tests.conftest import render_sign

    options = {"clip_model": tiny_clip, "clip_gallery_size": GALLERY}
    tools = ToolSet.parse_spec("all,-exif,visual_candidates")
    # No text: the answer is GeoCLIP's likeliest candidate, cited as evidence.
    state = run_episode(load_image(plain_photo), tools, make_policy("heuristic"), options=options)
    vis = next(e for e in state.evidence if e.tool == "visual_candidates")
    assert vis.ok
    top = vis.typed().candidates[0]
    assert (state.answer.lat, state.answer.lon) == pytest.approx((top.lat, top.lon))
    visual_cc = reverse_batch([(top.lat, top.lon)])[0].country_code
    # A Norwegian phone number outweighs the visual prior wherever the random encoder points.
    sign = render_sign(plain_photo, ["Tel +47 22 12 34 56"], tmp_path / "sign.jpg")
    state = run_episode(load_image(sign), tools, make_policy("heuristic"), options=options)
    country = next(c for lv, c in state.chain.items() if lv.value == "country")
    assert country.code == "NO" and visual_cc != "NO"  # the prior pointed elsewhere
    assert reverse_batch([(state.answer.lat, state.answer.lon)])[0].country_code == "NO"
