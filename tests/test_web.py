"""The web workbench: the real page in a real headless browser (Debian's chromium driven by
Playwright), tokens, and bad uploads.

The browser test installs Debian's ``chromium`` when it runs as root on Debian and it is missing (as
the services tests install PostgreSQL); elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from geolocate.agent.cli import main
from geolocate.agent.options import RunOptions
from geolocate.agent.web.app import create_app
from tests.conftest import REPO

HAN_SIGN = REPO / "examples" / "photos" / "2872700852992867.jpg"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    exe = shutil.which("chromium")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium, as root)")
    return exe


def settled(page, timeout: int = 90_000) -> None:
    """Wait until the page shows its session after a run ended (its status is not ``running``): it
    reloads no more, so what the test types next lands in the page that stays."""
    page.wait_for_function(
        "!document.querySelector('#status').textContent.startsWith('running')", timeout=timeout
    )


@pytest.fixture
def server(workbench):
    """The workbench's URL."""
    return workbench[0]


@pytest.fixture
def workbench(tmp_path, monkeypatch):
    """The workbench on a free loopback port, in this process (uvicorn in a thread): (URL, app)."""
    import uvicorn

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    app = create_app(str(tmp_path / "sessions.sqlite"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    t.join(timeout=10)


def test_review_reject_hint_approve_and_report_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_context(accept_downloads=True).new_page()
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(server + "/")
        page.set_input_files("input[name=photo]", str(HAN_SIGN))
        page.check("input[value=country]")
        page.click("#new-session button[type=submit]")
        page.wait_for_selector("#review", timeout=90_000)
        settled(page)
        assert page.inner_text("#pending-value") == "CN"
        page.fill("#reject-reason", "the shop fronts look Singaporean")
        page.click("#reject")
        page.wait_for_function(
            "document.querySelector('#pending-value')?.textContent == 'SG'", timeout=60_000
        )
        settled(page)
        page.fill("#hint-text", "cars drive on the left")
        page.click("#hint")
        page.wait_for_selector("text=cars drive on the left", timeout=60_000)
        page.wait_for_selector("#approve", timeout=60_000)
        page.click("#approve")
        page.wait_for_selector("#answer", timeout=60_000)
        assert "Singapore" in page.inner_text("#chain")
        assert page.locator("#map .leaflet-interactive").count() > 100  # countries, answer circle, marker
        with page.expect_download() as download:
            page.click("#report-html")
        report = tmp_path / "report.html"
        download.value.save_as(report)
        browser.close()
    html = report.read_text()
    assert "2872700852992867.jpg" in html and "13e4afffa00f3bd2" in html  # the photo's name and SHA-256
    assert "the shop fronts look Singaporean" in html and "cars drive on the left" in html
    assert "Singapore" in html and "data:image/png;base64," in html
    outside = sorted({u for u in requested if not u.startswith(server) and not u.startswith("data:")})
    assert outside == [], f"the page loaded resources from outside 127.0.0.1: {outside}"


def test_a_run_ending_reloads_an_idle_page_but_never_one_being_typed_in(workbench, tmp_path, plain_photo):
    """The page shows a run's end by reloading, unless the user is working in it (typing, a crop drawn
    on the photo): then a notice offers the reload and the work stays. An error is kept on screen."""
    from playwright.sync_api import sync_playwright

    from geolocate.agent.session import SessionStore

    server, app = workbench
    with SessionStore(str(tmp_path / "sessions.sqlite")) as store:
        sid = store.create(str(plain_photo)).info.id
    events = app.state.events

    def loaded(page, action):
        """Do ``action``, which (re)loads the session's page; return once the page's event stream is
        subscribed (its headers came), with a mark in the document that a reload would lose. Returns
        whether the mark was there before (the document was not reloaded)."""
        with page.expect_response(lambda r: r.url.endswith(f"/sessions/{sid}/events"), timeout=30_000):
            action()
        return page.evaluate(
            "(was => { window.sameDocument = true; return was; })(window.sameDocument === true)"
        )

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        loaded(page, lambda: page.goto(f"{server}/sessions/{sid}"))
        assert not page.is_visible("#stale")
        page.type("#relate-other", "half-writ")
        events.publish(sid, {"type": "paused"})
        page.wait_for_selector("#stale", state="visible", timeout=10_000)
        assert page.evaluate("window.sameDocument === true")
        assert page.input_value("#relate-other") == "half-writ"
        assert not loaded(page, lambda: page.click("#stale-reload"))
        assert not page.is_visible("#stale") and page.input_value("#relate-other") == ""

        # nothing typed: the run's end reloads the page
        assert not loaded(page, lambda: events.publish(sid, {"type": "paused"}))
        assert not page.is_visible("#stale")

        # a crop drawn on the photo for the OCR tool is work too (filled in by the page, not typed)
        box = page.locator("#overlay").bounding_box()
        page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.2 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.5 * box["height"], steps=5)
        page.mouse.up()
        assert "region" in page.input_value("#tool-args")
        events.publish(sid, {"type": "paused"})
        page.wait_for_selector("#stale", state="visible", timeout=10_000)
        assert page.evaluate("window.sameDocument === true") and "region" in page.input_value("#tool-args")
        loaded(page, lambda: page.goto(f"{server}/sessions/{sid}"))

        # an error stays on screen to be read
        events.publish(sid, {"type": "error", "text": "the worker process stopped (OSError)"})
        page.wait_for_selector("#stale", state="visible", timeout=10_000)
        assert "the worker process stopped (OSError)" in page.inner_text("#stale")
        assert page.evaluate("window.sameDocument === true")
        browser.close()


def test_a_non_loopback_bind_needs_a_token(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "give --token" in capsys.readouterr().err


def local_client(app) -> TestClient:
    """A TestClient that talks to the app as a browser on this machine would: Host 127.0.0.1, and
    the CSRF token of its first page kept for the forms it posts (:func:`post`)."""
    import re

    client = TestClient(app, base_url="http://127.0.0.1:8765")
    page = client.get("/")
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    client.csrf = m.group(1) if m else ""  # type: ignore[attr-defined]
    return client


def post(client: TestClient, url: str, data: dict | None = None, **kw):
    """POST a form with the client's CSRF token, as the page's forms do."""
    return client.post(url, data={**(data or {}), "csrf_token": client.csrf}, **kw)


def test_a_run_ending_while_its_page_is_rendered_still_gets_the_page_refreshed(tmp_path, monkeypatch):
    """The page reads whether a run is going on before it reads the session. A run that ends between
    the two reads has left its last step in the store (the page shows it), or the page says
    ``running`` (and refreshes when the event stream says it is over); never a mid-run page that
    believes nothing runs. The review form is not offered while a run goes on."""
    import json
    import re

    from geolocate.agent.session import SessionStore

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    with SessionStore(str(tmp_path / "s.sqlite")) as s:
        sid = s.create(str(HAN_SIGN), review=["country"]).info.id
    app = create_app(str(tmp_path / "s.sqlite"))
    client = local_client(app)
    store, running = app.state.store, app.state.running
    view = store.view

    def run_ends_while_read(*args, **kwargs):
        running.pop(sid, None)  # the worker's job ends just as the page reads the session
        return view(*args, **kwargs)

    monkeypatch.setattr(store, "view", run_ends_while_read)
    running[sid] = "move"

    def rendered() -> tuple[dict, str]:
        """The page's data for its script (``session-data``), and the page."""
        page = client.get(f"/sessions/{sid}").text
        data = re.search(r'<script id="session-data" type="application/json">(.*?)</script>', page)
        return json.loads(data.group(1)), page

    cfg, page = rendered()
    assert cfg["running"] == "move" and 'id="review"' not in page
    cfg, page = rendered()  # nothing runs: the pause is offered for review
    assert cfg["running"] is None and 'id="review"' in page


def test_a_wrong_token_gets_401_on_pages_api_and_stream(tmp_path):
    client = TestClient(create_app(str(tmp_path / "s.sqlite"), token="s3cret"), base_url="http://127.0.0.1")
    for path in ("/", "/api/sessions", "/sessions/abcd/events", "/static/app.js", "/openapi.json"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/sessions", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    r = client.get("/?token=s3cret", follow_redirects=False)  # the token leaves the address at once
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "geolocate_token" in r.headers.get("set-cookie", "")
    assert client.get("/api/sessions").status_code == 200  # the cookie from the visit above


def _jpeg(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "gray").save(buf, format="JPEG")
    return buf.getvalue()


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (12_000, 8_000)).save(buf, format="PNG")  # 96 megapixels in a small file
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.jpg", b"hello, not a photo", "not an image"),
        ("cut.jpg", HAN_SIGN.read_bytes()[:20_000], "corrupt or truncated"),
        ("bomb.png", _bomb(), "decompression bomb"),
        ("empty.jpg", b"", "empty file"),
    ],
    ids=["not-an-image", "truncated", "over-80-megapixels", "zero-bytes"],
)
def test_bad_uploads_get_a_clear_message_and_4xx(tmp_path, monkeypatch, name, data, message):
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    client = local_client(create_app(str(tmp_path / "s.sqlite")))
    r = post(client, "/sessions", files={"photo": (name, data, "image/jpeg")}, follow_redirects=False)
    assert 400 <= r.status_code < 500
    assert message in r.text and name in r.text
    assert client.get("/api/sessions").json()["sessions"] == []


