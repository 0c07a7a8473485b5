"""Every image a phone or camera makes: one sign (OSLO, painted on a real street photo) in every
Pillow mode and as HEIC, AVIF, WebP, TIFF, PNG and GIF gives the same answer as the JPEG.

Photo: OSV-5M sample (Mapillary, CC-BY-SA 4.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geolocate.agent.cli import main
from geolocate.tools.geo import haversine_km
from geolocate.tools.image import load_image, register_heif, to_rgb8
from tests.conftest import OSV, render_sign


@pytest.fixture(scope="module")
def sign(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("modes")
    return render_sign(OSV / "images" / "1105240373293389.jpg", ["OSLO"], d / "oslo.jpg")


def _grey(p: Path) -> np.ndarray:
    return np.asarray(Image.open(p).convert("L"))


def _p_transparent(im: Image.Image) -> Image.Image:
    p = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p.info["transparency"] = int(np.asarray(p)[-1, -1])  # one palette colour of the street is see-through
    return p


def _big_endian16(p: Path) -> Image.Image:
    a = _grey(p).astype(">u2") * 257
    return Image.frombytes("I;16B", (a.shape[1], a.shape[0]), a.tobytes())


MODES = {
    "1": lambda p: (Image.open(p).convert("L").point(lambda v: 255 if v > 128 else 0).convert("1"), "PNG"),
    "L": lambda p: (Image.open(p).convert("L"), "PNG"),
    "LA": lambda p: (Image.open(p).convert("LA"), "PNG"),
    "P": lambda p: (Image.open(p).convert("P"), "PNG"),
    "P-transparent": lambda p: (_p_transparent(Image.open(p)), "PNG"),
    "RGBA": lambda p: (Image.open(p).convert("RGBA"), "PNG"),
    "I;16": lambda p: (Image.fromarray(_grey(p).astype(np.uint16) * 257), "PNG"),
    "I;16B": lambda p: (_big_endian16(p), "TIFF"),
    "I-16bit": lambda p: (Image.fromarray(_grey(p).astype(np.int32) * 257, mode="I"), "TIFF"),
    "I-8bit": lambda p: (Image.open(p).convert("I"), "TIFF"),
    "F-0-1": lambda p: (Image.fromarray(_grey(p).astype(np.float32) / 255.0, mode="F"), "TIFF"),
    "F-0-255": lambda p: (Image.open(p).convert("L").convert("F"), "TIFF"),
    "CMYK": lambda p: (Image.open(p).convert("CMYK"), "JPEG"),
    "CMYK-tiff": lambda p: (Image.open(p).convert("CMYK"), "TIFF"),
    "YCbCr": lambda p: (Image.open(p).convert("YCbCr"), "TIFF"),
}
FORMATS = ["PNG", "WEBP", "TIFF", "AVIF", "HEIF", "GIF", "BMP"]


def _answer(p: Path, tmp: Path) -> tuple[float, float, list[str]]:
    out = tmp / (p.stem + ".json")
    assert main(["locate", str(p), "--quiet", "--json", str(out)]) == 0
    t = json.loads(out.read_text())
    return t["answer"]["lat"], t["answer"]["lon"], t["warnings"]


@pytest.fixture(scope="module")
def jpeg_answer(sign, tmp_path_factory):
    lat, lon, _ = _answer(sign, tmp_path_factory.mktemp("jpeg"))
    assert haversine_km(lat, lon, 59.91, 10.75) < 25  # Oslo
    return lat, lon


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_pillow_mode_gives_the_jpegs_answer(sign, jpeg_answer, tmp_path, mode):
    im, fmt = MODES[mode](sign)
    p = tmp_path / f"oslo-{mode}.{fmt.lower()}"
    im.save(p, format=fmt)
    loaded = load_image(p)
    assert loaded.image.mode == "RGB" and Image.open(p).mode == im.mode
    lo, hi = loaded.image.convert("L").getextrema()
    assert hi - lo > 150, f"{mode}: the values were not scaled to 8 bits ({lo}..{hi})"
    lat, lon, _ = _answer(p, tmp_path)
    assert haversine_km(lat, lon, *jpeg_answer) < 1.0, (mode, lat, lon)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_file_format_gives_the_jpegs_answer(sign, jpeg_answer, tmp_path, fmt):
    register_heif()
    p = tmp_path / f"oslo.{fmt.lower()}"
    Image.open(sign).save(p, format=fmt, **({"quality": 95} if fmt in ("WEBP", "AVIF", "HEIF") else {}))
    assert load_image(p).format == fmt
    lat, lon, _ = _answer(p, tmp_path)
    assert haversine_km(lat, lon, *jpeg_answer) < 1.0, (fmt, lat, lon)


def test_a_multi_frame_file_is_read_on_its_first_frame_with_a_note(sign, jpeg_answer, tmp_path):
    im = Image.open(sign).convert("RGB")
    p = tmp_path / "pages.tiff"
    im.save(p, save_all=True, append_images=[Image.new("RGB", im.size, "white")] * 2)
    lat, lon, warnings = _answer(p, tmp_path)
    assert haversine_km(lat, lon, *jpeg_answer) < 1.0
    assert any("3 frames" in w and "first one is examined" in w for w in warnings)


def test_the_exif_orientation_is_applied(sign, jpeg_answer, tmp_path):
    """A photo stored rotated with EXIF Orientation 6 (rotate 90 degrees clockwise to view): the
    tools see it upright, so the sign reads as it did."""
    im = Image.open(sign)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    im.transpose(Image.Transpose.ROTATE_90).save(p, exif=exif.tobytes(), quality=95)
    assert load_image(p).image.size == im.size
    lat, lon, _ = _answer(p, tmp_path)
    assert haversine_km(lat, lon, *jpeg_answer) < 1.0


def test_scaling_rules_of_the_wide_modes():
    grey16 = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert list(to_rgb8(grey16)[0].convert("L").getdata()) == [0, 128, 255]
    f01 = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    assert list(to_rgb8(f01)[0].convert("L").getdata()) == [0, 128, 255]
    wide = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32), mode="I")
    rgb, notes = to_rgb8(wide)
    assert list(rgb.convert("L").getdata()) == [0, 128, 255] and "stretched" in notes[0]
