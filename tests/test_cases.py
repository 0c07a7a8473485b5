"""Cases of several media (photos and videos) and chronolocation (issue 27).

Every video is generated here with PyAV from a real photo of the shared OSV-5M sample (no downloaded
media): a pan across a street photo with a city sign that is in view only in seconds 4-6, a clip with an
ISO 6709 location tag, and broken media of each kind. Shadows for chronolocation come from pvlib's
high-level ``get_solarposition`` (pandas), not from the sun tool's own SPA calls.
"""

from __future__ import annotations

import fractions
import json
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from geolocate.agent.graph import run_episode
from geolocate.agent.policies.heuristic import HeuristicPolicy
from geolocate.tools.errors import InputImageError, ToolInputError
from geolocate.tools.geo import haversine_km
from geolocate.tools.media import iso6709, keyframes, load_case, load_medium, write_video
from geolocate.tools.registry import ToolSet
from tests.conftest import render_sign, write_audio_only

HELSINKI = (60.1699, 24.9384)
W, H, FPS, SPEED = 480, 270, 10, 150  # frame size, frames per second, pan speed in px/s


def pan_clip(photo: Path, out: Path, sign: str | None = "HELSINKI", location: str | None = None,
             seconds: int = 10, fmt: str | None = None, codec: str = "libx264",
             created: str | None = None) -> Path:  # fmt: skip
    """A ``seconds`` s pan (``SPEED`` px/s) across a strip of the photo; ``sign`` painted on the strip
    where the window shows it whole only from 4 s to 6 s; ``location`` an ISO 6709 container tag."""
    tile = Image.open(photo).convert("RGB")
    tile = tile.resize((int(tile.width * H / tile.height), H))
    strip = Image.new("RGB", (W + SPEED * seconds, H))
    for x in range(0, strip.width, tile.width):
        strip.paste(tile, (x, 0))
    if sign:
        d = ImageDraw.Draw(strip)
        font = ImageFont.load_default(size=36)
        x0, y0, x1, y1 = d.textbbox((0, 0), sign, font=font)
        sx = 6 * SPEED + 12  # the window [x, x + W] holds the sign whole for t in about [4, 6] s
        assert (sx + (x1 - x0) + 12 - W) / SPEED >= 3.5, "the sign must be out of view before 3.5 s"
        d.rectangle((sx - 10, 90 + y0 - 8, sx + x1 + 10, 90 + y1 + 8), fill="white", outline="black", width=3)
        d.text((sx, 90), sign, fill="black", font=font)
    frames = (strip.crop((x, 0, x + W, H)) for x in (int(SPEED * i / FPS) for i in range(seconds * FPS)))
    tags = {k: v for k, v in (("location", location), ("creation_time", created)) if v}
    write_video(out, frames, FPS, tags, fmt, codec=codec)
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory, plain_photo) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "pan": pan_clip(plain_photo, d / "pan.mp4"),
        "tagged": pan_clip(
            plain_photo,
            d / "tagged.mp4",
            sign=None,
            location="+60.1699+024.9384+012.0/",
            created="2024-06-01T09:30:00Z",
        ),  # fmt: skip
        "photo_a": render_sign(plain_photo, ["HELSINKI"], d / "a.jpg"),
        "photo_b": render_sign(plain_photo, ["Mannerheimintie"], d / "b.jpg"),
    }


def test_iso6709_forms():
    assert iso6709("+60.1699+024.9384+012.0/") == (60.1699, 24.9384, 12.0)
    assert iso6709("-3352.000+15112.500/")[:2] == (-33.866667, 151.208333)  # degrees and minutes
    assert iso6709("+403952-0735830/")[:2] == (40.664444, -73.975)  # degrees, minutes, seconds
    for bad in ("", "60.1,24.9", "+1234567+1/", "north"):
        with pytest.raises(ValueError):
            iso6709(bad)


def test_keyframes_of_a_pan(media):
    images, info = keyframes(media["pan"])
    times = [im.timestamp_s for im in images]
    assert info.duration_s == pytest.approx(10.0, abs=0.2) and info.frames_decoded == 100
    assert 5 <= len(images) <= 24 and times[0] == 0.0
    assert all(b - a >= 1.0 - 1e-6 for a, b in zip(times, times[1:])), times
    assert any(4.0 <= t <= 6.0 for t in times), times  # the sign's seconds are sampled
    assert [im.id for im in images][:2] == ["m1@0.0s", f"m1@{times[1]:.1f}s"]
    small, _ = keyframes(media["pan"], max_frames=2, max_side=240)
    assert (small[0].image.width, small[0].image.height) == (240, 135)
    few, _ = keyframes(media["pan"], max_frames=3)
    assert len(few) <= 3 and few[0].timestamp_s == 0.0 and few[-1].timestamp_s > 5


