"""Every command fault-tested as a new user and an attacker would: bad input, bad arguments, hostile
output targets (device nodes, FIFOs, sockets, /proc), full disks and broken files.

Each case runs the real command line in-process (:func:`geolocate.agent.cli.main`) and asserts:

* the exit code (0 done, 1 a result that could not be written, 2 unusable input or arguments);
* exactly one ``error:`` line on standard error for a failure, matching what the user needs to hear;
* no ``Traceback`` and no ``internal error`` anywhere in the output;
* no harm to files: device nodes and FIFOs are still what they were, no temporary file is left
  behind, stores still open, and the good results beside a bad input are still written.

Device nodes are made with ``os.mknod`` and full disks are small tmpfs mounts when the tests run as
root (CI does); otherwise those cases patch ``fsync`` to fail with ENOSPC or are skipped.

Photos: OSV-5M sample (Mapillary, CC-BY-SA 4.0); OSM: the shared Liechtenstein extract (ODbL).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import itertools
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from geolocate.agent.cli import main
from tests.conftest import OSV, SHARED, render_sign, write_audio_only

ROOT = os.geteuid() == 0
PHOTO_IDS = ["1105240373293389", "1207955469639614", "145383914231693"]


# -- the world the cases run in ---------------------------------------------------------------------
class Env:
    """Files every case may use, made once per module."""

    def __init__(self, d: Path):
        self.d = d
        self.photo = d / "plain.jpg"
        shutil.copy(OSV / "images" / f"{PHOTO_IDS[0]}.jpg", self.photo)
        self.oslo = render_sign(self.photo, ["OSLO"], d / "oslo.jpg")
        self.notimg = d / "notes.jpg"
        self.notimg.write_text("these are my notes, not a photo\n")
        self.empty = d / "empty.jpg"
        self.empty.write_bytes(b"")
        data = self.photo.read_bytes()
        self.trunc = d / "truncated.jpg"
        self.trunc.write_bytes(data[: len(data) // 3])
        self.bomb = d / "bomb.png"
        Image.new("1", (10_000, 9_000)).save(self.bomb)  # 90 megapixels, a few KB
        self.folder = d / "a-folder"
        self.folder.mkdir()
        self.text = d / "plain.txt"
        self.text.write_text("hello\n")
        # a small labelled dataset: three real photos
        self.data = d / "osv"
        (self.data / "images").mkdir(parents=True)
        rows = list(csv.DictReader(open(OSV / "labels.csv", newline="", encoding="utf-8")))
        rows = [r for r in rows if r["id"] in PHOTO_IDS]
        for r in rows:
            shutil.copy(OSV / "images" / f"{r['id']}.jpg", self.data / "images")
        self.labels_rows = rows
        self.labels = self.data / "labels.csv"
        self.write_labels(self.labels, rows)
        self.osm_db = d / "li.sqlite"
        assert main(["osm", "index", str(SHARED / "osm" / "liechtenstein-2013-08-03.osm.pbf"), "--out",
                     str(self.osm_db)]) == 0  # fmt: skip

    @staticmethod
    def write_labels(path: Path, rows: list[dict], cols: list[str] | None = None) -> Path:
        cols = cols or list(rows[0])
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        return path

    def labels_with(self, name: str, text: str) -> Path:
        p = self.d / name
        p.write_text(text, encoding="utf-8")
        return p


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    return Env(tmp_path_factory.mktemp("faults"))


@contextlib.contextmanager
def full_disk(tmp: Path, size: str = "64k"):
    """A folder on a full file system: a small tmpfs mount as root (filled up to the last block),
    else a folder where ``fsync`` fails with ENOSPC (the writer's last step before the rename)."""
    d = tmp / "full"
    d.mkdir(exist_ok=True)
    if ROOT and shutil.which("mount"):
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True
        )
        if r.returncode == 0:
            try:
                yield d
            finally:
                subprocess.run(["umount", "-l", str(d)], capture_output=True)
            return
    import geolocate.tools.files as files

    real = files.os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    files.os.fsync = fsync
    try:
        yield d
    finally:
        files.os.fsync = real


def device(tmp: Path, name: str, minor: int) -> Path:
    """A character device node like /dev/null (1, 3) or /dev/full (1, 7), made in ``tmp``."""
    p = tmp / name
    os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return p


@dataclass
class Case:
    """One fault: the command line, the exit code, what the one error line (or the output, for exit
    0) must say, and optional set-up and checks. Callables take (env, tmp)."""

    id: str
    argv: Callable[[Env, Path], list[str]] | list[str]
    code: int
    says: str = ""
    setup: Callable[[Env, Path], Any] | None = None
    check: Callable[[Env, Path, str, str], None] | None = None
    root: bool = False
    fails_if_disk_full: bool = False
    slow: bool = False
    tags: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return self.id.split(":")[0]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_outcome(case: Case, rc: int, out: str, err: str) -> None:
    assert "Traceback" not in err + out, err[-2000:]
    assert "internal error" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if case.code == 0:
        assert rc == 0, f"exit {rc}: {err[-1000:]}"
        assert not errors, err
        if case.says:
            assert re.search(case.says, out + err, re.I), (out + err)[-1500:]
        return
    assert rc == case.code, f"exit {rc}, wanted {case.code}: {err[-1000:]}"
    assert len(errors) == 1, f"wanted one error line, got: {err!r}"
    if case.says:
        assert re.search(case.says, errors[0], re.I), errors[0]


def no_tmp_left(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.suffixes]
    assert not left, left


def still_char_device(p: Path) -> None:
    assert stat.S_ISCHR(p.lstat().st_mode), f"{p} is no longer a device node"


# -- the cases ------------------------------------------------------------------------------------
def _fifo_reader(p: Path) -> dict:
    got: dict = {}

    def read():
        with open(p, "rb") as f:
            got["data"] = f.read()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    got["thread"] = t
    return got


def _fifo(e: Env, t: Path) -> Path:
    p = t / "pipe"
    os.mkfifo(p)
    e.reader = _fifo_reader(p)  # type: ignore[attr-defined]
    return p


def _check_fifo(e: Env, t: Path, out: str, err: str) -> None:
    e.reader["thread"].join(10)  # type: ignore[attr-defined]
    assert stat.S_ISFIFO((t / "pipe").lstat().st_mode)
    assert e.reader["data"].strip(), "nothing came through the pipe"  # type: ignore[attr-defined]


def _socket(e: Env, t: Path) -> Path:
    p = t / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    e.stack.callback(s.close)  # type: ignore[attr-defined]
    return p


def _ro_folder(e: Env, t: Path) -> Path:
    d = t / "ro"
    d.mkdir()
    if ROOT:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)], capture_output=True
        )
        assert r.returncode == 0, r.stderr
        e.stack.callback(subprocess.run, ["umount", "-l", str(d)], capture_output=True)  # type: ignore[attr-defined]
    else:
        d.chmod(0o555)
    return d


