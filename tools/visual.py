"""The ``visual_candidates`` tool: GPS candidates from the image alone, by GeoCLIP (Vivanco Cepeda,
Nayak and Shah, "GeoCLIP: Clip-Inspired Alignment between Locations and Images for Effective
Worldwide Geo-localization", NeurIPS 2023; code and weights MIT, ``geoclip`` package).

GeoCLIP embeds the photo with CLIP ViT-L/14 plus a trained MLP head and a GPS gallery of 100,000
points with its location encoder (random Fourier features of the Equal Earth projection at three
scales); the softmax of their cosine similarities ranks the gallery. The paper reports Im2GPS3k
acc@1km 14.1%, acc@25km 34.5%, acc@200km 50.7%, acc@750km 69.7%, acc@2500km 83.8%; **not measured
here** (the CLIP weights are not available in this build environment).

The ``geoclip`` wheel ships the location encoder, the image head and the gallery. The CLIP image
encoder comes from the model hub or a local folder: ``--clip-model ID_OR_PATH`` (``geolocate locate``),
``RunOptions.clip_model`` or ``$GEOLOCATE_CLIP_MODEL``; without it the tool says what it needs and
the run goes on without it. Install: ``pip install --no-deps "geoclip==1.3.0"`` (its own requirements
pin a CUDA torch and torchvision; at run time it needs only torch, transformers and pandas, which the
``vlm`` extra brings).
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np
from pydantic import Field

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.errors import ToolError

CLIP_ENV = "GEOLOCATE_CLIP_MODEL"
_LOCK = threading.Lock()


class VisualCandidatesUnavailable(ToolError):
    """GeoCLIP or the CLIP weights it needs are missing (the message says how to add them)."""


class VisualInput(ToolInput):
    top_k: int = Field(5, ge=1, le=50, description="how many GPS candidates to return")
    medium: str | None = Field(
        None, description="in a case of several media: the photo or frame to look at; default the first"
    )


class Candidate(ToolOutput):
    lat: float
    lon: float
    probability: float = Field(description="softmax over the GPS gallery")


class VisualOutput(ToolOutput):
    candidates: list[Candidate]
    clip_model: str
    gallery_size: int

    def summary(self) -> str:
        c = ", ".join(f"({x.lat:.3f}, {x.lon:.3f}) p={x.probability:.3f}" for x in self.candidates)
        return f"GeoCLIP candidates from the image alone (a visual prior, not proof): {c}"


def _geoclip_model():
    try:
        from geoclip.model.GeoCLIP import GeoCLIP
    except ImportError as e:
        raise VisualCandidatesUnavailable(
            f"GeoCLIP is not installed ({e})",
            hint='pip install --no-deps "geoclip==1.3.0" (it needs torch and transformers: the vlm extra)',
        ) from None
    return GeoCLIP


class GeoClip:
    """GeoCLIP with the CLIP image encoder ``clip_model`` (hub id or local folder) and the heads and
    gallery of the ``geoclip`` wheel. The gallery's location features (100,000 x 512) are computed
    once per process (about 15 s on 2 CPU cores).

    Raises:
        VisualCandidatesUnavailable: geoclip is missing or the CLIP weights cannot be loaded.
    """

    def __init__(self, clip_model: str, gallery_size: int | None = None):
        import torch

        GeoCLIP = _geoclip_model()
        try:
            self.model = GeoCLIP(from_pretrained=True, clip_path=clip_model).eval()
        except (OSError, ValueError) as e:
            raise VisualCandidatesUnavailable(
                f"cannot load the CLIP image encoder {clip_model!r}: {str(e)[:200]}",
                hint="--clip-model openai/clip-vit-large-patch14 (or a local copy of it)",
            ) from None
        self.clip_model = clip_model
        gallery = self.model.gps_gallery
        self.gallery = gallery if gallery_size is None else gallery[:gallery_size]
        with torch.no_grad():
            feats = torch.cat(
                [self.model.location_encoder(chunk) for chunk in torch.split(self.gallery, 8192)]
            )
        self.gallery_features = torch.nn.functional.normalize(feats, dim=1)

    def candidates(self, image, top_k: int = 5) -> list[tuple[float, float, float]]:
        """The ``top_k`` gallery points for a PIL image: (lat, lon, probability), most probable first;
        the probabilities are the softmax over the whole gallery (they sum to 1 over it)."""
        import torch

        with torch.no_grad():
            pixels = self.model.image_encoder.preprocess_image(image.convert("RGB"))
            f = torch.nn.functional.normalize(self.model.image_encoder(pixels), dim=1)
            logits = self.model.logit_scale.exp() * f @ self.gallery_features.T
            probs = logits.softmax(dim=-1)[0]
            top = torch.topk(probs, min(top_k, len(probs)))
        pts = self.gallery[top.indices].numpy()
        return [(float(a), float(b), float(p)) for (a, b), p in zip(pts, top.values.numpy(), strict=True)]


@functools.lru_cache(maxsize=2)
def get_geoclip(clip_model: str, gallery_size: int | None = None) -> GeoClip:
    """The shared :class:`GeoClip` for ``clip_model`` (loaded once per process)."""
    with _LOCK:
        return GeoClip(clip_model, gallery_size)


def clip_model_from(options: dict) -> str | None:
    """The CLIP encoder a run names: ``options["clip_model"]``, else ``$GEOLOCATE_CLIP_MODEL``."""
    return options.get("clip_model") or os.environ.get(CLIP_ENV) or None


class VisualCandidatesTool(Tool):
    name = "visual_candidates"
    description = (
        "GPS candidates from the image alone (GeoCLIP: architecture, vegetation, landscape), with "
        "probabilities: a visual prior when the photo has no readable text, or to break ties. Needs the "
        "CLIP ViT-L/14 weights (--clip-model)."
    )
    Input = VisualInput
    Output = VisualOutput
    timeout_s = 120.0

    def run(self, args: VisualInput, ctx: ToolContext) -> VisualOutput:
        clip = clip_model_from(ctx.options if ctx is not None else {})
        if clip is None:
            raise VisualCandidatesUnavailable(
                "visual_candidates needs the CLIP ViT-L/14 image encoder, and none was given",
                hint=f"--clip-model openai/clip-vit-large-patch14 (or a local folder), or ${CLIP_ENV}; "
                "the run goes on without visual candidates",
            )
        size = (ctx.options or {}).get("clip_gallery_size")
        g = get_geoclip(clip, size)
        cands = g.candidates(ctx.image_by_id(args.medium).image, args.top_k)
        return VisualOutput(
            candidates=[Candidate(lat=a, lon=b, probability=round(p, 6)) for a, b, p in cands],
            clip_model=clip,
            gallery_size=int(len(g.gallery)),
        )


def country_shares(candidates: list[Candidate]) -> dict[str, float]:
    """The candidates' probability per country (ISO alpha-2; GeoNames reverse geocoding), normalised."""
    from geolocate.tools.geocode import reverse_batch

    if not candidates:
        return {}
    rs = reverse_batch(np.array([(c.lat, c.lon) for c in candidates]))
    out: dict[str, float] = {}
    for c, r in zip(candidates, rs, strict=True):
        if r.country_code:
            out[r.country_code] = out.get(r.country_code, 0.0) + c.probability
    total = sum(out.values())
    return {cc: v / total for cc, v in out.items()} if total else {}