def test_a_good_upload_redirects_to_its_session(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    client = local_client(create_app(str(tmp_path / "s.sqlite")))
    photo = {"photo": ("gray.jpg", _jpeg(), "image/jpeg")}
    r = post(client, "/sessions", files=photo, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sessions/")


def test_the_map_draws_the_local_osm_index_around_the_answer(tmp_path, monkeypatch):
    """A session with a local OSM index (Liechtenstein, ODbL) whose hint puts it in Vaduz: the page's
    OSM layer has the roads and buildings around the answer."""
    from tests.conftest import SHARED

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    db = tmp_path / "li.sqlite"
    assert (
        main(["osm", "index", str(SHARED / "osm" / "liechtenstein-2013-08-03.osm.pbf"), "--out", str(db)])
        == 0
    )
    app = create_app(str(tmp_path / "s.sqlite"), osm_db=str(db))
    store = app.state.store
    sid = store.create(HAN_SIGN, tools="all,-exif", options=RunOptions(osm_db=str(db))).info.id
    store.move(sid, {"kind": "hint", "text": "a sign for Vaduz"})
    assert store.view(sid).episode.chain[list(store.view(sid).episode.chain)[-1]].value == "Vaduz"
    client = local_client(app)
    fc = client.get(f"/sessions/{sid}/osm.geojson").json()
    layers = {f["properties"]["layer"] for f in fc["features"]}
    assert {"road", "building"} <= layers and len(fc["features"]) > 50
    assert client.get("/").text.count(str(db)) == 1  # offered to new sessions


def test_osm_presets_fill_the_manual_tool_form(tmp_path, monkeypatch):
    from geolocate.tools.osm.query import FeatureSpec

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    presets = local_client(create_app(str(tmp_path / "s.sqlite"))).get("/api/osm/presets").json()
    assert {"road", "place_of_worship", "fuel", "amenity"} <= set(presets)
    for spec in presets.values():
        FeatureSpec.model_validate(spec)  # each is a valid FeatureQuery feature


def test_a_case_page_plays_to_a_frame_runs_ocr_on_it_and_downloads_the_report(server, tmp_path, plain_photo):
    """A case of a photo and a WebM clip (VP9, which every Chromium build plays) made with PyAV: the
    page shows the strip of frames, the player plays and pauses on a keyframe, OCR runs on that frame
    alone, its boxes are drawn on it, and the report lists every medium and frame."""
    from urllib.parse import quote

    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from geolocate.agent.session import SessionStore
    from tests.conftest import render_sign
    from tests.test_cases import pan_clip

    exe = chromium_path()
    clip = pan_clip(plain_photo, tmp_path / "pan.webm", codec="libvpx-vp9")
    photo = render_sign(plain_photo, ["Mannerheimintie"], tmp_path / "street.jpg")
    with SessionStore(str(tmp_path / "sessions.sqlite")) as store:
        sid = store.create([str(photo), str(clip)]).info.id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_context(accept_downloads=True).new_page()
        page.goto(f"{server}/sessions/{sid}")
        assert page.locator("#case .frame").count() >= 6  # the photo and the clip's keyframes
        page.click("#play-m2")
        page.wait_for_function("document.querySelector('#player-m2').currentTime >= 4.3", timeout=60_000)
        page.click("#pause-m2")
        page.wait_for_function(
            "/^m2@[4-6]\\.[0-9]s$/.test(document.querySelector('#selected-frame').textContent)",
            timeout=10_000,
        )
        frame = page.inner_text("#selected-frame")
        assert page.get_attribute("#photo", "src").endswith(f"/media/{quote(frame)}.jpg")
        page.wait_for_function(
            "(im => im.complete && im.naturalWidth == 480)(document.querySelector('#photo'))"
        )
        page.click("#ocr-frame")
        page.wait_for_selector(f"#timeline >> text={frame}", timeout=90_000)
        settled(page)  # the tool's run has ended: the page reloads no more under the clicks below
        row = page.locator("#timeline tr", has_text=frame).last.inner_text()
        assert "ocr" in row and "HELSINKI" in row
        page.click(f"#case .frame[data-id='{frame}']")
        assert page.locator("#overlay polygon.ocr").count() >= 1  # the frame's own OCR boxes
        try:
            with page.expect_download(timeout=90_000) as download:
                page.click("#report-html")
        except PlaywrightTimeout:  # say whether the server or the page failed (CI failed here once)
            t0 = time.time()
            r = page.request.get(f"{server}/sessions/{sid}/report.html", timeout=120_000)
            got = f"{r.status} {r.headers.get('content-disposition')} in {time.time() - t0:.1f} s"
            raise AssertionError(
                f"no download in 90 s; page {page.url} ({page.inner_text('#status')!r}); "
                f"the report URL fetched directly: {got}"
            ) from None
        report = tmp_path / "case.html"
        download.value.save_as(report)
        page.goto(f"{server}/sessions/{sid}")
        page.wait_for_function(
            "!document.querySelector('#status').textContent.startsWith('running')", timeout=90_000
        )
        page.fill("#split-media", "m1")
        page.click("#split")  # two new chains: the photo alone, the clip alone
        page.wait_for_url(server + "/", timeout=10_000)
        deadline = time.time() + 120
        with SessionStore(str(tmp_path / "sessions.sqlite")) as store:
            while time.time() < deadline and sum(store.ready(s) for s in store.ids()) < 3:
                time.sleep(1)
            parts = [store.view(s, with_branches=False) for s in store.ids() if s != sid]
        browser.close()
    html = report.read_text()
    assert "street.jpg" in html and "pan.webm" in html and frame in html
    assert sorted(Path(v.info.photo).name for v in parts) == ["pan.webm", "street.jpg"]
    assert all(v.info.split_from.startswith(sid) for v in parts)