LOCATE = [
    Case("locate:missing", lambda e, t: ["locate", t / "nope.jpg"], 2, "no such file"),
    Case("locate:folder", lambda e, t: ["locate", e.folder], 2, "not a regular file"),
    Case("locate:empty", lambda e, t: ["locate", e.empty], 2, "empty file"),
    Case("locate:not-an-image", lambda e, t: ["locate", e.notimg], 2, "not an image"),
    Case("locate:truncated", lambda e, t: ["locate", e.trunc], 2, "corrupt or truncated"),
    Case("locate:bomb", lambda e, t: ["locate", e.bomb], 2, "megapixels"),
    Case(
        "locate:json-missing-folder",
        lambda e, t: ["locate", e.photo, "--json", t / "no" / "x.json"],
        2,
        "does not exist",
    ),
    Case("locate:json-is-folder", lambda e, t: ["locate", e.photo, "--json", e.folder], 2, "is a folder"),
    Case(
        "locate:json-in-proc",
        lambda e, t: ["locate", e.photo, "--json", "/proc/geolocate-x.json"],
        2,
        "cannot write in /proc",
    ),
    Case(
        "locate:json-in-sys",
        lambda e, t: ["locate", e.photo, "--json", "/sys/geolocate-x.json"],
        2,
        "cannot write in /sys",
    ),
    Case(
        "locate:json-read-only-folder",
        lambda e, t: ["locate", e.photo, "--json", _ro_folder(e, t) / "x.json"],
        2,
        "cannot write in",
        root=True,
    ),
    Case(
        "locate:json-dev-full",
        lambda e, t: ["locate", e.photo, "--json", device(t, "full", 7)],
        1,
        "no space left",
        check=lambda e, t, o, r: still_char_device(t / "full"),
        root=True,
    ),
    Case(
        "locate:json-dev-null",
        lambda e, t: ["locate", e.photo, "--json", device(t, "null", 3)],
        0,
        check=lambda e, t, o, r: still_char_device(t / "null"),
        root=True,
    ),
    Case("locate:json-fifo", lambda e, t: ["locate", e.photo, "--json", _fifo(e, t)], 0, check=_check_fifo),
    Case("locate:json-socket", lambda e, t: ["locate", e.photo, "--json", _socket(e, t)], 2, "is a socket"),
    Case(
        "locate:json-stdout-several",
        lambda e, t: ["locate", e.photo, e.oslo, "--json", "-"],
        0,
        check=lambda e, t, o, r: [json.loads(x) for x in o.splitlines() if x.strip()] and None,
    ),
    Case(
        "locate:several-json-is-file",
        lambda e, t: ["locate", e.photo, e.oslo, "--json", e.text],
        2,
        "must be a folder",
    ),
    Case(
        "locate:several-one-bad",
        lambda e, t: ["locate", e.oslo, e.notimg, "--json", t / "out"],
        2,
        "not an image",
        check=lambda e, t, o, r: json.loads((t / "out" / "oslo.json").read_text()),
    ),
    Case("locate:json-full-disk", None, 1, "no space left", fails_if_disk_full=True),  # argv set below
    Case("locate:tools-empty", lambda e, t: ["locate", e.photo, "--tools", ""], 2, "empty tool mask"),
    Case("locate:tools-commas", lambda e, t: ["locate", e.photo, "--tools", ",,"], 2, "empty tool mask"),
    Case(
        "locate:tools-minus-all",
        lambda e, t: ["locate", e.photo, "--tools", "all,-all"],
        2,
        "not a tool to leave out",
    ),
    Case(
        "locate:tools-unknown",
        lambda e, t: ["locate", e.photo, "--tools", "ocr,sonar"],
        2,
        "unknown tool 'sonar'",
    ),
    Case(
        "locate:tools-unknown-minus",
        lambda e, t: ["locate", e.photo, "--tools", "all,-sonar"],
        2,
        "unknown tool",
    ),
    Case(
        "locate:tools-import-not-tool",
        lambda e, t: ["locate", e.photo, "--tools", "os:path"],
        2,
        "not a geolocate Tool",
    ),
    Case(
        "locate:policy-unknown", lambda e, t: ["locate", e.photo, "--policy", "oracle"], 2, "unknown policy"
    ),
    Case(
        "locate:policy-module", lambda e, t: ["locate", e.photo, "--policy", "os:path"], 2, "unknown policy"
    ),
    Case(
        "locate:policy-function",
        lambda e, t: ["locate", e.photo, "--policy", "json:dumps"],
        2,
        "could not be created",
    ),
    Case(
        "locate:policy-transformers-no-model",
        lambda e, t: ["locate", e.photo, "--policy", "transformers"],
        2,
        "needs --model",
    ),
    Case(
        "locate:policy-openai-no-server",
        lambda e, t: ["locate", e.photo, "--policy", "openai_compatible"],
        2,
        "needs --server",
    ),
    Case(
        "locate:max-turns-zero", lambda e, t: ["locate", e.photo, "--max-turns", "0"], 2, "must be 1 or more"
    ),
    Case(
        "locate:max-turns-text", lambda e, t: ["locate", e.photo, "--max-turns", "many"], 2, "not an integer"
    ),
    Case(
        "locate:max-tool-calls-negative",
        lambda e, t: ["locate", e.photo, "--max-tool-calls", "-1"],
        2,
        "0 or more",
    ),
    Case("locate:tool-timeout-zero", lambda e, t: ["locate", e.photo, "--tool-timeout", "0"], 2, "above 0"),
    Case("locate:tool-timeout-nan", lambda e, t: ["locate", e.photo, "--tool-timeout", "nan"], 2, "finite"),
    Case("locate:tool-timeout-inf", lambda e, t: ["locate", e.photo, "--tool-timeout", "inf"], 2, "finite"),
    Case(
        "locate:nominatim-space",
        lambda e, t: ["locate", e.photo, "--nominatim", "x y:z"],
        2,
        "HOST\\[:PORT\\]",
    ),
    Case(
        "locate:nominatim-port",
        lambda e, t: ["locate", e.photo, "--nominatim", "localhost:99999"],
        2,
        "out of range",
    ),
    Case(
        "locate:nominatim-url",
        lambda e, t: ["locate", e.photo, "--nominatim", "http://x y:z"],
        2,
        "not a URL",
    ),
    Case(
        "locate:overpass-scheme",
        lambda e, t: ["locate", e.photo, "--overpass", "ftp://example.org/api"],
        2,
        "http\\(s\\) URL",
    ),
    Case(
        "locate:osm-db-missing",
        lambda e, t: ["locate", e.photo, "--osm-db", t / "none.sqlite"],
        2,
        "no OSM index",
    ),
    Case(
        "locate:osm-db-not-index",
        lambda e, t: ["locate", e.photo, "--osm-db", e.text],
        2,
        "not a geolocate OSM index",
    ),
    Case("locate:unknown-flag", lambda e, t: ["locate", e.photo, "--sonar"], 2, "unrecognized arguments"),
    Case("locate:no-photo", ["locate"], 2, "required: photo"),
    Case("locate:newline-in-name", lambda e, t: ["locate", shutil.copy(e.photo, t / "a\nb.jpg")], 0),
    Case("locate:heic", lambda e, t: ["locate", _convert(e.oslo, t / "oslo.heic")], 0, "Oslo"),
    Case("locate:16-bit-png", lambda e, t: ["locate", _grey16(e.oslo, t / "oslo16.png")], 0, "Oslo"),
    # OCR input path: a photo of one pixel (nothing to detect), and one of 12 megapixels (detected in tiles)
    Case("locate:one-pixel", lambda e, t: ["locate", _resized(e.oslo, t / "dot.png", (1, 1))], 0, "Answer"),
    Case(
        "locate:12-megapixels",
        lambda e, t: ["locate", _resized(e.oslo, t / "big.jpg", (4000, 3000))],
        0,
        "Oslo",
    ),
    Case(
        "locate:gif-frames",
        lambda e, t: ["locate", _animated(e.oslo, t / "oslo.gif")],
        0,
        "first one is examined",
    ),
    # Text boxes at and over the photo's edges: each box is cut from a region around it, clamped to the
    # photo; a Lao sign goes through the glyph-level Lao/Thai comparison (Tesseract's hOCR output).
    Case(
        "locate:text-over-the-edges",
        lambda e, t: ["locate", _edge_text(e.photo, t / "edge.jpg")],
        0,
        "Answer",
    ),
    Case("locate:lao-sign", lambda e, t: ["locate", _lao_sign(e.photo, t / "lao.jpg")], 0, "Answer"),
]


