"""Cases of several media: photos and videos examined as one investigation.

A *case* is an ordered list of media (``m1``, ``m2``, ...). A photo is one image; a video is decoded
with PyAV (FFmpeg) and reduced to keyframes, each an image with its timestamp and the video's
SHA-256. Tools look at the case's images (:attr:`Case.images`): ids ``m1`` for a photo, ``m2@4.0s``
for the frame of video ``m2`` at 4.0 s.

Keyframes (:func:`keyframes`): every decoded frame is reduced to a 64 x 36 grey thumbnail; a frame
is kept when its mean absolute difference from the last kept frame's thumbnail (0..1) reaches
``scene_threshold`` and at least ``min_gap_s`` have passed (a pan accumulates difference until a frame
is kept; a static shot keeps its first frame only). Near-duplicates are dropped by perceptual hash
(``imagehash.phash``, Hamming distance <= ``PHASH_MAX_DISTANCE``). When more frames qualify than
``max_frames``, the candidates are thinned evenly in time (every other one, the gap doubled), so
memory stays bounded for any length. This is the content-difference detector of PySceneDetect
(``ContentDetector``) on grey thumbnails, without its OpenCV dependency.

Container metadata (:func:`video_metadata`): creation time, the ISO 6709 location that phones write
(``location``, ``com.apple.quicktime.location.ISO6709``, the ``©xyz`` atom), make and model; a
position is validated like EXIF GPS (:func:`geolocate.tools.metadata.check_position`).

Errors: a medium that cannot be used raises :class:`~geolocate.tools.errors.InputImageError` with one
line naming the file and the reason (missing, not a photo or video, audio only, too long, no
decodable frame); :func:`load_case` keeps the others and returns the errors beside the case.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from geolocate.tools.errors import InputImageError, ToolInputError
from geolocate.tools.image import LoadedImage, load_image

DEFAULT_MAX_FRAMES = 24
"""Keyframes kept per video at most (``--max-frames``)."""
DEFAULT_MIN_GAP_S = 1.0
"""Least time between two kept keyframes, seconds."""
DEFAULT_SCENE_THRESHOLD = 0.08
"""Mean absolute grey difference (0..1, 64 x 36 thumbnails) from the last kept frame that makes a new
keyframe."""
DEFAULT_MAX_VIDEO_S = 3600.0
"""Longest video examined (seconds); a longer one is refused with a one-line error."""
DEFAULT_FRAME_MAX_SIDE = 1280
"""Keyframes are examined at most this many pixels a side (``--frame-max-side``): a 1080p or 4K frame
is reduced (FFmpeg's area scaler) to 1280 x 720, where street signs stay readable and OCR costs
half of what it costs at 1080p."""
PHASH_MAX_DISTANCE = 6
"""Perceptual hashes (64 bits) this close or closer mark a near-duplicate frame."""
THUMB = (64, 36)
VIDEO_FORMAT = "video-frame"
"""``LoadedImage.format`` of a frame taken from a video."""

_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)?(?:CRS[^/]*)?/?\s*$")
LOCATION_KEYS = (
    "com.apple.quicktime.location.ISO6709",
    "location",
    "location-eng",
    "\u00a9xyz",
)
"""Container tags that hold an ISO 6709 position, first found wins (FFmpeg reports ``©xyz`` as
``location``)."""


def iso6709(text: str) -> tuple[float, float, float | None]:
    """Parse an ISO 6709 point (``+48.8584+002.2945+035.0/``) into (lat, lon, altitude metres | None),
    WGS84 degrees. Degrees, degrees-minutes (``+4851.50+00217.67``) and degrees-minutes-seconds forms
    are read by the digits before the decimal point (ISO 6709:2008 Annex H).

    Raises:
        ValueError: not an ISO 6709 point.

    >>> iso6709("+48.8584+002.2945+035.000/")
    (48.8584, 2.2945, 35.0)
    >>> iso6709("-3350.000+15112.500/")  # DDMM.MMM: Sydney
    (-33.833333, 151.208333, None)
    """
    m = _ISO6709.match(text or "")
    if not m:
        raise ValueError(f"not an ISO 6709 point: {text[:60]!r}")

    def degrees(s: str, deg_digits: int) -> float:
        sign = -1.0 if s[0] == "-" else 1.0
        body = s[1:]
        whole = body.split(".")[0]
        frac = float("0." + body.split(".")[1]) if "." in body and body.split(".")[1] else 0.0
        n = len(whole)
        if n == deg_digits:
            v = float(whole) + frac
        elif n == deg_digits + 2:
            v = float(whole[:deg_digits]) + (float(whole[deg_digits:]) + frac) / 60.0
        elif n == deg_digits + 4:
            v = (
                float(whole[:deg_digits])
                + float(whole[deg_digits : deg_digits + 2]) / 60.0
                + (float(whole[deg_digits + 2 :]) + frac) / 3600.0
            )
        else:
            raise ValueError(f"not an ISO 6709 point: {text[:60]!r}")
        return round(sign * v, 6)

    lat, lon = degrees(m.group(1), 2), degrees(m.group(2), 3)
    alt = float(m.group(3)) if m.group(3) else None
    return lat, lon, alt


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container says. ``location`` is (lat, lon) in WGS84 degrees when a valid
    ISO 6709 tag was found (``location_tag`` names it); ``warnings`` say which metadata was read but
    not used, and why; ``notes`` what a person should know about the decoding (damage, thinning)."""

    duration_s: float | None
    width: int
    height: int
    fps: float | None
    codec: str
    frames_decoded: int = 0
    creation_time: str | None = None
    creation_time_tag: str | None = None
    location: tuple[float, float] | None = None
    altitude_m: float | None = None
    location_tag: str | None = None
    location_raw: str | None = None
    make: str | None = None
    model: str | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseImage:
    """One image of a case: a photo, or one keyframe of a video.

    ``id`` is ``m1`` for a photo and ``m2@4.0s`` for a frame; ``medium`` the medium's id;
    ``timestamp_s`` the frame's time from the start of the video (None for a photo).
    """

    id: str
    medium: str
    image: LoadedImage
    timestamp_s: float | None = None


@dataclass(frozen=True)
class Medium:
    """One photo or video of a case, with the SHA-256 of its file and, for a video, its keyframes."""

    id: str
    path: str
    sha256: str
    kind: str  # "photo" | "video"
    size_bytes: int
    images: tuple[CaseImage, ...]
    video: VideoInfo | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: id, path, kind, sha256, and for a video its duration, frames (id,
        timestamp_s, sha256 of the decoded pixels) and container metadata."""
        d: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "kind": self.kind,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
        }
        if self.kind == "photo":
            d |= {"width": self.images[0].image.width, "height": self.images[0].image.height}
        if self.video is not None:
            v = self.video
            d |= {
                "duration_s": v.duration_s,
                "width": v.width,
                "height": v.height,
                "codec": v.codec,
                "creation_time": v.creation_time,
                "location": list(v.location) if v.location else None,
                "location_tag": v.location_tag,
                "frames": [
                    {"id": im.id, "timestamp_s": im.timestamp_s, "sha256": im.image.sha256}
                    for im in self.images
                ],
            }
        return d


@dataclass(frozen=True)
class Case:
    """The media of one investigation, in the order given; ``images`` lists every photo and
    keyframe (what the tools look at)."""

    media: tuple[Medium, ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def images(self) -> list[CaseImage]:
        return [im for m in self.media for im in m.images]

    @property
    def primary(self) -> LoadedImage:
        """The first photo, else the first keyframe: what a single-image tool looks at by default."""
        return self.images[0].image

    def medium(self, mid: str) -> Medium:
        for m in self.media:
            if m.id == mid:
                return m
        raise ToolInputError(f"no medium {mid!r} in this case", hint=f"media: {self.ids()}")

    @property
    def single_photo(self) -> bool:
        """A case of one photo: tools behave exactly as for a plain photo."""
        return len(self.media) == 1 and self.media[0].kind == "photo"

    def medium_of(self, image_id: str) -> str:
        """The medium id of an image id (``m2@4.0s`` -> ``m2``)."""
        return next(im.medium for im in self.images if im.id == image_id)

    def ids(self) -> str:
        return ", ".join(im.id for im in self.images)

    def select(self, ids: list[str] | None) -> list[CaseImage]:
        """The images named by ``ids`` (an image id, or a medium id for all its images); all when
        ``ids`` is None or empty.

        Raises:
            ToolInputError: an id that names nothing in the case.
        """
        if not ids:
            return self.images
        out: list[CaseImage] = []
        for i in ids:
            hit = [im for im in self.images if im.id == i or im.medium == i]
            if not hit:
                raise ToolInputError(f"no medium or frame {i!r} in this case", hint=f"ids: {self.ids()}")
            out += [im for im in hit if im not in out]
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [m.describe() for m in self.media]


def subcase(case: Case, media_ids: list[str]) -> Case:
    """The media ``media_ids`` names, as a case of its own (renumbered m1, m2... in the order given;
    a frame ``m3@4.0s`` becomes ``m1@4.0s``).

    Raises:
        ToolInputError: an id that names no medium of ``case``.
    """
    out = []
    for i, mid in enumerate(media_ids, start=1):
        m = case.medium(mid)
        new = f"m{i}"
        images = tuple(CaseImage(new + im.id[len(m.id) :], new, im.image, im.timestamp_s) for im in m.images)
        out.append(Medium(new, m.path, m.sha256, m.kind, m.size_bytes, images, m.video))
    return Case(tuple(out))


def case_warnings(case: Case) -> list[str]:
    """What a person should know about a case: media left out (with why), damaged videos, container
    metadata read but not used."""
    out = [f"medium not used: {e}" for e in case.errors]
    for m in case.media:
        if m.video is not None:
            out += [f"{m.id} ({m.path}): {n}" for n in m.video.notes]
            out += [f"metadata: {m.id}: {w}" for w in m.video.warnings]
        out += [f"image: {m.id}: {n}" for n in m.images[0].image.notes] if len(case.media) > 1 else []
    return out


def single(image: LoadedImage) -> Case:
    """A case of one photo already decoded."""
    im = CaseImage(id="m1", medium="m1", image=image)
    return Case((Medium("m1", image.path, image.sha256, "photo", len(image.data), (im,)),))


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def is_image_file(path: str | Path) -> bool:
    """Whether Pillow recognises the file's content as an image (the extension is not trusted)."""
    from PIL import Image, UnidentifiedImageError

    from geolocate.tools.image import register_heif

    register_heif()
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def video_metadata(metadata: dict[str, str], stream_metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Creation time, ISO 6709 location, make and model from container (and video stream) tags.

    Returns a dict with keys creation_time, location, altitude_m, location_tag, location_raw, make,
    model, warnings; a tag that is present but unusable is left out and named in ``warnings``.
    """
    from geolocate.tools.metadata import check_position

    tags = {**(stream_metadata or {}), **(metadata or {})}
    out: dict[str, Any] = {"warnings": []}
    for key in LOCATION_KEYS:
        raw = tags.get(key)
        if not raw:
            continue
        try:
            lat, lon, alt = iso6709(str(raw))
        except ValueError as e:
            out["warnings"].append(f"container tag {key}: {e}: not used")
            continue
        why = check_position(lat, lon, f"container tag {key}")
        if why:
            out["warnings"].append(why)
            continue
        out |= {"location": (lat, lon), "altitude_m": alt, "location_tag": key, "location_raw": str(raw)[:80]}
        break
    for key in ("com.apple.quicktime.creationdate", "creation_time", "date"):
        raw = tags.get(key)
        if not raw:
            continue
        try:
            t = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
        except ValueError:
            out["warnings"].append(
                f"container tag {key}: {str(raw)[:40]!r} is not an ISO 8601 time: not used"
            )
            continue
        if t.year < 1990 or t.year > datetime.now(UTC).year + 1:
            out["warnings"].append(f"container tag {key}: {t.isoformat()} is implausible: not used")
            continue
        out["creation_time"] = t.isoformat()
        out["creation_time_tag"] = key
        break
    for name, keys in (
        ("make", ("com.apple.quicktime.make", "make", "com.android.manufacturer")),
        ("model", ("com.apple.quicktime.model", "model", "com.android.model")),
    ):
        for k in keys:
            if tags.get(k):
                out[name] = str(tags[k]).strip()[:80]
                break
    return out


def _thumb(frame):
    """A frame's ``THUMB`` grey thumbnail (float32, 36 x 64): block means of its luma plane, read in
    place for 8-bit YUV frames (most videos), else through FFmpeg's scaler."""
    import numpy as np

    fmt = frame.format.name
    if not (fmt.startswith(("yuv", "yuvj", "nv12", "nv21")) and fmt.endswith(("p", "12", "21"))):
        return frame.to_ndarray(width=THUMB[0], height=THUMB[1], format="gray").astype(np.float32)
    p = frame.planes[0]
    a = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[: frame.height, : frame.width]
    ty, tx = THUMB[1], THUMB[0]
    by, bx = max(1, a.shape[0] // ty), max(1, a.shape[1] // tx)
    a = a[: by * ty : max(1, by // 3), : bx * tx : max(1, bx // 3)].astype(np.float32)
    ky, kx = max(1, a.shape[0] // ty), max(1, a.shape[1] // tx)
    return a[: ky * ty, : kx * tx].reshape(ty, ky, tx, kx).mean(axis=(1, 3))


def _frame_image(rgb, name: str, t: float) -> LoadedImage:
    """A decoded frame (PIL RGB) as a LoadedImage: ``data`` empty, the hash of its pixels."""
    return LoadedImage(
        path=f"{name}#t={t:.2f}",
        data=b"",
        image=rgb,
        sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
        format=VIDEO_FORMAT,
        width=rgb.width,
        height=rgb.height,
    )


def keyframes(
    path: str | Path | BinaryIO,
    mid: str = "m1",
    max_frames: int = DEFAULT_MAX_FRAMES,
    min_gap_s: float = DEFAULT_MIN_GAP_S,
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
    max_video_s: float = DEFAULT_MAX_VIDEO_S,
    name: str | None = None,
    max_side: int = DEFAULT_FRAME_MAX_SIDE,
) -> tuple[list[CaseImage], VideoInfo]:
    """Decode the video at ``path`` (or in a binary file object, named ``name``) and keep at most
    ``max_frames`` keyframes (see the module docstring), with the container's metadata.

    Raises:
        InputImageError: not a video FFmpeg can open, no video stream (audio only), longer than
            ``max_video_s``, or no frame could be decoded.
    """
    import av
    import imagehash
    import numpy as np

    name = name or str(path)
    source = path if hasattr(path, "read") else str(path)
    if max_frames < 1:
        raise ValueError("max_frames must be at least 1")
    try:
        container = av.open(source, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise InputImageError(f"{name}: not an image, nor a video FFmpeg can read ({_one_line(e)})") from None
    with container:
        if not container.streams.video:
            what = "audio only" if container.streams.audio else "no streams"
            raise InputImageError(f"{name}: has no video stream ({what})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if duration is not None and duration > max_video_s:
            raise InputImageError(
                f"{name}: the video is {_clock(duration)} long, over the limit of {_clock(max_video_s)} "
                "(--max-video-duration); cut the part to examine first"
            )
        meta = video_metadata(dict(container.metadata), dict(stream.metadata))
        fps = float(stream.average_rate) if stream.average_rate else None
        gap = max(min_gap_s, (duration or 0.0) / (2 * max_frames))
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        kept: list[tuple[float, float, Any, Any]] = []  # (t, score, PIL image, phash)
        last_thumb = None
        last_t = -math.inf
        decoded = 0
        notes: list[str] = []
        t = 0.0
        try:
            for frame in container.decode(stream):
                decoded += 1
                t = float(frame.time - start) if frame.time is not None else decoded / (fps or 30.0)
                if t > max_video_s:
                    raise InputImageError(
                        f"{name}: the video runs past {_clock(max_video_s)} (--max-video-duration)"
                    )
                thumb = _thumb(frame)
                score = 1.0 if last_thumb is None else float(np.abs(thumb - last_thumb).mean() / 255.0)
                if last_thumb is not None and (score < scene_threshold or t - last_t < gap):
                    continue
                scale = min(1.0, max_side / max(frame.width, frame.height))
                rgb = (
                    frame.to_image()
                    if scale >= 1.0
                    else frame.to_image(
                        width=round(frame.width * scale),
                        height=round(frame.height * scale),
                        interpolation="AREA",
                    )
                )
                ph = imagehash.phash(rgb)
                last_thumb, last_t = thumb, t
                if any(ph - k[3] <= PHASH_MAX_DISTANCE for k in kept):
                    continue
                kept.append((t, score, rgb, ph))
                if len(kept) > 2 * max_frames:  # thin evenly in time, double the gap
                    kept = kept[::2]
                    gap *= 2
        except InputImageError:
            raise
        except (av.FFmpegError, ValueError, OSError) as e:
            if not kept:
                raise InputImageError(
                    f"{name}: not an image, and no decodable video frame ({_one_line(e)})"
                ) from None
            notes.append(
                f"the video is damaged after {t:.1f} s ({_one_line(e)}): frames up to there are used"
            )
        if not kept:
            raise InputImageError(f"{name}: not an image, and no decodable video frame")
        if not notes and duration is not None and t < duration - max(1.0, 2.0 / (fps or 30.0)):
            notes.append(
                f"the video ends after {t:.1f} s although its header says {duration:.1f} s (truncated?): "
                "frames up to there are used"
            )
        if len(kept) > max_frames:
            idx = np.unique(np.round(np.linspace(0, len(kept) - 1, max_frames)).astype(int))
            kept = [kept[i] for i in idx]
        if duration is None:
            duration = t
        images = [
            CaseImage(
                id=f"{mid}@{kt:.1f}s", medium=mid, image=_frame_image(rgb, name, kt), timestamp_s=round(kt, 3)
            )
            for kt, _, rgb, _ in kept
        ]
        # two frames rounded to the same tenth of a second keep distinct ids
        seen: dict[str, int] = {}
        for i, im in enumerate(images):
            if im.id in seen:
                images[i] = CaseImage(f"{im.id}~{i}", mid, im.image, im.timestamp_s)
            seen[im.id] = i
        info = VideoInfo(
            duration_s=round(duration, 3) if duration is not None else None,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=round(fps, 3) if fps else None,
            codec=stream.codec_context.name,
            frames_decoded=decoded,
            creation_time=meta.get("creation_time"),
            creation_time_tag=meta.get("creation_time_tag"),
            location=meta.get("location"),
            altitude_m=meta.get("altitude_m"),
            location_tag=meta.get("location_tag"),
            location_raw=meta.get("location_raw"),
            make=meta.get("make"),
            model=meta.get("model"),
            warnings=tuple(meta["warnings"]),
            notes=tuple(notes),
        )
        return images, info


def _one_line(e: object) -> str:
    """An FFmpeg error without its errno and call: 'Invalid data found when processing input'."""
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split())[:200]


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def write_video(
    path: str | Path,
    frames,
    fps: int = 30,
    metadata: dict[str, str] | None = None,
    fmt: str | None = None,
    options: dict[str, str] | None = None,
    codec: str = "libx264",
) -> Path:
    """Encode ``frames`` (PIL RGB images of one size, or HxWx3 uint8 arrays) as a video at ``fps``
    (PyAV; ``codec`` libx264 by default, libvpx-vp9 for WebM; yuv420p) with container ``metadata``
    tags (``location`` takes ISO 6709); ``fmt`` the container (default from the extension),
    ``options`` muxer options. For synthetic test and benchmark clips."""
    import av
    import numpy as np

    c = av.open(str(path), "w", format=fmt, options=options or {})
    try:
        for k, v in (metadata or {}).items():
            c.metadata[k] = v
        s = None
        for f in frames:
            if s is None:
                h, w = (f.height, f.width) if hasattr(f, "height") else np.asarray(f).shape[:2]
                fast = (
                    {"preset": "veryfast"}
                    if codec == "libx264"
                    else {"deadline": "realtime", "cpu-used": "8"}
                )
                s = c.add_stream(codec, rate=fps, options=fast)
                s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            vf = (
                av.VideoFrame.from_image(f)
                if hasattr(f, "height")
                else av.VideoFrame.from_ndarray(f, "rgb24")
            )
            for p in s.encode(vf):
                c.mux(p)
        if s is not None:
            for p in s.encode():
                c.mux(p)
    finally:
        c.close()
    return Path(path)


def load_medium(
    path: str | Path | BinaryIO, mid: str = "m1", name: str | None = None, **video_options: Any
) -> Medium:
    """A photo or a video from ``path``, told apart by content (never by the extension). A binary file
    object (``name`` for messages) is read as a video.

    ``video_options`` go to :func:`keyframes` (max_frames, min_gap_s, scene_threshold, max_video_s).

    Raises:
        InputImageError: the file is missing, unreadable, or neither a usable photo nor a usable video.
    """
    if hasattr(path, "read"):
        data = path.read()
        path.seek(0)
        images, info = keyframes(path, mid, name=name, **video_options)
        return Medium(
            mid, name or "<bytes>", hashlib.sha256(data).hexdigest(), "video", len(data), tuple(images), info
        )
    p = Path(path)
    if not p.exists():
        raise InputImageError(f"{p}: no such file")
    if not p.is_file():
        raise InputImageError(f"{p}: not a regular file")
    if is_image_file(p):
        image = load_image(p)
        return Medium(mid, str(p), image.sha256, "photo", len(image.data), (CaseImage(mid, mid, image),))
    try:
        size = p.stat().st_size
        sha = _file_sha256(p)
    except OSError as e:
        raise InputImageError(f"{p}: cannot read file ({e.strerror or e})") from e
    if size == 0:
        raise InputImageError(f"{p}: empty file")
    images, info = keyframes(p, mid, **video_options)
    return Medium(mid, str(p), sha, "video", size, tuple(images), info)


def load_case(paths: list[str | Path], **video_options: Any) -> Case:
    """Every medium of ``paths`` as one case (ids ``m1``, ``m2``... in the order given). A medium that
    cannot be used is left out and its one-line error kept in ``Case.errors``.

    Raises:
        InputImageError: no medium at all could be used (the message lists each error).
    """
    media: list[Medium] = []
    errors: list[str] = []
    for i, path in enumerate(paths, start=1):
        try:
            media.append(load_medium(path, f"m{i}", **video_options))
        except InputImageError as e:
            errors.append(str(e))
    if not media:
        raise InputImageError("; ".join(errors) or "no media given")
    return Case(tuple(media), tuple(errors))