def test_a_still_video_keeps_one_frame(tmp_path, plain_photo):
    frame = Image.open(plain_photo).convert("RGB").resize((W, H))
    out = write_video(tmp_path / "still.mp4", [frame] * (5 * FPS), FPS)
    images, _ = keyframes(out)
    assert len(images) == 1


def _run(paths):
    return run_episode(load_case(paths), ToolSet.parse_spec("all"), HeuristicPolicy())


def test_a_pan_clip_is_located_at_the_city_on_its_sign(media):
    st = _run([media["pan"]])
    assert st.answer is not None and st.answer.source == "answer"
    assert haversine_km(st.answer.lat, st.answer.lon, *HELSINKI) < 25
    ocr = next(e for e in st.evidence if e.tool == "ocr")
    line = next(ln for ln in ocr.output["lines"] if ln["text"].upper() == "HELSINKI")
    seen = sorted(float(i.split("@")[1].rstrip("s")) for i in line["media"])
    assert seen and 3.0 <= seen[0] and seen[-1] <= 7.0, seen  # read only where the sign is in view
    assert st.media[0]["kind"] == "video" and st.media[0]["frames"]
    assert "HELSINKI" in ocr.summary and "m1@" in ocr.summary


def test_a_clip_with_an_iso6709_tag_is_answered_there_citing_it(media):
    st = _run([media["tagged"]])
    assert haversine_km(st.answer.lat, st.answer.lon, *HELSINKI) < 1
    exif = next(e for e in st.evidence if e.tool == "exif")
    assert exif.output["lat"] == pytest.approx(60.1699) and "container tag location" in exif.output["source"]
    assert exif.id in st.chain[next(iter(st.chain))].evidence or any(
        exif.id in c.evidence for c in st.chain.values()
    )


def test_two_photos_and_a_clip_make_one_chain_citing_photos_and_frames(media):
    st = _run([media["photo_a"], media["photo_b"], media["pan"]])
    assert [m["kind"] for m in st.media] == ["photo", "photo", "video"]
    assert haversine_km(st.answer.lat, st.answer.lon, *HELSINKI) < 25
    ocr = next(e for e in st.evidence if e.tool == "ocr")
    line = next(ln for ln in ocr.output["lines"] if ln["text"].upper() == "HELSINKI")
    assert "m1" in line["media"] and any(i.startswith("m3@") for i in line["media"])
    assert line["score"] >= max(0.9, 0.0)  # agreement across images
    street = next(ln for ln in ocr.output["lines"] if ln["text"] == "Mannerheimintie")
    assert street["media"] == ["m2"]
    # a tool pointed at one frame looks at that frame only
    from geolocate.tools.base import ToolContext
    from geolocate.tools.ocr import OcrInput, OcrTool

    case = load_case([media["photo_a"], media["photo_b"], media["pan"]])
    ctx = ToolContext(image=case.primary, case=case)
    only_b = OcrTool().run(OcrInput(media=["m2"]), ctx)
    assert {ln.text for ln in only_b.lines} == {"Mannerheimintie"}
    with pytest.raises(ToolInputError, match="no medium or frame 'm9'"):
        OcrTool().run(OcrInput(media=["m9"]), ctx)


def test_the_prompt_shows_the_case_as_a_list_of_media(media):
    from geolocate.agent.episode import Episode
    from geolocate.prompts.render import MAX_CASE_IMAGES, build_messages, episode_images, image_refs

    ep = Episode(load_case([media["photo_a"], media["pan"]]), ToolSet.parse_spec("ocr,clues"))
    msgs = build_messages(ep.state, [])
    refs = image_refs(msgs)
    assert refs[0] == "m1" and all(r.startswith("m2@") for r in refs[1:]) and len(refs) <= MAX_CASE_IMAGES
    text = msgs[1]["content"][-1]["text"]
    assert "- m1: photo" in text and "- m2: video, 10.0 s, keyframes m2@0.0s" in text
    images = episode_images(ep, msgs, 200_000)
    assert len(images) == len(refs) and images[1].size[0] > 0