def _edge_text(src: Path, dst: Path) -> Path:
    """Words cut by every edge of the photo (and one that runs off a corner)."""
    from PIL import ImageDraw, ImageFont

    im = Image.open(src).convert("RGB")
    draw, font = ImageDraw.Draw(im), ImageFont.load_default(size=60)
    w, h = im.size
    for xy in ((-40, -20), (w - 150, h // 2), (w // 3, h - 35), (-60, h // 2), (w - 120, h - 40)):
        draw.rectangle((xy[0] - 10, xy[1] - 10, xy[0] + 330, xy[1] + 80), fill="white")
        draw.text(xy, "BAHNHOF", fill="black", font=font)
    im.save(dst, quality=95)
    return dst


def _lao_sign(src: Path, dst: Path) -> Path:
    """ຮ້ານຂາຍຢາ (pharmacy) on a white board, in Noto Sans Lao when installed (else the reader's font)."""
    from PIL import ImageDraw, ImageFont

    im = Image.open(src).convert("RGB")
    draw = ImageDraw.Draw(im)
    lao = Path("/usr/share/fonts/truetype/noto/NotoSansLao-Regular.ttf")
    font = ImageFont.truetype(str(lao), 56) if lao.exists() else ImageFont.load_default(size=56)
    draw.rectangle((30, 30, 420, 130), fill="white", outline="black", width=3)
    draw.text((50, 40), "ຮ້ານຂາຍຢາ", fill="black", font=font)
    im.save(dst, quality=95)
    return dst


def _resized(src: Path, dst: Path, size: tuple[int, int]) -> Path:
    Image.open(src).convert("RGB").resize(size).save(dst)
    return dst


def _convert(src: Path, dst: Path) -> Path:
    from geolocate.tools.image import register_heif

    register_heif()
    Image.open(src).save(dst)
    return dst


def _grey16(src: Path, dst: Path) -> Path:
    import numpy as np

    a = np.asarray(Image.open(src).convert("L")).astype(np.uint16) * 257
    Image.fromarray(a).save(dst)
    assert Image.open(dst).mode.startswith("I")
    return dst


def _animated(src: Path, dst: Path) -> Path:
    im = Image.open(src).convert("RGB")
    im.save(dst, save_all=True, append_images=[im.rotate(90), im.rotate(180)])
    return dst


def _locate_full_disk(e: Env, t: Path) -> list:
    d = e.stack.enter_context(full_disk(t))  # type: ignore[attr-defined]
    if ROOT:  # fill the file system to its last blocks
        with contextlib.suppress(OSError), open(d / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    return ["locate", e.photo, "--json", d / "t.json"]


LOCATE[next(i for i, c in enumerate(LOCATE) if c.id == "locate:json-full-disk")].argv = _locate_full_disk


def _exif_photo(e: Env, t: Path, lat_dms, lat_ref, lon_dms=((10, 1), (45, 1), (0, 1)), lon_ref=b"E") -> Path:
    import io

    import piexif

    gps = {piexif.GPSIFD.GPSLatitude: lat_dms, piexif.GPSIFD.GPSLongitude: lon_dms}
    if lat_ref is not None:
        gps[piexif.GPSIFD.GPSLatitudeRef] = lat_ref
    if lon_ref is not None:
        gps[piexif.GPSIFD.GPSLongitudeRef] = lon_ref
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"TestCam"}, "GPS": gps})
    buf = io.BytesIO()
    Image.open(e.oslo).save(buf, format="JPEG", quality=95, exif=exif)
    p = t / "gps.jpg"
    p.write_bytes(buf.getvalue())
    return p


def _oslo_answer(e: Env, t: Path, out: str, err: str) -> None:
    """The visible OSLO sign is the answer: the bad GPS was not trusted."""
    m = re.search(r"Answer: ([-\d.]+), ([-\d.]+)", out)
    assert m and abs(float(m.group(1)) - 59.91) < 0.3 and abs(float(m.group(2)) - 10.75) < 0.5, out


METADATA = [
    Case(
        "locate:exif-minutes-75",
        lambda e, t: ["locate", _exif_photo(e, t, ((46, 1), (75, 1), (0, 1)), b"N")],
        0,
        "GPSLatitude: minutes 75 are not below 60",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-seconds-60",
        lambda e, t: ["locate", _exif_photo(e, t, ((46, 1), (5, 1), (60, 1)), b"N")],
        0,
        "seconds 60 are not below 60",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-ref-q",
        lambda e, t: ["locate", _exif_photo(e, t, ((59, 1), (54, 1), (0, 1)), b"Q")],
        0,
        "GPSLatitudeRef is 'Q'",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-ref-missing",
        lambda e, t: ["locate", _exif_photo(e, t, ((59, 1), (54, 1), (0, 1)), None)],
        0,
        "GPSLatitudeRef is missing",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-lon-ref-n",
        lambda e, t: ["locate", _exif_photo(e, t, ((59, 1), (54, 1), (0, 1)), b"N", lon_ref=b"N")],
        0,
        "GPSLongitudeRef is 'N'",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-lat-91",
        lambda e, t: ["locate", _exif_photo(e, t, ((91, 1), (0, 1), (0, 1)), b"N")],
        0,
        "latitude 91 is out of range",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-lon-200",
        lambda e, t: [
            "locate",
            _exif_photo(e, t, ((59, 1), (0, 1), (0, 1)), b"N", lon_dms=((200, 1), (0, 1), (0, 1))),
        ],
        0,
        "longitude 200 is out of range",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-null-island",
        lambda e, t: [
            "locate",
            _exif_photo(e, t, ((0, 1), (0, 1), (0, 1)), b"N", lon_dms=((0, 1), (0, 1), (0, 1))),
        ],
        0,
        "null island",
        check=_oslo_answer,
    ),
    Case(
        "locate:exif-zero-denominator",
        lambda e, t: ["locate", _exif_photo(e, t, ((59, 0), (0, 1), (0, 1)), b"N")],
        0,
        "GPSLatitude",
        check=_oslo_answer,
    ),
]


