"""Shared fixtures: real data from ../shared/data (OSV-5M sample, CC-BY-SA 4.0 / MIT) and helpers."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOLOCATE_SHARED", REPO.parent / "shared")) / "data"
OSV = SHARED / "osv5m-sample"


@pytest.fixture(scope="session")
def services():
    """The self-hosted PostgreSQL/PostGIS/Nominatim services (geolocate services up), brought up when
    this runs as root on Debian and down again at the end if this brought them up."""
    import shutil

    from geolocate.tools.cli import DEFAULT_SERVICE_EXTRACTS
    from geolocate.tools.services import Services

    svc = Services.default()
    running = svc.status()["postgres"] and svc.status()["nominatim"]
    if not running and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        pytest.skip("bringing the services up needs root on Debian (or run 'geolocate services up' first)")
    svc.up([SHARED / "osm" / f for f in DEFAULT_SERVICE_EXTRACTS], log=lambda m: None)
    yield svc
    if not running:
        svc.down()


@pytest.fixture(scope="session")
def osv_dir() -> Path:
    if not (OSV / "labels.csv").exists():
        pytest.fail(
            f"shared data not found at {OSV}: clone the repo next to ../shared or set GEOLOCATE_SHARED"
        )
    return OSV


@pytest.fixture(scope="session")
def labels(osv_dir) -> dict[str, dict]:
    with open(osv_dir / "labels.csv", newline="", encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="session")
def plain_photo(osv_dir) -> Path:
    """A real photo without text (Maida Vale, Western Australia)."""
    return osv_dir / "images" / "1105240373293389.jpg"


def render_sign(photo: Path, lines: list[str], out: Path, size: int = 56) -> Path:
    """Paint a white sign with black text lines onto a real photo (as a street sign would appear)."""
    im = Image.open(photo).convert("RGB")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=size)
    y = 40
    for text in lines:
        x0, y0, x1, y1 = draw.textbbox((40, y), text, font=font)
        draw.rectangle((x0 - 16, y0 - 12, x1 + 16, y1 + 12), fill="white", outline="black", width=3)
        draw.text((40, y), text, fill="black", font=font)
        y = y1 + 40
    im.save(out, quality=95)
    return out


def with_gps(photo: Path, lat: float, lon: float, out: Path) -> Path:
    """Copy a real photo with GPS EXIF (degrees/minutes/seconds rationals) written by piexif."""
    import piexif

    def dms(x: float):
        x = abs(x)
        d = int(x)
        m = int((x - d) * 60)
        s = round(((x - d) * 60 - m) * 60 * 10000)
        return ((d, 1), (m, 1), (s, 10000))

    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: dms(lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: dms(lon),
    }
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"TestCam"},
            "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2021:06:01 12:00:00"},
            "GPS": gps,
        }
    )
    buf = io.BytesIO()
    Image.open(photo).save(buf, format="JPEG", quality=95, exif=exif)
    out.write_bytes(buf.getvalue())
    return out


def tiny_grpo_config(tmp_path: Path, ckpt, tools: list[str], **overrides):
    """A GeoGRPOConfig for CPU runs of the tiny model: output in ``tmp_path/out``, group size 2, batch
    4, one step, no checkpoints or reporting, sampling at temperature 1, no KL; ``overrides`` on top."""
    from geolocate.policy_training.config import GeoGRPOConfig

    base = dict(
        output_dir=str(tmp_path / "out"),
        model_name_or_path=str(ckpt),
        tools=",".join(tools),
        num_generations=2,
        per_device_train_batch_size=4,
        max_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        beta=0.0,
        temperature=1.0,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
    )
    return GeoGRPOConfig(**{**base, **overrides})


def write_audio_only(path: Path, frames: int = 10) -> Path:
    """An MP4 holding one silent mono AAC stream (``frames`` x 1024 samples at 44.1 kHz) and no video,
    written with PyAV: a medium that is neither a photo nor a video."""
    import av
    import numpy as np

    c = av.open(str(path), "w", format="mp4")
    s = c.add_stream("aac", rate=44100)
    s.layout = "mono"
    for i in range(frames):
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 44100, i * 1024
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path