def test_sessions_hold_a_case_split_it_and_report_every_medium(tmp_path, media, monkeypatch):
    from geolocate.agent.report import render_report
    from geolocate.agent.session import SessionError, SessionStore

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    paths = [shutil.copy(media[k], work / media[k].name) for k in ("photo_a", "photo_b", "pan")]
    with SessionStore() as store:
        v = store.create([str(p) for p in paths])
        assert [m["kind"] for m in v.info.media] == ["photo", "photo", "video"]
        assert haversine_km(v.episode.answer.lat, v.episode.answer.lon, *HELSINKI) < 25
        Path(paths[2]).unlink()  # resumed and split from the store's copies
        with pytest.raises(SessionError, match="no medium m7"):
            store.split(v.info.id, ["m7"])
        with pytest.raises(SessionError, match="not none or all"):
            store.split(v.info.id, ["m1", "m2", "m3"])
        b, rest = store.split(v.info.id, ["m2"])
        assert b.info.media == [] and Path(b.info.photo).name == "b.jpg"  # one photo: a plain session
        assert [m["kind"] for m in rest.info.media] == ["photo", "video"] and rest.info.split_from
        assert b.episode.chain != rest.episode.chain  # two chains
        assert haversine_km(rest.episode.answer.lat, rest.episode.answer.lon, *HELSINKI) < 25
        # b.jpg alone (a Finnish street name, no city) answers Finland-wide; related, within 5 km
        assert b.episode.answer.radius_km > 100 and "city" not in {lv.value for lv in b.episode.chain}
        with pytest.raises(SessionError, match="two different sessions"):
            store.relate(b.info.id, b.info.id, 5)
        with pytest.raises(SessionError, match="positive number"):
            store.relate(b.info.id, rest.info.id, -1)
        related = store.relate(b.info.id, rest.info.id, 5)
        a = rest.episode.answer
        assert (
            haversine_km(related.episode.answer.lat, related.episode.answer.lon, a.lat, a.lon)
            <= 5 + a.radius_km
        )
        assert "within 5 km of session" in related.episode.evidence[-1].summary or any(
            "within 5 km of session" in e.summary for e in related.episode.evidence
        )
        text = render_report(store, v.info.id, "md")
        for row in (
            "| m1 | a\\.jpg | photo |",
            "| m3 | pan\\.mp4 | video |",
            "| m3@0\\.0s | pan\\.mp4 | frame | 0.00 s |",
        ):
            assert row in text
        gj = json.loads(render_report(store, v.info.id, "geojson"))
        assert [r["id"] for r in gj["properties"]["media"]][:3] == ["m1", "m2", "m3"]
        kml = render_report(store, v.info.id, "kml")
        assert 'name="geolocate_media"' in kml and "m3@0.0s" in kml