# -- osm --------------------------------------------------------------------------------------------
LI = "47.10,9.50,47.16,9.56"
OSM = [
    Case("osm:index-missing", lambda e, t: ["osm", "index", t / "none.osm.pbf"], 2, "no such file"),
    Case(
        "osm:index-not-osm",
        lambda e, t: ["osm", "index", e.text, "--out", t / "x.sqlite"],
        2,
        "cannot read the extract",
        check=lambda e, t, o, r: no_tmp_left(t),
    ),
    Case("osm:index-empty", lambda e, t: ["osm", "index", e.empty, "--out", t / "x.sqlite"], 2, ""),
    Case(
        "osm:index-out-missing-folder",
        lambda e, t: ["osm", "index", SHARED / "osm" / "monaco.osm.gz", "--out", t / "no" / "x.sqlite"],
        2,
        "does not exist",
    ),
    Case(
        "osm:index-out-proc",
        lambda e, t: ["osm", "index", SHARED / "osm" / "monaco.osm.gz", "--out", "/proc/x.sqlite"],
        2,
        "cannot write in /proc",
    ),
    Case("osm:index-full-disk", None, 1, "no space left", root=True, slow=True),
    Case("osm:query-no-backend", ["osm", "query", "--feature", "amenity=cafe", "--bbox", LI], 2, ""),
    Case(
        "osm:query-db-missing",
        lambda e, t: ["osm", "query", "--db", t / "x.sqlite", "--feature", "amenity=cafe", "--bbox", LI],
        2,
        "no OSM index",
    ),
    Case(
        "osm:query-db-not-index",
        lambda e, t: ["osm", "query", "--db", e.text, "--feature", "amenity=cafe", "--bbox", LI],
        2,
        "not a geolocate OSM index",
    ),
    Case(
        "osm:double-equals",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "amenity==cafe", "--bbox", LI],
        2,
        "write one operator",
    ),
    Case(
        "osm:equals-tilde",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "name=~Vaduz", "--bbox", LI],
        2,
        "write one operator",
    ),
    Case(
        "osm:empty-feature",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "", "--bbox", LI],
        2,
        "needs at least one tag filter",
    ),
    Case(
        "osm:no-key",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "=cafe", "--bbox", LI],
        2,
        "not allowed",
    ),
    Case(
        "osm:bad-regex",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", 'name~"("', "--bbox", LI],
        2,
        "invalid regex",
    ),
    Case(
        "osm:unclosed-quote",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", 'name~"Vaduz', "--bbox", LI],
        2,
        "not closed",
    ),
    Case(
        "osm:quoted-or-in-regex",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            'name~"^(Vaduz|Schaan)$"',
            "--bbox",
            "47.0,9.4,47.3,9.7",
            "--csv",
        ],
        0,
        "Vaduz|Schaan",
    ),
    Case(
        "osm:max-area-nan",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--max-area-km2",
            "nan",
        ],
        2,
        "finite",
    ),
    Case(
        "osm:max-area-negative",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--max-area-km2",
            "-5",
        ],
        2,
        "above 0",
    ),
    Case(
        "osm:max-area-inf",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--max-area-km2",
            "inf",
        ],
        2,
        "finite",
    ),
    Case(
        "osm:bbox-three",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "amenity=cafe", "--bbox", "1,2,3"],
        2,
        "needs 4 comma-separated numbers",
    ),
    Case(
        "osm:bbox-nan",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox=nan,9.5,47.2,9.6",
        ],
        2,
        "finite",
    ),
    Case(
        "osm:bbox-world",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox=-90,-180,90,180",
        ],
        2,
        "too large|over",
    ),
    Case(
        "osm:bbox-reversed",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            "47.2,9.5,47.1,9.6",
        ],
        2,
        "south < north",
    ),
    Case(
        "osm:around-zero",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--around",
            "47.1,9.5,0",
        ],
        2,
        "radius_m",
    ),
    Case(
        "osm:limit-zero",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--limit",
            "0",
        ],
        2,
        "1 or more",
    ),
    Case(
        "osm:offset-negative",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--offset",
            "-1",
        ],
        2,
        "0 or more",
    ),
    Case(
        "osm:within-nan",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--feature",
            "amenity=bench",
            "--bbox",
            LI,
            "--within",
            "nan",
        ],
        2,
        "finite",
    ),
    Case(
        "osm:two-features-no-within",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--feature",
            "amenity=bench",
            "--bbox",
            LI,
        ],
        2,
        "--within",
    ),
    Case(
        "osm:preset-unknown",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--preset", "volcano", "--bbox", LI],
        2,
        "unknown preset",
    ),
    Case(
        "osm:preset-param-no-equals",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--preset", "road", "lanes", "--bbox", LI],
        2,
        "KEY=VALUE",
    ),
    Case(
        "osm:preset-missing-param",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--preset", "amenity", "--bbox", LI],
        2,
        "takes kind",
    ),
    Case(
        "osm:key-typo",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "amenty=cafe", "--bbox", LI],
        2,
        "near keys",
    ),
    Case(
        "osm:known-key-absent",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--preset",
            "bellingcat:building_1_story",
            "--bbox",
            LI,
        ],
        0,
        "zero results here",
    ),
    Case("osm:query-file-missing", lambda e, t: ["osm", "query", t / "q.json", "--db", e.osm_db], 2, ""),
    Case("osm:query-file-not-json", lambda e, t: ["osm", "query", e.text, "--db", e.osm_db], 2, "invalid"),
    Case(
        "osm:query-file-bad-schema",
        lambda e, t: ["osm", "query", _write(t / "q.json", '{"features": []}'), "--db", e.osm_db],
        2,
        "invalid query",
    ),
    Case(
        "osm:overpass-scheme",
        ["osm", "query", "--overpass", "ftp://x/api", "--feature", "amenity=cafe", "--bbox", LI],
        2,
        "http",
    ),
    Case(
        "osm:overpass-unreachable",
        [
            "osm",
            "query",
            "--overpass",
            "http://127.0.0.1:9/api/interpreter",
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--timeout",
            "3",
        ],
        2,
        "cannot reach",
    ),
    Case(
        "osm:timeout-zero",
        [
            "osm",
            "query",
            "--overpass",
            "http://127.0.0.1:9/api",
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--timeout",
            "0",
        ],
        2,
        "above 0",
    ),
    Case(
        "osm:half-bbox",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "amenity=cafe", "--south", "47.1"],
        2,
        "all four",
    ),
    Case(
        "osm:two-scopes",
        lambda e, t: [
            "osm",
            "query",
            "--db",
            e.osm_db,
            "--feature",
            "amenity=cafe",
            "--bbox",
            LI,
            "--around",
            "47.1,9.5,100",
        ],
        2,
        "exactly one scope",
    ),
    Case(
        "osm:area-unknown",
        lambda e, t: ["osm", "query", "--db", e.osm_db, "--feature", "amenity=cafe", "--area", "Atlantis"],
        2,
        "not in the local extract",
    ),
]


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def _osm_full_disk(e: Env, t: Path) -> list:
    d = e.stack.enter_context(full_disk(t, "256k"))  # type: ignore[attr-defined]
    return ["osm", "index", SHARED / "osm" / "liechtenstein-2013-08-03.osm.pbf", "--out", d / "li.sqlite"]


OSM[next(i for i, c in enumerate(OSM) if c.id == "osm:index-full-disk")].argv = _osm_full_disk
OSM[next(i for i, c in enumerate(OSM) if c.id == "osm:index-full-disk")].check = lambda e, t, o, r: (
    no_tmp_left(t / "full")
)


# -- eval and ablate --------------------------------------------------------------------------------
def _ev(e: Env, labels: Path, *more) -> list:
    return [
        "eval",
        "--labels",
        labels,
        "--images",
        e.data / "images",
        "--out",
        e.d / f"ev-{labels.stem}",
        *more,
    ]


