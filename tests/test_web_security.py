"""The workbench against other web pages and hostile requests: another origin in a real browser,
DNS rebinding (foreign Host headers), CSRF tokens, server-side paths, hostile uploads, and the API
driven from its own OpenAPI schema by schemathesis.

Photo: OSV-5M sample (Mapillary, CC-BY-SA 4.0).
"""

from __future__ import annotations

import http.server
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from geolocate.agent.web.app import create_app
from tests.conftest import OSV
from tests.test_web import CHROMIUM_ARGS, HAN_SIGN, chromium_path, local_client, post

PHOTO = OSV / "images" / "1105240373293389.jpg"


def store_bytes(path: Path) -> bytes:
    """Every checkpoint, write and stored photo of a session store (to compare before and after)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT * FROM checkpoints ORDER BY thread_id, checkpoint_id").fetchall()
        rows += con.execute("SELECT * FROM writes ORDER BY thread_id, checkpoint_id, task_id, idx").fetchall()
        rows += con.execute("SELECT sha256 FROM geolocate_media ORDER BY sha256").fetchall()
    finally:
        con.close()
    return repr(rows).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app, port: int):
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.05)
    return srv, t


ATTACK = """<!doctype html><html><body>
<iframe name="sink" style="display:none"></iframe>
{forms}
<script>
document.cookie = "geolocate_browser=attackerchosenvalueattackerchosenvalue12345; path=/";
const routes = {routes};
for (const [url, body] of routes) {{
  fetch(url, {{method: "POST", mode: "no-cors", credentials: "include",
               body: new URLSearchParams(body)}}).catch(() => {{}});
  fetch(url, {{method: "POST", credentials: "include", headers: {{"X-CSRF-Token": "guess"}},
               body: new URLSearchParams(body)}}).catch(() => {{}});
}}
document.querySelectorAll("form").forEach((f) => f.submit());
document.title = "sent";
</script></body></html>"""


def _attack_page(base: str, sid: str, head: str) -> str:
    posts = [
        (f"{base}/sessions/{sid}/delete", {}),
        (f"{base}/sessions/{sid}/move", {"kind": "approve"}),
        (f"{base}/sessions/{sid}/move", {"kind": "reject", "reason": "attacker"}),
        (f"{base}/sessions/{sid}/move", {"kind": "hint", "text": "the sign says Paris"}),
        (f"{base}/sessions/{sid}/move", {"kind": "conclude"}),
        (f"{base}/sessions/{sid}/move", {"kind": "backtrack", "level": "continent"}),
        (f"{base}/sessions/{sid}/move", {"kind": "tool", "name": "gazetteer", "arguments": '{"query": "x"}'}),
        (f"{base}/sessions/{sid}/fork", {"checkpoint": head}),
        (f"{base}/sessions/{sid}/switch", {"branch": head}),
        (f"{base}/sessions", {"path": "/etc/hostname", "tools": "all"}),
        (f"{base}/sessions", {"path": str(PHOTO), "tools": "all"}),
    ]
    forms = []
    for i, (url, body) in enumerate(posts):
        fields = "".join(f'<input name="{k}" value="{v}">' for k, v in body.items())
        enc = ' enctype="multipart/form-data"' if url.endswith("/sessions") else ""
        forms.append(f'<form id="f{i}" method="post" action="{url}" target="sink"{enc}>{fields}</form>')
    import json

    return ATTACK.format(forms="\n".join(forms), routes=json.dumps(posts))


@pytest.mark.timeout(300)
def test_another_origin_cannot_drive_the_workbench_in_a_real_browser(tmp_path, monkeypatch):
    """A browser that has opened the workbench (its token cookie set) visits a page of another
    loopback origin, which auto-submits forms and runs ``fetch`` against every mutating route,
    overwrites the browser cookie and guesses a CSRF token: afterwards the session list and every
    checkpoint are byte-identical, and nothing was read from the server's disk."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    exe = chromium_path()
    store_path = tmp_path / "sessions.sqlite"
    app = create_app(str(store_path), token="s3cret-token", allow_dirs=[str(OSV)])
    sid = app.state.store.create(HAN_SIGN, review=["country"]).info.id
    head = app.state.store.view(sid).checkpoint
    port, evil_port = free_port(), free_port()
    srv, t = serve(app, port)
    base = f"http://127.0.0.1:{port}"
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    (evil_dir / "index.html").write_text(_attack_page(base, sid, head))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(evil_dir), **k)  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", evil_port), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        before = store_bytes(store_path)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()
            page.goto(f"{base}/?token=s3cret-token")  # the victim's own visit: cookie set
            page.wait_for_selector("#sessions")
            assert sid in page.content()
            page.goto(f"http://127.0.0.1:{evil_port}/index.html")
            page.wait_for_function("document.title == 'sent'", timeout=30_000)
            time.sleep(3)  # let every form and fetch reach the server
            browser.close()
        time.sleep(1)
        assert store_bytes(store_path) == before
        assert app.state.store.ids() == [sid]
    finally:
        evil.shutdown()
        srv.should_exit = True
        t.join(timeout=10)


