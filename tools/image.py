"""Safe loading of the input photo.

Every way a photo can be unusable (missing, unreadable, not an image, truncated or corrupt, a
decompression bomb) raises :class:`~geolocate.tools.errors.InputImageError` with a message meant for a person.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from geolocate.tools.errors import InputImageError

DEFAULT_MAX_PIXELS = 80_000_000
"""Largest accepted image (width * height), 80 megapixels: larger files are refused before decoding."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo and the bytes it came from.

    ``image`` is RGB with the EXIF orientation applied; ``data`` is the original file content (EXIF
    included: only the ``exif`` tool reads it); sizes are pixels of the decoded, rotated image.
    """

    path: str
    data: bytes = field(repr=False)
    image: Image.Image = field(repr=False)
    sha256: str
    format: str
    width: int
    height: int


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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise InputImageError(
                    f"{name}: image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the limit of "
                    f"{max_pixels / 1e6:.0f} (possible decompression bomb); downscale it first"
                )
            fmt = im.format or "unknown"
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = im.convert("RGB")
    except InputImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputImageError(f"{name}: image too large (possible decompression bomb): {e}") from e
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
    )
