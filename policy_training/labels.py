"""Chain-of-Region labels from GPS, by rule (as Geo-R does: reverse geocoding, no model-written
rationales), and training datasets built from a labels CSV plus an image folder.

Labels come from the offline GeoNames reverse geocoder (:func:`geolocate.tools.geocode.reverse_batch`), the
same naming the Episode's commitments resolve to, so a correct commitment matches its label exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from geolocate.tools.geonames import get_db


@dataclass(frozen=True)
class ChainLabel:
    """Ground-truth Chain of Region: continent code, ISO 3166-1 alpha-2, GeoNames admin-1 name, nearest
    GeoNames place (city) and its distance in km from the true point."""

    continent: str
    country: str
    region: str
    city: str
    city_km: float


def labels_from_gps(points: Sequence[tuple[float, float]]) -> list[ChainLabel]:
    """One :class:`ChainLabel` per (lat, lon) in WGS84 degrees (batched reverse geocoding).

    >>> labels_from_gps([(47.14151, 9.52154)])[0].country
    'LI'
    """
    from geolocate.tools.geocode import reverse_batch

    countries = get_db().countries
    out = []
    for r in reverse_batch(points):
        c = countries.get(r.country_code)
        out.append(
            ChainLabel(
                c.continent if c else "", r.country_code, r.admin1, r.city, float(r.distance_km or 0.0)
            )
        )
    return out


PHOTO_KEY = "geolocate:photo"
"""PNG text key of a training row's image: the path of the photo it was shrunk from."""


def training_prompt(image, tool_names: Sequence[str], budget) -> list[dict]:
    """The conversational prompt of a training row: exactly the messages the agent renders for the
    first turn of an Episode on ``image`` (a :class:`geolocate.tools.image.LoadedImage`), with the image part
    as
    TRL expects it (``{"type": "image"}``, filled from the row's ``image`` column)."""
    from geolocate.agent.episode import Episode
    from geolocate.prompts.render import build_messages, template_messages
    from geolocate.tools.registry import ToolSet

    tools = ToolSet.from_names(tool_names)
    ep = Episode(image, tools, budget=budget)
    return template_messages(build_messages(ep.state, tools.schemas()))


def build_dataset(
    dataset,
    tool_names: Sequence[str],
    budget=None,
    max_pixels: int = 1280 * 28 * 28,
    keep: Callable[[object], bool] | None = None,
):
    """A ``datasets.Dataset`` for GRPO from an :class:`geolocate.evals.datasets.Dataset` (any layout: OSV-5M,
    MP16-Pro, Im2GPS3k, CSV + folder).

    Columns: ``prompt`` (messages), ``image`` (the photo shrunk to ``max_pixels``: what the model sees,
    so the trainer's re-rendering of the prompt matches the rollout's; a PNG whose text chunk
    :data:`PHOTO_KEY` names the photo, from which the rollout's tools read and whose size the prompt
    states, as at inference), ``id``, ``lat``, ``lon`` and the
    label columns ``continent``, ``country``, ``region``, ``city``. ``keep`` filters samples (see
    :func:`hard_samples`).
    """
    import io

    import datasets

    from geolocate.agent.state import Budget
    from geolocate.prompts.render import fit_pixels
    from geolocate.tools.image import load_image

    budget = budget or Budget()
    samples = [s for s in dataset if keep is None or keep(s)]
    labels = labels_from_gps([(s.lat, s.lon) for s in samples])
    from PIL.PngImagePlugin import PngInfo

    rows = []
    for s, lab in zip(samples, labels):
        photo = load_image(s.image)
        buf = io.BytesIO()
        text = PngInfo()
        text.add_text(PHOTO_KEY, str(Path(s.image).resolve()))
        fit_pixels(photo.image, max_pixels).save(buf, format="PNG", pnginfo=text)
        rows.append(
            {
                "id": s.id,
                "prompt": training_prompt(photo, tool_names, budget),
                "image": {"bytes": buf.getvalue(), "path": None},
                "lat": s.lat,
                "lon": s.lon,
                **{k: v for k, v in asdict(lab).items() if k != "city_km"},
            }
        )
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "prompt": [
                {
                    "role": datasets.Value("string"),
                    "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}],
                }
            ],
            "image": datasets.Image(),
            "lat": datasets.Value("float64"),
            "lon": datasets.Value("float64"),
            "continent": datasets.Value("string"),
            "country": datasets.Value("string"),
            "region": datasets.Value("string"),
            "city": datasets.Value("string"),
        }
    )
    for r in rows:  # datasets needs every struct field present
        for m in r["prompt"]:
            for p in m["content"]:
                p.setdefault("text", None)
    return datasets.Dataset.from_list(rows, features=features)


def hard_samples(
    predictions: dict[str, tuple[float, float]], threshold_km: float = 25.0
) -> Callable[[object], bool]:
    """Geo-R's hard-sample selection: keep the samples a reference policy does NOT already get within
    ``threshold_km`` (``predictions``: id -> (lat, lon), e.g. from ``geolocate eval`` of the reference)."""
    from geolocate.tools.geo import haversine_km

    def keep(sample) -> bool:
        p = predictions.get(sample.id)
        return p is None or haversine_km(p[0], p[1], sample.lat, sample.lon) > threshold_km

    return keep