@pytest.mark.parametrize("path", ["/", "/api/sessions", "/sessions/abcd1234/events", "/static/app.js",
                                  "/openapi.json", "/sessions/abcd1234/photo"])  # fmt: skip
def test_a_foreign_host_gets_4xx_on_pages_api_stream_and_static(tmp_path, path):
    """DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 sends its own Host."""
    client = TestClient(create_app(str(tmp_path / "s.sqlite")), base_url="http://127.0.0.1:8765")
    for host in ("evil.example:8765", "evil.example", "127.0.0.1.evil.example", "localhost.:8765", ""):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 400, (host, r.status_code)
    assert client.get("/", headers={"Host": "[::1]:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_state_changing_requests_need_the_same_origin_and_a_csrf_token(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    app = create_app(str(tmp_path / "s.sqlite"))
    client = local_client(app)
    photo = {"photo": ("p.jpg", PHOTO.read_bytes(), "image/jpeg")}
    for headers in ({"Origin": "http://127.0.0.1:9999"}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):  # fmt: skip
        r = post(client, "/sessions", files=photo, headers=headers, follow_redirects=False)
        assert r.status_code == 403, headers
    r = client.post("/sessions", files=photo, follow_redirects=False)  # no token
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/sessions", data={"csrf_token": "0" * 64}, files=photo, follow_redirects=False)
    assert r.status_code == 403
    other = local_client(app)  # another browser's token is not this one's
    r = client.post("/sessions", data={"csrf_token": other.csrf}, files=photo, follow_redirects=False)
    assert r.status_code == 403
    assert app.state.store.ids() == []
    r = post(
        client,
        "/sessions",
        files=photo,
        headers={"Origin": "http://127.0.0.1:8765", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_server_side_paths_are_off_by_default_and_say_nothing_about_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    client = local_client(create_app(str(tmp_path / "s.sqlite")))
    r = post(client, "/sessions", {"path": str(PHOTO)})
    assert r.status_code == 400 and "server-side paths are off" in r.text
    allowed = tmp_path / "cases"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("not a photo")
    (allowed / "secret.jpg").write_bytes(PHOTO.read_bytes())
    (allowed / "secret.jpg").chmod(0)
    (allowed / "link.jpg").symlink_to(PHOTO)  # a link out of the allowed folder
    client = local_client(create_app(str(tmp_path / "s2.sqlite"), allow_dirs=[str(allowed)]))
    said = set()
    bad = [allowed / "missing.jpg", allowed / "notes.txt", PHOTO, allowed / "link.jpg", Path("/etc/passwd"),
           allowed / ".." / "s.sqlite"]  # fmt: skip
    for p in bad:
        r = post(client, "/sessions", {"path": str(p)})
        assert r.status_code == 400
        said.add(re.search(r'class="error"[^>]*>(.*?)</div>', r.text, re.S).group(1).replace(str(p), "PATH"))
    assert len(said) == 1, said  # one message for missing, unreadable, outside and not-an-image
    r = post(client, "/sessions", {"osm_db": "/etc/passwd"}, files={"photo": ("p.jpg", PHOTO.read_bytes())})
    assert r.status_code == 400 and "under the allowed folders" in r.text or "paths are off" in r.text


NAMES = [
    "..", "", ".", "../../../etc/passwd", "a\x00b.jpg", "con\r\nsole.jpg", "\u202eevil.jpg",
    "x" * 500 + ".jpg", "/", "\\..\\..\\win.ini",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_any_upload_name_is_sanitised_and_never_a_500(tmp_path, monkeypatch, name):
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    client = local_client(create_app(str(tmp_path / "s.sqlite")))
    r = post(
        client, "/sessions", files={"photo": (name, PHOTO.read_bytes(), "image/jpeg")}, follow_redirects=False
    )
    assert r.status_code == 303 or 400 <= r.status_code < 500, r.status_code
    uploads = tmp_path / "home" / "uploads"
    for f in uploads.rglob("*"):
        assert f.resolve().is_relative_to(uploads.resolve())
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
            assert ".." not in f.name and "\x00" not in f.name and len(f.name) <= 100


def test_store_uploads_and_reports_are_private(tmp_path, monkeypatch):
    from geolocate.agent.cli import main

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    app = create_app(str(tmp_path / "s.sqlite"))
    client = local_client(app)
    assert (
        post(
            client, "/sessions", files={"photo": ("p.jpg", PHOTO.read_bytes())}, follow_redirects=False
        ).status_code
        == 303
    )
    for p in [tmp_path / "s.sqlite", *(tmp_path / "home" / "uploads").rglob("*.jpg")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    sid = app.state.store.create(PHOTO).info.id
    out = tmp_path / "r.md"
    assert main(["session", "report", sid, "--store", str(tmp_path / "s.sqlite"), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_thumbnails_are_small_and_made_once(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path / "home"))
    app = create_app(str(tmp_path / "s.sqlite"))
    sid = app.state.store.create(PHOTO).info.id
    client = local_client(app)
    r = client.get(f"/sessions/{sid}/thumb")
    im = Image.open(__import__("io").BytesIO(r.content))
    assert r.status_code == 200 and max(im.size) <= 320
    made = list((tmp_path / "home" / "thumbs").glob("*.jpg"))
    assert len(made) == 1 and stat.S_IMODE(made[0].stat().st_mode) == 0o600
    mtime = made[0].stat().st_mtime_ns
    client.get(f"/sessions/{sid}/thumb")
    assert made[0].stat().st_mtime_ns == mtime
    assert (
        f"/sessions/{sid}/thumb" in client.get("/").text
        and f"/sessions/{sid}/photo" not in client.get("/").text
    )


def test_serve_prints_a_tokened_url_and_brackets_ipv6(capsys, monkeypatch):
    import argparse

    from geolocate.agent.web.cli import serve_options

    def args(**kw):
        base = dict(host="127.0.0.1", port=8765, token=None, no_token=False, allow_host=[], allow_dir=[],
                    tiles=None, osm_db=None)  # fmt: skip
        return argparse.Namespace(**{**base, **kw})

    monkeypatch.delenv("GEOLOCATE_TOKEN", raising=False)
    o = serve_options(args())
    assert o["token"] and len(o["token"]) >= 24 and o["url"] == f"http://127.0.0.1:8765/?token={o['token']}"
    assert serve_options(args())["token"] != o["token"]  # random each time
    assert serve_options(args(host="::1", no_token=True))["url"] == "http://[::1]:8765/"
    assert serve_options(args(host="[::1]"))["url"].startswith("http://[::1]:8765/?token=")
    with pytest.raises(ValueError, match="loopback only"):
        serve_options(args(host="0.0.0.0", no_token=True))


# -- the API from its own schema (schemathesis) ---------------------------------------------------------
def _schema():
    import tempfile

    import schemathesis

    d = Path(tempfile.mkdtemp(prefix="geolocate-schemathesis-"))
    os.environ.setdefault("GEOLOCATE_HOME", str(d / "home"))
    app = create_app(str(d / "s.sqlite"), token="schema-token", hosts=["localhost", "testserver"])
    app.state.store.create(PHOTO, sid="abcd1234", review=["country"])
    return schemathesis.openapi.from_asgi(
        "/openapi.json", app, headers={"Authorization": "Bearer schema-token"}
    )


schema = _schema()


@pytest.mark.timeout(600)
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_route_answers_500_to_anything_its_schema_allows(case):
    """Every route, driven with a valid token by schemathesis from the app's OpenAPI schema (random
    and boundary values for every parameter and form field): never a 5xx."""
    response = case.call(headers={"Authorization": "Bearer schema-token"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
