"""Safe loading of the input photo.

Every way a photo can be unusable (missing, unreadable, not an image, truncated or corrupt, a
decompression bomb) raises :class:`~geolocate.tools.errors.InputImageError` with a message meant for a person.

Every image a phone or a camera makes is read: JPEG, PNG, WebP, TIFF, GIF, BMP, AVIF (Pillow) and
HEIC/HEIF (``pillow-heif``, the format iPhones write). Whatever Pillow's mode (``1``, ``L``, ``LA``,
``P`` with transparency, ``I;16`` and the other 16-bit modes, ``I``, ``F``, ``CMYK``, ``YCbCr``...), the
tools see 8-bit RGB with the values scaled from the file's range (:func:`to_rgb8`): a 16-bit grey PNG
is divided by 257, not clipped at 255. The EXIF orientation is applied; a multi-frame file (an animated
GIF, a multi-page TIFF) is examined on its first frame, and a note says so.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from geolocate.tools.errors import InputImageError

DEFAULT_MAX_PIXELS = 80_000_000
"""Largest accepted image (width * height), 80 megapixels: larger files are refused before decoding."""
ANALYSIS_MAX_PIXELS = 24_000_000
"""Largest image the tools examine: a larger photo (a 48 or 80 megapixel phone shot) is reduced by a
whole factor per side (Pillow's ``draft`` for JPEG, ``reduce`` otherwise) to at most this many pixels,
with a note. 24 MP keeps a 6000 x 4000 camera frame whole; OCR detection works at 2,000 px anyway."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo and the bytes it came from.

    ``image`` is 8-bit RGB with the EXIF orientation applied; ``data`` is the original file content
    (EXIF included: only the ``exif`` tool reads it); sizes are pixels of the decoded, rotated image.
    ``notes`` say what was done to read it that a person should know (the first of several frames,
    a 16-bit range scaled down).
    """

    path: str
    data: bytes = field(repr=False)
    image: Image.Image = field(repr=False)
    sha256: str
    format: str
    width: int
    height: int
    notes: tuple[str, ...] = ()


_HEIF_REGISTERED = False


def register_heif() -> bool:
    """Let Pillow open HEIC/HEIF (``pillow-heif``); False when it is not installed."""
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        _HEIF_REGISTERED = True
    return True


def to_rgb8(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """``im`` (any Pillow mode) as 8-bit RGB, and notes on what the conversion did.

    Transparency (``LA``, ``RGBA``, ``PA``, ``P`` with a transparent colour) is composited over white, as
    a viewer shows it. Integer modes are scaled from their range: 16-bit modes (``I;16`` and kin) and
    ``I`` holding 16-bit values by 1/257, ``I`` beyond 16 bits by its own maximum; ``F`` in [0, 1] by
    255, other float ranges stretched from min to max. ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``
    and ``HSV`` use Pillow's own conversion.

    >>> import numpy as np
    >>> im16 = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    >>> rgb, notes = to_rgb8(im16)
    >>> rgb.mode, rgb.getpixel((0, 0))
    ('RGB', (255, 255, 255))
    """
    import numpy as np

    notes: list[str] = []
    mode = im.mode
    if mode == "RGB":
        return im, notes
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        base = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(base, im.convert("RGBA")).convert("RGB"), notes
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if mode == "F":
            if lo >= 0.0 and hi <= 1.0:
                scale, offset = 255.0, 0.0
            elif lo >= 0.0 and hi <= 255.0:
                scale, offset = 1.0, 0.0
            else:
                scale, offset = 255.0 / max(hi - lo, 1e-12), lo
                notes.append(f"floating-point image stretched from [{lo:g}, {hi:g}] to 8 bits")
        elif mode.startswith("I;16") or (lo >= 0 and hi <= 65535 and hi > 255):
            scale, offset = 1.0 / 257.0, 0.0
        elif lo >= 0 and hi <= 255:
            scale, offset = 1.0, 0.0
        else:
            scale, offset = 255.0 / max(hi - lo, 1.0), lo
            notes.append(f"32-bit image stretched from [{lo:g}, {hi:g}] to 8 bits")
        a = np.nan_to_num((a - offset) * scale, nan=0.0, posinf=255.0, neginf=0.0)
        grey = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB"), notes
    return im.convert("RGB"), notes


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read and fully decode the photo at ``path``.

    Raises:
        InputImageError: the file is missing, a directory, unreadable, not an image, truncated or
            corrupt, or larger than ``max_pixels`` (checked from the header, before decoding).
    """
    p = Path(path)
    if not p.exists():
        raise InputImageError(f"{p}: no such file")
    if not p.is_file():
        raise InputImageError(f"{p}: not a regular file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputImageError(f"{p}: cannot read file ({e.strerror or e})") from e
    return decode_image(data, str(p), max_pixels=max_pixels)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode image bytes; same checks and errors as :func:`load_image`."""
    if not data:
        raise InputImageError(f"{name}: empty file")
    register_heif()
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Our own limit (max_pixels, checked below from the header) is the one that applies;
            # Pillow's warning threshold (89 megapixels) would only say it in other words.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise InputImageError(
                    f"{name}: image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the limit of "
                    f"{max_pixels / 1e6:.0f} (possible decompression bomb); downscale it first"
                )
            fmt = im.format or "unknown"
            frames = getattr(im, "n_frames", 1) or 1
            if frames > 1:
                im.seek(0)
                notes.append(
                    f"the file holds {frames} frames (animation or pages): the first one is examined"
                )
            factor = max(1, math.ceil(math.sqrt(w * h / ANALYSIS_MAX_PIXELS)))
            if factor > 1 and im.format == "JPEG":  # decode at a reduced size: the whole frame never exists
                im.draft(im.mode, (w // factor, h // factor))
            im.load()
            if factor > 1:
                k = max(1, math.ceil(math.sqrt(im.size[0] * im.size[1] / ANALYSIS_MAX_PIXELS)))
                if k > 1:
                    im = (
                        im.reduce(k)
                        if im.mode in ("RGB", "L", "RGBA", "LA", "CMYK", "I", "F")
                        else im.resize((im.size[0] // k, im.size[1] // k))
                    )
                notes.append(
                    f"the photo is {w}x{h} ({w * h / 1e6:.0f} MP): the tools examine it reduced to "
                    f"{im.size[0]}x{im.size[1]}"
                )
            orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
            if orientation not in (None, 1):  # rotate only when the file says so (no needless copy)
                im = ImageOps.exif_transpose(im) or im
            rgb, more = to_rgb8(im)
            notes += more
    except InputImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        import re

        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m.group(1)) / 1e6:.0f} megapixels" if m else "too many megapixels"
        raise InputImageError(
            f"{name}: image is {size}, over the limit of {max_pixels / 1e6:.0f} (possible decompression "
            "bomb); downscale it first"
        ) from None
    except UnidentifiedImageError as e:
        raise InputImageError(f"{name}: not an image, or a format Pillow cannot read") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputImageError(f"{name}: corrupt or truncated image ({e})") from e
    return LoadedImage(
        path=name,
        data=data,
        image=rgb,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=rgb.width,
        height=rgb.height,
        notes=tuple(notes),
    )