HEAD = "id,latitude,longitude\n"
EVAL = [
    Case("eval:header-only", lambda e, t: _ev(e, e.labels_with("h.csv", HEAD)), 2, "no labels rows"),
    Case("eval:empty-csv", lambda e, t: _ev(e, e.labels_with("empty.csv", "")), 2, "empty file"),
    Case(
        "eval:short-row",
        lambda e, t: _ev(e, e.labels_with("short.csv", HEAD + f"{PHOTO_IDS[0]},59.9\n")),
        2,
        "line 2: 2 field",
    ),
    Case(
        "eval:long-row",
        lambda e, t: _ev(e, e.labels_with("long.csv", HEAD + f"{PHOTO_IDS[0]},59.9,10.7,x\n")),
        2,
        "line 2: 4 field",
    ),
    Case(
        "eval:lat-text",
        lambda e, t: _ev(e, e.labels_with("text.csv", HEAD + f"{PHOTO_IDS[0]},north,10.7\n")),
        2,
        "latitude 'north' is not a number",
    ),
    Case(
        "eval:lat-nan",
        lambda e, t: _ev(e, e.labels_with("nan.csv", HEAD + f"{PHOTO_IDS[0]},nan,10.7\n")),
        2,
        "not a finite number",
    ),
    Case(
        "eval:lat-95",
        lambda e, t: _ev(e, e.labels_with("l95.csv", HEAD + f"{PHOTO_IDS[0]},95,10.7\n")),
        2,
        "out of range",
    ),
    Case(
        "eval:lon-inf",
        lambda e, t: _ev(e, e.labels_with("inf.csv", HEAD + f"{PHOTO_IDS[0]},59,inf\n")),
        2,
        "not a finite number",
    ),
    Case(
        "eval:not-utf8",
        lambda e, t: _ev(e, _bytes(e.d / "latin1.csv", (HEAD + "caf\xe9,1,2\n").encode("latin-1"))),
        2,
        "not UTF-8 text \\(byte offset",
    ),
    Case(
        "eval:missing-column",
        lambda e, t: _ev(e, e.labels_with("cols.csv", "id,lat,lon\n1,2,3\n")),
        2,
        "column 'latitude' not in",
    ),
    Case(
        "eval:empty-image-folder",
        lambda e, t: ["eval", "--labels", e.labels, "--images", e.folder, "--out", t / "o"],
        2,
        "none of the 3 images",
    ),
    Case(
        "eval:all-images-missing",
        lambda e, t: _ev(e, e.labels_with("gone.csv", HEAD + "x1,1,2\nx2,3,4\n")),
        2,
        "none of the 2 images",
    ),
    Case(
        "eval:out-is-file",
        lambda e, t: ["eval", "--labels", e.labels, "--images", e.data / "images", "--out", e.text],
        2,
        "OUT must be a folder",
    ),
    Case(
        "eval:out-in-proc",
        lambda e, t: [
            "eval",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--out",
            "/proc/geolocate-out",
        ],
        2,
        "",
    ),
    Case(
        "eval:duplicate-ids",
        lambda e, t: _ev(e, e.labels_with("dup.csv", HEAD + f"{PHOTO_IDS[0]},1,2\n{PHOTO_IDS[0]},3,4\n")),
        2,
        "appear more than once .*--dedupe first",
    ),
    Case(
        "eval:duplicate-ids-dedupe",
        lambda e, t: [
            *_ev(e, e.labels_with("dup2.csv", HEAD + f"{PHOTO_IDS[0]},1,2\n{PHOTO_IDS[0]},3,4\n")),
            "--dedupe",
            "first",
            "--tools",
            "none",
        ],
        0,
        "geoscore",
    ),
    Case("eval:labels-missing", lambda e, t: _ev(e, t / "none.csv"), 2, "not found"),
    Case(
        "eval:images-missing",
        lambda e, t: ["eval", "--labels", e.labels, "--images", t / "nope", "--out", t / "o"],
        2,
        "not found",
    ),
    Case(
        "eval:pattern-no-id",
        lambda e, t: _ev(e, e.labels, "--pattern", "photo.jpg"),
        2,
        "must contain \\{id\\}",
    ),
    Case(
        "eval:pattern-bad-field", lambda e, t: _ev(e, e.labels, "--pattern", "{idx}.jpg"), 2, "must contain"
    ),
    Case(
        "eval:pattern-bad-brace",
        lambda e, t: _ev(e, e.labels, "--pattern", "{id}{.jpg"),
        2,
        "cannot be filled",
    ),
    Case("eval:limit-zero", lambda e, t: _ev(e, e.labels, "--limit", "0"), 2, "1 or more"),
    Case("eval:workers-zero", lambda e, t: _ev(e, e.labels, "--workers", "0"), 2, "1 or more"),
    Case(
        "eval:dataset-unknown",
        lambda e, t: ["eval", "--dataset", "imagenet", "--out", t / "o"],
        2,
        "unknown dataset layout",
    ),
    Case(
        "eval:osv5m-no-data", lambda e, t: ["eval", "--dataset", "osv5m", "--out", t / "o"], 2, "needs --data"
    ),
    Case("eval:tools-empty", lambda e, t: _ev(e, e.labels, "--tools", ""), 2, "empty tool mask"),
    Case(
        "eval:predictions-no-labels",
        lambda e, t: ["eval", "--predictions", e.labels, "--out", t / "o"],
        2,
        "needs --labels",
    ),
    Case(
        "eval:predictions-nan",
        lambda e, t: [
            "eval",
            "--predictions",
            e.labels_with("p.csv", f"id,lat,lon\n{PHOTO_IDS[0]},nan,1\n{PHOTO_IDS[1]},45,9\n"),
            "--labels",
            e.labels,
            "--out",
            t / "o",
        ],
        0,
        "scored as a miss",
    ),
    Case(
        "eval:predictions-no-columns",
        lambda e, t: [
            "eval",
            "--predictions",
            e.labels_with("p2.csv", "a,b\n1,2\n"),
            "--labels",
            e.labels,
            "--out",
            t / "o",
        ],
        2,
        "no id column",
    ),
    Case(
        "eval:predictions-duplicate",
        lambda e, t: [
            "eval",
            "--predictions",
            e.labels_with("p3.csv", "id,lat,lon\na,1,1\na,2,2\n"),
            "--labels",
            e.labels,
            "--out",
            t / "o",
        ],
        2,
        "more than once",
    ),
    Case("eval:resume-binary-garbage", None, 0, "not UTF-8 text; skipped"),
    Case("eval:resume-bad-lat", None, 0, "lat is 'oops', not a finite number"),
    Case("eval:resume-other-settings", None, 2, "holds results of another run"),
    Case("eval:out-full-disk", None, 1, "no space left"),
]


