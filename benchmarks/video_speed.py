"""Keyframing and OCR time for 60 s clips at 720p and 1080p (issue 27: at most 30 s on 2 cores).

Each clip is generated with PyAV (libx264, 30 fps) as a slow pan across a strip of real photos from the
shared OSV-5M sample, with a street sign painted every few seconds; then it is keyframed
(:func:`geolocate.tools.media.keyframes`, default settings) and every keyframe is read by the ``ocr``
tool as one case. Prints a table (seconds, frames kept per minute, signs read) and writes it as JSON.

    python benchmarks/video_speed.py [--seconds 60] [--out benchmarks/results/video_speed.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from geolocate.tools.media import write_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "osv5m-sample" / "images"
SIGNS = ["HELSINKI", "Mannerheimintie", "APTEEKKI", "Kauppatori", "Rautatieasema", "BUSSI 55"]


def make_clip(out: Path, width: int, height: int, seconds: int, fps: int = 30) -> Path:
    """A ``seconds`` s pan across photos of the sample, a sign every ~10 s, at ``width`` x ``height``."""
    photos = sorted(SHARED.glob("*.jpg"))[:8]
    speed = width // 6  # px per second: a slow pan, a new view every ~6 s
    strip = Image.new("RGB", (width + speed * seconds, height))
    x = 0
    i = 0
    while x < strip.width:
        im = Image.open(photos[i % len(photos)]).convert("RGB")
        im = im.resize((int(im.width * height / im.height), height))
        strip.paste(im, (x, 0))
        x += im.width
        i += 1
    d = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=height // 12)
    for k, sx in enumerate(range(width // 2, strip.width - width, speed * 10)):
        text = SIGNS[k % len(SIGNS)]
        box = d.textbbox((sx, height // 3), text, font=font)
        d.rectangle(
            (box[0] - 12, box[1] - 10, box[2] + 12, box[3] + 10), fill="white", outline="black", width=3
        )
        d.text((sx, height // 3), text, fill="black", font=font)
    frames = (
        strip.crop((x, 0, x + width, height)) for x in (int(speed * n / fps) for n in range(seconds * fps))
    )
    write_video(out, frames, fps)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)

    from geolocate.tools.base import ToolContext
    from geolocate.tools.media import load_case
    from geolocate.tools.ocr import OcrInput, OcrTool

    OcrTool().run(OcrInput(), ToolContext(image=load_case([sorted(SHARED.glob("*.jpg"))[0]]).primary))  # warm
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, w, h in (("720p", 1280, 720), ("1080p", 1920, 1080)):
            t = time.perf_counter()
            clip = make_clip(Path(tmp) / f"{name}.mp4", w, h, args.seconds)
            made = time.perf_counter() - t
            t = time.perf_counter()
            case = load_case([clip])
            key_s = time.perf_counter() - t
            t = time.perf_counter()
            out = OcrTool().run(OcrInput(), ToolContext(image=case.primary, case=case))
            ocr_s = time.perf_counter() - t
            frames = len(case.images)
            read = sorted({ln.text for ln in out.lines if ln.text in SIGNS})
            rows.append(
                {
                    "clip": name,
                    "seconds": args.seconds,
                    "keyframe_s": round(key_s, 2),
                    "ocr_s": round(ocr_s, 2),
                    "total_s": round(key_s + ocr_s, 2),
                    "frames_kept": frames,
                    "frames_per_minute": round(frames * 60 / args.seconds, 1),
                    "signs_read": f"{len(read)}/{min(len(SIGNS), args.seconds // 10)}",
                }
            )
            print(f"{name}: clip made in {made:.1f} s; {rows[-1]}", file=sys.stderr, flush=True)
    print("| clip | keyframing s | OCR s | total s | frames kept | per minute | signs read |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['clip']} {r['seconds']} s | {r['keyframe_s']} | {r['ocr_s']} | {r['total_s']} | "
            f"{r['frames_kept']} | {r['frames_per_minute']} | {r['signs_read']} |"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