def _write(path: Path, n: int = 20, fmt: str | None = None, opts: dict | None = None) -> Path:
    frames = []
    for i in range(n):
        a = np.zeros((120, 160, 3), np.uint8)
        a[:, : 8 * (i + 1)] = 255  # a moving edge: every frame differs
        frames.append(a)
    return write_video(path, frames, FPS, fmt=fmt, options=opts)


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    out = {}
    out["audio only"] = write_audio_only(d / "audio.m4a")
    c = av.open(str(d / "long.mp4"), "w")  # 4 hours: two frames, 14,400 s apart
    s = c.add_stream("libx264", rate=1)
    s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
    s.codec_context.time_base = fractions.Fraction(1, 1)
    for pts in (0, 14_400):
        f = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8), format="rgb24")
        f.pts, f.time_base = pts, fractions.Fraction(1, 1)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    out["4 hours"] = d / "long.mp4"
    data = _write(d / "ok.mp4").read_bytes()
    (d / "trunc.mp4").write_bytes(data[: len(data) * 6 // 10])
    out["truncated mp4"] = d / "trunc.mp4"
    data = bytearray(_write(d / "fs.mp4", opts={"movflags": "faststart"}).read_bytes())
    i = data.find(b"mdat")
    for k in range(i + 4, len(data)):
        data[k] = (k * 7919) % 251
    (d / "garbled.mp4").write_bytes(bytes(data))
    out["no decodable frame"] = d / "garbled.mp4"
    (d / "notes.mp4").write_text("not a video at all\n" * 50)
    out["wrong extension (text)"] = d / "notes.mp4"
    (d / "empty.mov").write_bytes(b"")
    out["empty"] = d / "empty.mov"
    return out


@pytest.mark.parametrize(
    "kind, message",
    [
        ("audio only", "has no video stream (audio only)"),
        ("4 hours", "the video is 4:00:01 long, over the limit of 1:00:00 (--max-video-duration)"),
        ("truncated mp4", "not an image, nor a video FFmpeg can read (Invalid data found"),
        ("no decodable frame", "no decodable video frame"),
        ("wrong extension (text)", "nor a video FFmpeg can read"),
        ("empty", "empty file"),
    ],
)
def test_bad_media_end_with_one_line_errors(bad_media, kind, message):
    with pytest.raises(InputImageError) as e:
        load_medium(bad_media[kind])
    assert message in str(e.value) and "\n" not in str(e.value) and bad_media[kind].name in str(e.value)


def test_a_truncated_mkv_keeps_its_frames_with_a_note(tmp_path):
    data = _write(tmp_path / "ok.mkv", n=40, fmt="matroska").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    m = load_medium(tmp_path / "cut.mkv")
    assert m.kind == "video" and m.images and "truncated?" in m.video.notes[0]


def test_a_video_named_jpg_and_a_photo_named_mp4_are_told_apart_by_content(tmp_path, media, plain_photo):
    shutil.copy(media["pan"], tmp_path / "clip.jpg")
    shutil.copy(plain_photo, tmp_path / "photo.mp4")
    assert load_medium(tmp_path / "clip.jpg").kind == "video"
    assert load_medium(tmp_path / "photo.mp4").kind == "photo"


def test_a_case_with_one_bad_medium_runs_on_the_others(tmp_path, media, bad_media, capsys):
    from geolocate.agent.cli import main

    out = tmp_path / "case.json"
    rc = main(
        ["locate", "--case", str(bad_media["audio only"]), str(media["pan"]), "--json", str(out), "--quiet"]
    )
    assert rc == 2  # the bad medium is reported ...
    err = capsys.readouterr().err
    assert "audio.m4a: has no video stream (audio only)" in err
    st = json.loads(out.read_text())  # ... and the case ran on the clip
    assert haversine_km(st["answer"]["lat"], st["answer"]["lon"], *HELSINKI) < 25
    assert any("medium not used: " in w and "audio.m4a" in w for w in st["warnings"])
    assert [m["id"] for m in st["media"]] == ["m2"]  # ids keep the order given on the command line


def test_locate_cli_takes_a_video_alone_and_max_frames(tmp_path, media):
    from geolocate.agent.cli import main

    out = tmp_path / "v.json"
    assert main(["locate", str(media["pan"]), "--max-frames", "4", "--json", str(out), "--quiet"]) == 0
    st = json.loads(out.read_text())
    assert len(st["media"][0]["frames"]) <= 4
    assert main(["locate", str(media["pan"]), "--max-frames", "0", "--quiet"]) == 2
    assert main(["locate", str(media["pan"]), "--frame-max-side", "10", "--quiet"]) == 2


def test_session_new_on_a_case_with_a_bad_medium_says_so_and_runs(
    tmp_path, media, bad_media, capsys, monkeypatch
):
    from geolocate.agent.cli import main
    from geolocate.agent.session import SessionStore

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    rc = main(["session", "new", str(bad_media["4 hours"]), str(media["photo_a"]), "--quiet"])
    assert rc == 2 and "long.mp4: the video is 4:00:01 long" in capsys.readouterr().err
    with SessionStore() as store:
        (sid,) = store.ids()
        ep = store.view(sid).episode
    assert ep.answer is not None and haversine_km(ep.answer.lat, ep.answer.lon, *HELSINKI) < 25
    assert any(w.startswith("medium not used: ") for w in ep.warnings)


def test_reports_show_when_beside_where(tmp_path, media, monkeypatch):
    from geolocate.agent.report import render_report
    from geolocate.agent.session import SessionStore

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    with SessionStore() as store:
        v = store.create([str(media["photo_a"]), str(media["tagged"])])
        exif = next(e for e in v.episode.evidence if e.tool == "exif")
        assert exif.output["timestamp"] == "2024:06:01 09:30:00+00:00"
        assert "utc_offset" not in exif.output  # QuickTime's creation_time is UTC: no camera zone in it
        length, bearing, _ = _shadow(*HELSINKI, "2024-06-01 09:30")
        args = {"place": list(HELSINKI), "date": "2024-06-01", "object_height": 1.0, "shadow_length": length,
                "length_sigma": 0.03 * length, "shadow_azimuth_deg": bearing}  # fmt: skip
        v = store.move(v.info.id, {"kind": "tool", "name": "sun", "arguments": args})
        sun = next(e for e in v.episode.evidence if e.tool == "sun")
        w = sun.output["windows"]
        assert len(w) == 1 and w[0]["start_utc"] <= "2024-06-01T09:30:00Z" <= w[0]["end_utc"]
        assert w[0]["local_best"].startswith("2024-06-01T12:") and w[0]["local_best"].endswith("+03:00")
        assert v.episode.answer is not None and v.episode.constraints() == []  # a time, not a region
        text = render_report(store, v.info.id, "md")
    when = text.split("## When", 1)[1].split("##", 1)[0].replace("\\", "")  # Markdown escapes off
    assert "capture time in the metadata" in when and "2024:06:01 09:30:00+00:00" in when
    assert "sun and shadows" in when and "times that fit (Europe/Helsinki)" in when


# -- chronolocation ---------------------------------------------------------------------------------
PLACES = [  # (lat, lon, true UTC time)
    (51.50, -0.12, "2024-06-21 14:30"),
    (59.91, 10.75, "2023-09-10 08:05"),
    (-33.87, 151.21, "2024-01-15 03:00"),
    (35.68, 139.69, "2022-12-01 01:30"),
    (40.71, -74.00, "2024-03-20 16:45"),
    (-1.29, 36.82, "2024-07-04 06:10"),
    (19.43, -99.13, "2023-05-05 19:20"),
    (64.15, -21.94, "2024-02-10 13:00"),
    (-22.91, -43.17, "2024-10-01 12:40"),
]


def _shadow(lat: float, lon: float, when: str) -> tuple[float, float, object]:
    """Shadow length of a 1 m pole and the shadow's bearing at ``when`` (pvlib, pandas API)."""
    import pandas as pd
    from pvlib.solarposition import get_solarposition

    t = pd.Timestamp(when, tz="UTC")
    sp = get_solarposition(pd.DatetimeIndex([t]), lat, lon)
    el, az = float(sp.apparent_elevation.iloc[0]), float(sp.azimuth.iloc[0])
    return 1.0 / math.tan(math.radians(el)), (az + 180.0) % 360.0, t


@pytest.mark.parametrize("lat, lon, when", PLACES)
def test_chronolocation_window_holds_the_true_time_and_moves_with_longitude(lat, lon, when):
    from zoneinfo import ZoneInfo

    import pandas as pd

    from geolocate.tools.earth_grid import timezone_finder
    from geolocate.tools.sun import SunInput, SunTool

    length, bearing, t = _shadow(lat, lon, when)
    local_date = t.tz_convert(ZoneInfo(timezone_finder().timezone_at(lng=lon, lat=lat))).date()

    def solve(lon_: float):
        args = SunInput(place=(lat, lon_), date=local_date, object_height=1.0, shadow_length=length,
                        length_sigma=0.03 * length, shadow_azimuth_deg=bearing)  # fmt: skip
        return SunTool().run(args, None)

    out = solve(lon)
    stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert any(w.start_utc <= stamp <= w.end_utc for w in out.windows), (stamp, out.windows)
    best = pd.Timestamp(out.windows[0].best_utc)
    assert abs((best - t).total_seconds()) < 15 * 60
    assert out.windows[0].local_best.endswith(t.tz_convert(out.timezone).strftime("%z")[:3] + ":" +
                                              t.tz_convert(out.timezone).strftime("%z")[3:])  # fmt: skip
    east = lon + 30 if lon < 150 else lon - 30
    moved = solve(east)
    shift_h = (pd.Timestamp(moved.windows[0].best_utc) - best).total_seconds() / 3600
    assert shift_h == pytest.approx(-2.0 if east > lon else 2.0, abs=0.25)  # 15 degrees an hour
    assert "times that fit" in out.summary()


def test_chronolocation_with_an_elevation_alone_gives_morning_and_afternoon():
    from datetime import date

    from geolocate.tools.sun import SunInput, chronolocate

    out = chronolocate(SunInput(place=(48.86, 2.35), date=date(2024, 6, 1), sun_elevation_deg=30.0,
                                elevation_sigma_deg=1.0))  # fmt: skip
    assert len(out.windows) == 2
    assert out.windows[0].local_best < out.windows[1].local_best and out.timezone == "Europe/Paris"
    assert out.region["coordinates"] == []  # no place constraint from a time solution
    week = chronolocate(SunInput(place=(48.86, 2.35), date=date(2024, 6, 1), date_to=date(2024, 6, 7),
                                 sun_elevation_deg=30.0, elevation_sigma_deg=1.0))  # fmt: skip
    assert len(week.windows) == 14
    with pytest.raises(ValueError, match="leave out time_utc"):
        SunInput(place=(48.86, 2.35), date=date(2024, 6, 1), time_utc="2024-06-01T10:00:00", night=True)
    with pytest.raises(ValueError, match="needs both place and date"):
        SunInput(place=(48.86, 2.35), time_utc="2024-06-01T10:00:00", night=True)
