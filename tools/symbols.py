"""Currency symbols re-read by synthesis: RapidOCR's recogniser has no ₽, ₴, ₮, ₱, ₪, ₦, ฿, ₫, ₡, ₼
in its dictionary, so it reads a price "150 ₽" as "150 p", "฿99" as "Π99" or "$99", "₡240" as "240".
Yet a price with its symbol is one of the strongest clues a photo carries (one currency, a few
countries).

A detected line that reads as a number with at most two other characters is re-read here: the number
is rendered with each currency symbol before and after it (with and without a space), in DejaVu Sans
(bundled with matplotlib, so present wherever geolocate is installed; regular and bold) and, for the
symbols DejaVu lacks (₾ ₼ ৳), any Noto font the system has. Each rendering is scaled to the crop's ink
height and compared with the crop's ink (overlap of the two ink masks after a one-pixel blur: 1 is
identical). The reading RapidOCR gave is rendered and scored the same way, and a symbol reading replaces
it only when it fits clearly better (:data:`MIN_GAIN`) and well (:data:`MIN_FIT`).

This is analysis by synthesis over a closed set of ~25 glyphs, not a general recogniser: the digits
come from RapidOCR, only the symbol is chosen.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import regex
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SYMBOLS = "€£¥₹₽₺₩₪฿₦₱₫₴₸₾₡₲৳₭₮₼$"
"""Currency signs (Unicode category Sc) that are re-read: each names one currency or a few (CLDR)."""
MIN_FIT = 0.55
"""A symbol reading must overlap the crop's ink at least this much (0..1)."""
MIN_GAIN = 0.04
"""... and this much more than RapidOCR's own reading rendered the same way."""
MIN_GAIN_BARE = 0.1
"""For a bare number ("240": the symbol dropped, or none at all) a symbol must fit the end glyph this
much better than the best of the ten digits: house numbers and prices without a sign stay numbers."""
MAX_OTHER = 2
"""A line is re-read only when it is a number and at most this many other characters (the symbol
misread, or none): "150 p", "Π99", "240"; "Tel 240" is not a price."""
_NUMBER = regex.compile(r"\d(?:[\d.,'’ ]*\d)?")
_RENDER_SIZE = 64


@functools.cache
def _fonts() -> tuple[tuple[str, frozenset[int]], ...]:
    """(font file, its code points) for the renderings: DejaVu Sans regular and bold from matplotlib's
    data, then Noto Sans / Noto Sans Bengali where the system has them (for ₾ ₼ ৳)."""
    import matplotlib
    from fontTools.ttLib import TTFont

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = [ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf"]
    noto = Path("/usr/share/fonts/truetype/noto")
    files += [noto / "NotoSans-Regular.ttf", noto / "NotoSansBengali-Regular.ttf"]
    out = []
    for f in files:
        if f.exists():
            try:
                out.append((str(f), frozenset(TTFont(str(f), lazy=True).getBestCmap())))
            except Exception:  # noqa: BLE001 - an unreadable font file: skip it
                continue
    return tuple(out)


@functools.cache
def _font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _RENDER_SIZE)


def _ink(a: np.ndarray) -> np.ndarray | None:
    """The dark-ink mask of a grey crop (dark text on light, uint8), cut to its bounding box; None if
    empty. Threshold: Otsu's (OpenCV, RapidOCR's own dependency)."""
    import cv2

    if a.size == 0:
        return None
    _, dark = cv2.threshold(
        np.ascontiguousarray(a, dtype=np.uint8), 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU
    )
    ink = dark.astype(bool)
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return None
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@functools.cache
def _rendered(text: str, font: str) -> np.ndarray | None:
    """``text`` rendered black on white in ``font``, cut to its ink (bool mask)."""
    f = _font(font)
    box = f.getbbox(text)
    w, h = box[2] - box[0] + 8, box[3] - box[1] + 8
    im = Image.new("L", (max(1, w), max(1, h)), 255)
    ImageDraw.Draw(im).text((4 - box[0], 4 - box[1]), text, font=f, fill=0)
    return _ink(np.asarray(im))