def _bytes(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _resume(garbage: bytes, tools: str = "none"):
    def argv(e: Env, t: Path) -> list:
        out = t / "run"
        assert main([str(x) for x in ["eval", "--labels", e.labels, "--images", e.data / "images", "--out",
                                      out, "--tools", "none"]]) == 0  # fmt: skip
        with open(out / "trajectories.jsonl", "ab") as f:
            f.write(garbage)
        return ["eval", "--labels", e.labels, "--images", e.data / "images", "--out", out, "--tools", tools]

    return argv


def _eval_full_disk(e: Env, t: Path) -> list:
    d = e.stack.enter_context(full_disk(t, "64k"))  # type: ignore[attr-defined]
    return ["eval", "--labels", e.labels, "--images", e.data / "images", "--out", d / "o", "--tools", "ocr"]


for _c in EVAL:
    if _c.id == "eval:resume-binary-garbage":
        _c.argv = _resume(b'\xff\xfe\x00garbage\x9c\n{"id": 1}\n')
    elif _c.id == "eval:resume-bad-lat":
        _c.argv = _resume(b'{"id": "zz", "lat": "oops", "lon": 1, "pred_lat": 1, "pred_lon": 2}\n')
    elif _c.id == "eval:resume-other-settings":
        _c.argv = _resume(b"", tools="ocr")
    elif _c.id == "eval:out-full-disk":
        _c.argv = _eval_full_disk

ABLATE = [
    Case(
        "ablate:no-arms",
        lambda e, t: ["ablate", "--labels", e.labels, "--images", e.data / "images", "--out", t / "a"],
        2,
        "no arm to run",
    ),
    Case(
        "ablate:loo-no-base",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--leave-one-out",
            "--out",
            t / "a",
        ],
        2,
        "need --base",
    ),
    Case(
        "ablate:unknown-tool",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--tools",
            "sonar",
            "--out",
            t / "a",
        ],
        2,
        "unknown tool",
    ),
    Case(
        "ablate:minus-all",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--tools",
            "-all",
            "--out",
            t / "a",
        ],
        2,
        "not a tool to leave out",
    ),
    Case(
        "ablate:empty-base",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--base",
            "",
            "--leave-one-out",
            "--out",
            t / "a",
        ],
        2,
        "empty tool mask",
    ),
    Case(
        "ablate:compare-missing",
        lambda e, t: ["ablate", "--compare", t / "nothing", "--out", t / "a"],
        2,
        "no results",
    ),
    Case(
        "ablate:compare-empty-dir",
        lambda e, t: ["ablate", "--compare", e.folder, "--out", t / "a"],
        2,
        "no results",
    ),
    Case(
        "ablate:out-is-file",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--tools",
            "none",
            "--out",
            e.text,
        ],
        2,
        "OUT must be a folder",
    ),
    Case(
        "ablate:header-only-labels",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels_with("ah.csv", HEAD),
            "--images",
            e.data / "images",
            "--tools",
            "none",
            "--out",
            t / "a",
        ],
        2,
        "no labels rows",
    ),
    Case(
        "ablate:policy-unknown",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--tools",
            "none",
            "--policy",
            "oracle",
            "--out",
            t / "a",
        ],
        2,
        "unknown policy",
    ),
    Case(
        "ablate:two-arms",
        lambda e, t: [
            "ablate",
            "--labels",
            e.labels,
            "--images",
            e.data / "images",
            "--tools",
            "none",
            "--tools",
            "ocr,clues",
            "--out",
            t / "a",
        ],
        0,
        "ablation.md",
    ),
]

# -- doctor, serve, train -------------------------------------------------------------------------
DOCTOR = [
    Case("doctor:plain", ["doctor"], 0, "geolocate doctor"),
    Case("doctor:json", ["doctor", "--json"], 0, '"part"'),
    Case("doctor:unknown-flag", ["doctor", "--fix-everything"], 2, "unrecognized arguments"),
]

SERVE = [
    Case("serve:public-no-token", ["serve", "--host", "0.0.0.0", "--no-token"], 2, "loopback only"),
    Case("serve:public-without-token", ["serve", "--host", "0.0.0.0"], 2, "reachable from other machines"),
    Case("serve:port-too-big", ["serve", "--port", "70000"], 2, "1-65535"),
    Case("serve:port-text", ["serve", "--port", "http"], 2, "not an integer"),
    Case(
        "serve:store-missing-folder",
        lambda e, t: ["serve", "--store", t / "no" / "s.sqlite"],
        2,
        "does not exist",
    ),
    Case(
        "serve:store-not-a-database",
        lambda e, t: ["serve", "--store", e.text],
        2,
        "cannot open the session store",
    ),
    Case("serve:allow-dir-missing", lambda e, t: ["serve", "--allow-dir", t / "nothing"], 2, "not a folder"),
    Case("serve:allow-host-empty", ["serve", "--allow-host", ""], 2, "host"),
    Case("serve:tiles-not-template", ["serve", "--tiles", "http://tiles.lan/tile.png"], 2, "\\{z\\}"),
]

TRAIN = [
    Case(
        "train:config-missing",
        lambda e, t: ["train", "--config", t / "none.yaml"],
        2,
        "config file not found",
    ),
    Case(
        "train:config-not-yaml",
        lambda e, t: ["train", "--config", _write(t / "c.yaml", "a: [1, 2\n")],
        2,
        "c.yaml",
    ),
    Case(
        "train:config-not-mapping",
        lambda e, t: ["train", "--config", _write(t / "c.yaml", "- 1\n- 2\n")],
        2,
        "c.yaml",
    ),
    Case(
        "train:config-unknown-key",
        lambda e, t: ["train", "--config", _write(t / "c.yaml", "learning_rat: 0.1\n")],
        2,
        "learning_rat",
    ),
    Case(
        "train:config-bad-value",
        lambda e, t: ["train", "--config", _write(t / "c.yaml", "max_turns: many\n")],
        2,
        "max_turns",
    ),
    Case("train:no-config", ["train"], 2, "--config"),
]


# -- session -----------------------------------------------------------------------------------------
@dataclass
class Store:
    path: Path
    review: str  # a session paused at a review of the country (OSLO sign)
    done: str  # a session paused after its answer


@pytest.fixture(scope="module")
def store(env, tmp_path_factory) -> Store:
    from geolocate.agent.session import SessionStore

    d = tmp_path_factory.mktemp("store")
    path = d / "sessions.sqlite"
    with SessionStore(str(path)) as s:
        a = s.create(env.oslo, review=["country"], sid="aa000001").info.id
        b = s.create(env.oslo, sid="aa000002").info.id
    return Store(path, a, b)


def _s(*argv):
    """A session command on a copy of the module's store (cases never share state)."""

    def build(e: Env, t: Path) -> list:
        src = e.store  # type: ignore[attr-defined]
        dst = t / "sessions.sqlite"
        if not dst.exists():
            shutil.copy(src.path, dst)
        return ["session", *[(a(src) if callable(a) else a) for a in argv], "--store", dst]

    return build


REVIEW = lambda s: s.review  # noqa: E731
DONE = lambda s: s.done  # noqa: E731