def _fit(target: np.ndarray, mask: np.ndarray) -> float:
    """Overlap (0..1) of two ink masks: ``mask`` scaled to ``target``'s height (its own aspect kept),
    both left-aligned on one canvas and blurred by a pixel; sum of minima over sum of maxima."""
    h, w = target.shape
    scale = h / mask.shape[0]
    mw = max(1, round(mask.shape[1] * scale))
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((mw, h), Image.BILINEAR)) / 255.0
    width = max(w, mw)
    a = np.zeros((h, width))
    b = np.zeros((h, width))
    a[:, :w] = target
    b[:, :mw] = m

    def blur(x: np.ndarray) -> np.ndarray:
        return np.asarray(
            Image.fromarray((x * 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(1)), dtype=float
        )

    a, b = blur(a), blur(b)
    return float(np.minimum(a, b).sum() / max(1.0, np.maximum(a, b).sum()))


def _visible(text: str) -> str:
    """``text`` without combining marks and format characters (a virama, a zero-width non-joiner)."""
    return regex.sub(r"[\p{Mn}\p{Cf}]", "", text)


def is_candidate(reading: str) -> bool:
    """Whether an OCR reading may be a price whose symbol was misread or dropped: one number and at most
    :data:`MAX_OTHER` other non-space characters, none of them a letter run of two or more.

    >>> is_candidate("150 p"), is_candidate("Π99"), is_candidate("240"), is_candidate("Tel 240")
    (True, True, True, False)
    """
    nums = _NUMBER.findall(reading)
    if len(nums) != 1:
        return False
    rest = _visible(_NUMBER.sub("", reading)).replace(" ", "")
    return len(rest) <= MAX_OTHER and not regex.search(r"\p{L}{2}", rest)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Column runs of ink in a mask, split at empty columns: the glyphs of a line, left to right."""
    cols = mask.any(axis=0)
    out, start = [], None
    for x, on in enumerate(cols):
        if on and start is None:
            start = x
        elif not on and start is not None:
            out.append((start, x))
            start = None
    if start is not None:
        out.append((start, len(cols)))
    return out


def _rows(mask: np.ndarray) -> tuple[int, int]:
    """First and one-past-last row with ink."""
    ys = np.flatnonzero(mask.any(axis=1))
    return (int(ys[0]), int(ys[-1]) + 1) if len(ys) else (0, 0)


def _cut(mask: np.ndarray, run: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """A glyph's columns ``run`` of a line mask, cut to its own ink rows, with its height and its top
    (rows from the line's top)."""
    g = mask[:, run[0] : run[1]]
    top, bottom = _rows(g)
    return g[top:bottom], float(bottom - top), float(top)


@functools.cache
def _glyph(ch: str, font: str, after: bool) -> tuple[np.ndarray, float, float] | None:
    """``ch`` rendered beside a digit ("0" then ``ch`` when ``after``, else ``ch`` then "0"): the glyph
    cut to its ink, its height over the digit's, and its top's offset from the digit's top over the
    digit's height (where it sits against the digits)."""
    pair = _rendered(f"0{ch}" if after else f"{ch}0", font)
    if pair is None:
        return None
    runs = _runs(pair)
    if len(runs) < 2:
        return None
    g, h, top = _cut(pair, runs[-1] if after else runs[0])
    _, dh, dtop = _cut(pair, runs[0] if after else runs[-1])
    if h == 0 or dh == 0:
        return None
    return g, h / dh, (top - dtop) / dh


def _placed_fit(glyph: tuple[np.ndarray, float, float], template: tuple[np.ndarray, float, float]) -> float:
    """:func:`_fit` of two cut glyphs, times how alike their height and placement against the digits
    are (a "p" hangs below the digits, a "₽" stands on their line)."""
    g, h, top = glyph
    t, th, ttop = template
    shape = _fit(g.astype(float), t)
    size = min(h, th) / max(h, th)
    place = max(0.0, 1.0 - abs(top - ttop))
    return shape * (size * place) ** 0.5


def _digit_frame(mask: np.ndarray, runs: list[tuple[int, int]]) -> tuple[float, float] | None:
    """(height, top) of the digits among ``runs``: the tallest runs' ink rows (a comma or a period,
    under half the tallest, left out)."""
    cuts = [_cut(mask, r) for r in runs]
    cuts = [(h, top) for _, h, top in cuts if h > 0]
    if not cuts:
        return None
    tallest = max(h for h, _ in cuts)
    tall = [(h, top) for h, top in cuts if h >= 0.5 * tallest]
    return float(np.median([h for h, _ in tall])), float(np.median([t for _, t in tall]))


def reread_price(crop: Image.Image, reading: str) -> tuple[str, float] | None:
    """Re-read a price line: ``crop`` is the line's grey crop, dark text on light (as
    :func:`geolocate.tools.ocr._box_crop` makes it), ``reading`` RapidOCR's text for it.

    The first glyph of the crop (when the reading has something before its number, or nothing
    around it) and the last (something after, or nothing) are compared, over the line's height,
    with each symbol of :data:`SYMBOLS` and with RapidOCR's own character there, each rendered beside
    a digit in every font (:func:`_fonts`) that has it.

    Returns (the reading with its currency symbol, fit 0..1) when a symbol fits that glyph better than
    RapidOCR's character does (:data:`MIN_GAIN`) and well (:data:`MIN_FIT`), else None. Never raises
    on odd input (an empty crop, no number): None.
    """
    if not is_candidate(reading):
        return None
    text = reading.strip()
    if regex.search(r"[€£¥₹]", text):  # in RapidOCR's dictionary and read right: nothing to re-read
        return None
    target = _ink(np.asarray(crop.convert("L")))
    fonts = _fonts()
    if target is None or target.shape[0] < 8 or not fonts:
        return None
    runs = _runs(target)
    if len(runs) < 2:
        return None
    m = _NUMBER.search(text)
    num = m.group(0).strip()
    before, after = _visible(text[: m.start()]).strip(), _visible(text[m.end() :]).strip()
    sides = [s for s, other in (("before", before), ("after", after)) if other] or ["before", "after"]
    best: tuple[float, str] | None = None
    for side in sides:
        x0, x1 = runs[0] if side == "before" else runs[-1]
        cut, h, top = _cut(target, (x0, x1))
        digit = _digit_frame(target, runs[1:] if side == "before" else runs[:-1])
        if digit is None or h == 0:
            continue
        glyph = (cut, h / digit[0], (top - digit[1]) / digit[0])
        own_ch = (before[-1:] or num[:1]) if side == "before" else (after[:1] or num[-1:])

        def fit(ch: str, side: str = side, glyph: tuple = glyph) -> float:
            out = 0.0
            for path, cmap in fonts:
                if ord(ch) in cmap:
                    g = _glyph(ch, path, side == "after")
                    if g is not None:
                        out = max(out, _placed_fit(glyph, g))
            return out

        own = fit(own_ch) if own_ch else 0.0
        gain = MIN_GAIN
        if not (before if side == "before" else after):  # nothing read there: the glyph is a digit
            if x1 - x0 > target.shape[0]:
                continue  # wider than the line is high: digits run together ("50" in bold), no symbol
            own = max([own] + [fit(d) for d in "0123456789"])  # unless a symbol fits clearly better
            gain = MIN_GAIN_BARE
        for sym in SYMBOLS:
            f = fit(sym)
            if f >= MIN_FIT and f >= own + gain and (best is None or f > best[0]):
                spaced = " " if (side == "after" and after.startswith(" ")) or (" " in text) else ""
                best = (f, f"{sym}{spaced}{num}" if side == "before" else f"{num}{spaced}{sym}")
    if best is None:
        return None
    return best[1], round(best[0], 3)