SESSION = [
    Case(
        "session:new-missing-photo",
        lambda e, t: ["session", "new", t / "x.jpg", "--store", t / "s.sqlite"],
        2,
        "no such file",
    ),
    Case(
        "session:new-not-image",
        lambda e, t: ["session", "new", e.notimg, "--store", t / "s.sqlite"],
        2,
        "not an image",
    ),
    Case(
        "session:new-tools-empty",
        lambda e, t: ["session", "new", e.photo, "--tools", "", "--store", t / "s.sqlite"],
        2,
        "empty tool mask",
    ),
    Case(
        "session:new-review-bogus",
        lambda e, t: ["session", "new", e.photo, "--review", "street", "--store", t / "s.sqlite"],
        2,
        "unknown review level",
    ),
    Case(
        "session:new-store-missing-folder",
        lambda e, t: ["session", "new", e.photo, "--store", t / "no" / "s.sqlite"],
        2,
        "does not exist",
        check=lambda e, t, o, r: (not (t / "no").exists()) or pytest.fail("a folder was created"),
    ),
    Case(
        "session:new-store-proc",
        lambda e, t: ["session", "new", e.photo, "--store", "/proc/s.sqlite"],
        2,
        "cannot",
    ),
    Case(
        "session:new-store-not-db",
        lambda e, t: ["session", "new", e.photo, "--store", e.text],
        2,
        "cannot open the session store",
    ),
    Case("session:new-full-disk", None, 1, "no space left", root=True),
    Case(
        "session:new-postgres-no-extra",
        lambda e, t: ["session", "list", "--store", "postgresql://u@127.0.0.1:1/db"],
        2,
        "cannot open the session store|geolocate-agent\\[postgres\\]",
    ),
    Case(
        "session:list-missing-folder",
        lambda e, t: ["session", "list", "--store", t / "missing" / "dir" / "x.sqlite"],
        2,
        "does not exist",
        check=lambda e, t, o, r: (not (t / "missing").exists()) or pytest.fail("created"),
    ),
    Case("session:show-unknown", _s("show", "ffffffff"), 2, "no session 'ffffffff'"),
    Case("session:show-ambiguous", _s("show", "aa00"), 2, "ambiguous"),
    Case("session:show-empty-id", _s("show", ""), 2, "no session"),
    Case("session:show-bad-checkpoint", _s("show", REVIEW, "--checkpoint", "zzzz"), 2, "checkpoint"),
    Case("session:approve-nothing-pending", _s("approve", DONE), 2, "nothing is pending review"),
    Case("session:reject-no-why", _s("reject", REVIEW), 2, "--why"),
    Case("session:reject-blank-why", _s("reject", REVIEW, "--why", "   "), 2, "reason"),
    Case("session:edit-blank", _s("edit", REVIEW, "--value", " "), 2, "value"),
    Case("session:edit-atlantis", _s("edit", REVIEW, "--value", "Atlantis"), 2, "Atlantis"),
    Case(
        "session:edit-confidence-nan", _s("edit", REVIEW, "--value", "NO", "--confidence", "nan"), 2, "finite"
    ),
    Case(
        "session:edit-confidence-2", _s("edit", REVIEW, "--value", "NO", "--confidence", "2"), 2, "confidence"
    ),
    Case("session:hint-empty", _s("hint", REVIEW, ""), 2, "hint"),
    Case("session:hint-blank", _s("hint", REVIEW, "   \n "), 2, "hint"),
    Case("session:circle-inf", _s("constrain", REVIEW, "--circle=0,0,inf"), 2, "finite"),
    Case("session:circle-nan-lat", _s("constrain", REVIEW, "--circle=nan,0,10"), 2, "finite"),
    Case("session:circle-too-big", _s("constrain", REVIEW, "--circle=0,0,30000"), 2, "half the Earth"),
    Case("session:circle-negative", _s("constrain", REVIEW, "--circle=0,0,-5"), 2, "radius"),
    Case("session:circle-two-numbers", _s("constrain", REVIEW, "--circle=1,2"), 2, "needs 3"),
    Case("session:bbox-three-numbers", _s("constrain", REVIEW, "--bbox=1,2,3"), 2, "needs 4"),
    Case("session:bbox-reversed", _s("constrain", REVIEW, "--bbox=10,0,5,10"), 2, "south < north"),
    Case("session:bbox-nan", _s("constrain", REVIEW, "--bbox=nan,0,5,10"), 2, "finite"),
    Case("session:country-atlantis", _s("constrain", REVIEW, "--country", "Atlantis"), 2, "unknown country"),
    Case("session:not-country-zz", _s("constrain", REVIEW, "--not-country", "ZZ"), 2, "unknown country"),
    Case("session:tool-unknown", _s("tool", REVIEW, "sonar"), 2, "unknown tool"),
    Case(
        "session:tool-args-not-json",
        _s("tool", REVIEW, "gazetteer", "--args", "{query: Oslo}"),
        2,
        "not JSON",
    ),
    Case("session:tool-args-list", _s("tool", REVIEW, "gazetteer", "--args", "[1, 2]"), 2, "JSON object"),
    Case(
        "session:tool-bad-args", _s("tool", REVIEW, "gazetteer", "--args", '{"bogus": 1}'), 2, "bad arguments"
    ),
    Case(
        "session:tool-nan-arg",
        _s("tool", REVIEW, "geocode", "--args", '{"op": "reverse", "lat": NaN, "lon": 1}'),
        2,
        "finite|bad arguments",
    ),
    Case("session:backtrack-bogus", _s("backtrack", REVIEW, "bogus"), 2, "unknown level"),
    Case("session:backtrack-uncommitted", _s("backtrack", REVIEW, "city"), 2, "not committed"),
    Case("session:fork-unknown-checkpoint", _s("fork", REVIEW, "zzzzzzzz"), 2, "checkpoint"),
    Case("session:switch-bogus", _s("switch", REVIEW, "zzzzzzzz"), 2, "checkpoint|branch"),
    Case("session:report-bad-format", _s("report", REVIEW, "--format", "pdf"), 2, "invalid choice"),
    Case("session:report-proc", _s("report", REVIEW, "-o", "/proc/r.md"), 2, "cannot write in /proc"),
    Case("session:report-html-no-out", _s("report", REVIEW, "--format", "html"), 2, "give -o FILE"),
    Case("session:report-folder", lambda e, t: _s("report", REVIEW, "-o", e.folder)(e, t), 2, "is a folder"),
    Case(
        "session:report-dev-full",
        lambda e, t: _s("report", REVIEW, "-o", device(t, "full", 7))(e, t),
        1,
        "no space left",
        check=lambda e, t, o, r: still_char_device(t / "full"),
        root=True,
    ),
    Case(
        "session:report-fifo",
        lambda e, t: _s("report", REVIEW, "-o", _fifo(e, t))(e, t),
        0,
        check=_check_fifo,
    ),
    Case("session:report-stdout", _s("report", REVIEW, "-o", "-"), 0, "# Geolocation report"),
    Case("session:delete-unknown", _s("delete", "ffffffff"), 2, "no session"),
    Case("session:resume-unknown", _s("resume", "ffffffff"), 2, "no session"),
    Case("session:history-unknown", _s("history", "ffffffff"), 2, "no session"),
    Case("session:conclude-twice", None, 2, "concluded"),
]


def _conclude_twice(e: Env, t: Path) -> list:
    argv = _s("conclude", DONE)(e, t)
    assert main([str(a) for a in argv]) == 0
    return _s("hint", DONE, "the sign is red")(e, t)


SESSION[-1].argv = _conclude_twice


def _session_full_disk(e: Env, t: Path) -> list:
    d = e.stack.enter_context(full_disk(t, "48k"))  # type: ignore[attr-defined]
    return ["session", "new", e.oslo, "--store", d / "s.sqlite"]


def _store_openable(e: Env, t: Path, out: str, err: str) -> None:
    """The store on the full disk is not damaged: SQLite's integrity check passes, read-only (the
    disk is still full; once space is freed the session resumes from its last checkpoint)."""
    import sqlite3

    p = t / "full" / "s.sqlite"
    if p.exists() and p.stat().st_size:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()


for _c in SESSION:
    if _c.id == "session:new-full-disk":
        _c.argv, _c.check = _session_full_disk, _store_openable


def _audio_only(t: Path) -> Path:
    """An MP4 holding one AAC stream and no video (PyAV)."""
    return write_audio_only(t / "voice.m4a", frames=5)


def _clip(t: Path, name: str = "clip.mp4", keep: float = 1.0) -> Path:
    """A 2 s H.264 clip (PyAV), cut to ``keep`` of its bytes."""
    import numpy as np

    from geolocate.tools.media import write_video

    frames = [np.full((90, 160, 3), 12 * i, np.uint8) for i in range(20)]
    path = write_video(t / f"whole-{name}", frames, 10)
    data = path.read_bytes()
    (t / name).write_bytes(data[: int(len(data) * keep)])
    return t / name


MEDIA = [
    Case(
        "media:audio-only", lambda e, t: ["locate", _audio_only(t)], 2, r"has no video stream \(audio only\)"
    ),
    Case(
        "media:text-named-mp4",
        lambda e, t: ["locate", _copy(e.text, t / "notes.mp4")],
        2,
        "nor a video FFmpeg can read",
    ),  # fmt: skip
    Case(
        "media:truncated-mp4",
        lambda e, t: ["locate", _clip(t, keep=0.6)],
        2,
        "nor a video FFmpeg can read|has no video stream",
    ),
    Case(
        "media:max-frames-0",
        lambda e, t: ["locate", _clip(t), "--max-frames", "0"],
        2,
        "--max-frames must be at least 1",
    ),  # fmt: skip
    Case(
        "media:frame-max-side-10",
        lambda e, t: ["locate", _clip(t), "--frame-max-side", "10"],
        2,
        "--frame-max-side must be at least 64",
    ),  # fmt: skip
    Case(
        "media:video-too-long",
        lambda e, t: ["locate", _clip(t), "--max-video-duration", "0.5"],
        2,
        "over the limit of 0:00:00",
    ),  # fmt: skip
    Case("media:case-all-bad", lambda e, t: ["locate", "--case", _audio_only(t), e.empty], 2, "empty file"),
    Case(
        "media:session-new-audio-only",
        lambda e, t: ["session", "new", _audio_only(t), "--store", t / "s.sqlite"],
        2,
        "has no video stream",
    ),  # fmt: skip
    Case(
        "media:session-split-missing",
        lambda e, t: ["session", "split", "nosuch", "m2", "--store", t / "s.sqlite"],
        2,
        "no session",
    ),  # fmt: skip
    Case(
        "media:session-relate-missing",
        lambda e, t: ["session", "relate", "nosuch", "other", "--within-km", "5", "--store", t / "s.sqlite"],
        2,
        "no session",
    ),  # fmt: skip
]


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


CASES = LOCATE + METADATA + OSM + EVAL + ABLATE + DOCTOR + SERVE + TRAIN + SESSION + MEDIA


def test_the_fault_suite_covers_every_command_with_150_cases():
    by = {}
    for c in CASES:
        by[c.command] = by.get(c.command, 0) + 1
    assert len(CASES) >= 150 and len({c.id for c in CASES}) == len(CASES)
    assert set(by) >= {"locate", "session", "osm", "eval", "ablate", "train", "serve", "doctor"}, by


def _session_checkpoints(path: Path) -> bytes:
    """Every checkpoint and write of a store, as bytes (to compare before and after a failed move)."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT * FROM checkpoints ORDER BY checkpoint_id").fetchall()
        rows += con.execute("SELECT * FROM writes ORDER BY checkpoint_id, task_id, idx").fetchall()
    finally:
        con.close()
    return repr(rows).encode()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, env, store, tmp_path, capsys, caplog, monkeypatch):
    if case.root and not ROOT:
        pytest.skip("needs root (device nodes, mounts)")
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    env.store = store  # type: ignore[attr-defined]
    if case.id == "session:new-postgres-no-extra":  # the extra is missing: its modules cannot be imported
        monkeypatch.setitem(__import__("sys").modules, "langgraph.checkpoint.postgres", None)
    with contextlib.ExitStack() as stack:
        env.stack = stack  # type: ignore[attr-defined]
        argv = case.argv(env, tmp_path) if callable(case.argv) else case.argv
        copy = tmp_path / "sessions.sqlite"
        before = _session_checkpoints(copy) if copy.exists() and case.code != 0 else None
        rc, out, err = run(argv, capsys)
        err += "".join(f"{r.levelname.lower()}: {r.getMessage()}\n" for r in caplog.records)  # logged
        assert_outcome(case, rc, out, err)
        if case.check is not None:
            case.check(env, tmp_path, out, err)
        if before is not None:
            assert _session_checkpoints(copy) == before, "a failed session move changed the store"
        if case.code == 1 and case.id.endswith("full-disk"):
            no_tmp_left(tmp_path / "full")


@pytest.mark.skipif(not ROOT, reason="a full file system needs a tmpfs mount (root)")
def test_the_word_index_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """The wordfreq index (issue 24) is a new writer in the cache folder: a full disk is one line
    naming the folder, and its temporary file is gone."""
    from geolocate.tools.files import OutputError
    from geolocate.tools.words import build_index

    with full_disk(tmp_path) as d:
        with pytest.raises(OutputError) as e:
            build_index(d / "wordfreq.sqlite")
        assert "\n" not in str(e.value) and ("full" in str(e.value) or "space" in str(e.value))
        assert list(d.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="a full file system needs a tmpfs mount (root)")
def test_the_hunspell_index_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """The Hunspell stem index (issue 24) is another writer in the cache folder: a full disk is one line
    naming the folder, and its temporary file is gone."""
    from geolocate.tools.files import OutputError
    from geolocate.tools.words import build_hunspell_index

    src = tmp_path / "dicts"
    src.mkdir()
    (src / "xx_XX.aff").write_text("SET UTF-8\n")
    words = [
        "".join(t) for t in itertools.islice(itertools.product("abcdefghijklmnopqrstuvwxyz", repeat=4), 50000)
    ]
    (src / "xx_XX.dic").write_text(f"{len(words)}\n" + "".join(f"{w}/A\n" for w in words))  # ~1 MB of stems
    with full_disk(tmp_path) as d:
        with pytest.raises(OutputError) as e:
            build_hunspell_index(d / "hunspell.sqlite", {"xx": src / "xx_XX.dic"})
        assert "\n" not in str(e.value)
        assert list(d.iterdir()) == []


def test_sign_words_go_on_without_dictionaries_when_their_index_cannot_be_built(
    tmp_path, monkeypatch, caplog
):
    """A cache folder that is not a folder: the dictionary lookup says nothing and logs why; the sign's
    language still comes from the frequency lists."""
    import geolocate.tools.words as words
    from geolocate.tools.clues import word_language_clues

    src = tmp_path / "dicts"
    src.mkdir()
    (src / "et_EE.aff").write_text("SET UTF-8\n")
    (src / "et_EE.dic").write_text("1\nhaigla/A\n")
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file")
    monkeypatch.setattr(words, "HUNSPELL_DIRS", (str(src),))
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(not_a_folder))
    for f in (words.hunspell_dictionaries, words._hunspell_connection, words.dictionary_languages):
        f.cache_clear()
    try:
        assert words.dictionary_languages("haigla") == ()
        assert "Hunspell dictionaries not used" in caplog.text
        monkeypatch.delenv("GEOLOCATE_CACHE_DIR")
        assert word_language_clues("Uscita")[0].value == "it"
    finally:
        for f in (words.hunspell_dictionaries, words._hunspell_connection, words.dictionary_languages):
            f.cache_clear()
