"""Investigator sessions: review points, analyst moves, forks, reports, crash safety and bad input.

Real photos: the OSV-5M sample (Mapillary, CC-BY-SA 4.0) and the example photo 2872700852992867.jpg,
whose only text is Han script: the planner reads it as China (CN 0.85) or Singapore (SG 0.15).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geolocate.agent.cli import main
from geolocate.agent.session import SessionError, SessionStore
from tests.conftest import REPO

HAN_SIGN = REPO / "examples" / "photos" / "2872700852992867.jpg"


@pytest.fixture
def store(tmp_path):
    with SessionStore(str(tmp_path / "sessions.sqlite")) as s:
        yield s


def chain(ep) -> dict[str, str]:
    return {lv.value: c.value for lv, c in ep.chain.items()}


def proposed(ep, level: str) -> list[str]:
    """Every value the planner proposed for ``level`` (its commit actions), in order."""
    return [
        a["value"] for t in ep.turns for a in t.actions if a.get("kind") == "commit" and a["level"] == level
    ]


def test_review_reject_then_approve_and_the_rejected_country_is_never_proposed_again(store):
    v = store.create(HAN_SIGN, review=["country"], tools="all,-exif")
    assert v.status == "review" and v.pending["level"] == "country" and v.pending["action"]["value"] == "CN"
    assert {e["id"] for e in v.pending["evidence"]} == {"e2"}  # the clues that point to CN
    v = store.move(v.info.id, {"kind": "reject", "reason": "the shop fronts look Singaporean"})
    assert v.status == "review" and v.pending["action"]["value"] == "SG"
    v = store.move(v.info.id, {"kind": "approve"})
    assert v.status == "answered" and chain(v.episode) == {"continent": "Asia", "country": "Singapore"}
    assert proposed(v.episode, "country") == ["CN", "SG"]  # CN once, before the rejection, never again
    moves = [e for e in v.episode.evidence if e.author is not None]
    assert [(e.id, e.output["decision"]) for e in moves] == [("a1", "reject"), ("a2", "approve")]
    assert all(e.utc and e.utc.endswith("Z") for e in moves)
    assert v.episode.chain[next(iter(v.episode.chain))].evidence  # levels still cite their evidence


def test_a_hint_changes_the_outcome(store):
    v = store.create(HAN_SIGN, tools="all,-exif")
    assert v.status == "answered" and v.episode.chain[next(iter(v.episode.chain))].value == "Asia"
    assert chain(v.episode)["country"] == "China"
    v = store.move(v.info.id, {"kind": "hint", "text": "the bus stop sign says Kaohsiung"})
    assert chain(v.episode) == {
        "continent": "Asia",
        "country": "Taiwan",
        "region": "Taiwan",
        "city": "Kaohsiung",
    }
    city = v.episode.chain[list(v.episode.chain)[-1]]
    assert "a1" in city.evidence  # the analyst's note is cited
    assert abs(v.episode.answer.lat - 22.6) < 0.2 and abs(v.episode.answer.lon - 120.3) < 0.2
    assert not v.episode.warnings


def test_a_constraint_changes_the_outcome_and_rules_out_commits(store):
    v = store.create(HAN_SIGN, tools="all,-exif")
    v = store.move(
        v.info.id, {"kind": "constrain", "constraint": {"kind": "not_country", "country": "China"}}
    )
    assert chain(v.episode) == {"continent": "Asia", "country": "Singapore"}
    assert any(o.kind == "backtracked" for t in v.episode.turns for o in t.observations)
    v = store.move(
        v.info.id, {"kind": "constrain", "constraint": {"kind": "bbox", "bbox": [21.8, 119.9, 25.4, 122.1]}}
    )
    a = v.episode.answer  # Singapore is outside the box: the answer moves into it
    assert 21.8 <= a.lat <= 25.4 and 119.9 <= a.lon <= 122.1


def test_fork_from_an_earlier_checkpoint_shows_both_branches_in_show_and_report(store, tmp_path, capsys):
    v = store.create(HAN_SIGN, review=["country"], tools="all,-exif")
    sid = v.info.id
    store.move(sid, {"kind": "reject", "reason": "not China"})
    store.move(sid, {"kind": "approve"})
    review_points = [h for h in store.history(sid) if "waiting for review" in h.summary]
    assert len(review_points) == 2
    v = store.fork(sid, review_points[0].short)  # back to the first review: China pending again
    assert v.pending["action"]["value"] == "CN" and len(v.branches) == 2
    v = store.move(sid, {"kind": "approve"})
    assert chain(v.episode)["country"] == "China"
    heads = {b.current: chain(b.episode)["country"] for b in v.branches}
    assert heads == {True: "China", False: "Singapore"}
    assert main(["session", "show", sid[:4], "--store", store.url]) == 0
    out = capsys.readouterr().out
    assert "branches" in out and "Singapore" in out and "China" in out
    html = tmp_path / "r.html"
    assert main(["session", "report", sid, "--store", store.url, "--format", "html", "-o", str(html)]) == 0
    page = html.read_text()
    assert "Other branches" in page and "Singapore" in page and "data:image/png;base64," in page
    v = store.switch(sid, next(b.short for b in v.branches if not b.current))
    assert chain(v.episode)["country"] == "Singapore"


def test_reports_in_every_format(store, tmp_path):
    from geolocate.agent.report import render_report

    v = store.create(HAN_SIGN, review=["country"], tools="all,-exif")
    store.move(v.info.id, {"kind": "reject", "reason": "the shop fronts look Singaporean"})
    store.move(v.info.id, {"kind": "approve"})
    md = render_report(store, v.info.id, "md")
    plain = md.replace("\\", "")  # Markdown escapes of untrusted text
    assert "SHA-256 of the examined photo: `13e4afffa00f3bd2" in md and "2872700852992867.jpg" in plain
    assert "country = CN rejected by" in plain and "the shop fronts look Singaporean" in plain
    assert "| 0 | evidence | e1 |" in md and "ocr" in md and "Singapore" in md
    gj = json.loads(render_report(store, v.info.id, "geojson"))
    roles = [f["properties"]["role"] for f in gj["features"]]
    assert roles[:2] == ["answer", "answer_radius"]
    lon, lat = gj["features"][0]["geometry"]["coordinates"]
    assert abs(lat - 1.29) < 0.1 and abs(lon - 103.85) < 0.1  # GeoJSON order: (lon, lat)
    kml = render_report(store, v.info.id, "kml")
    assert "<kml" in kml and "103.85" in kml


def _cli(*args: str, env: dict) -> subprocess.Popen:
    code = "import sys; from geolocate.agent.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(url: str, predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    """Poll the store (another process writes it) until ``predicate(store, session id)`` holds; when the
    writer ``proc`` has exited and the store still does not hold it, fail at once with its output."""

    def holds() -> bool:
        if url.startswith("postgresql://") or Path(url).exists():
            try:
                with SessionStore(url) as s:
                    return bool(s.ids()) and bool(predicate(s, s.ids()[0]))
            except (SessionError, sqlite3.Error):
                pass
        return False

    t0 = time.time()
    while time.time() - t0 < timeout:
        exited = proc is not None and proc.poll() is not None
        if holds():
            return
        if exited:
            out, err = proc.communicate()
            raise AssertionError(f"the writer exited ({proc.returncode}) first: {out[-2000:]} {err[-2000:]}")
        time.sleep(0.02)
    raise AssertionError("the condition was not reached")


def _signature(ep) -> dict:
    """What must be equal between a killed-and-resumed run and an uninterrupted one (timings apart)."""
    return {
        "chain": {lv.value: (c.value, c.code, c.evidence) for lv, c in ep.chain.items()},
        "evidence": [(e.id, e.tool, e.arguments, e.ok, e.output) for e in ep.evidence if e.author is None],
        "answer": ep.answer.model_dump() if ep.answer else None,
        "turns": [t.completion for t in ep.turns],
    }


def _kill_and_resume(tmp_path, store_url: str | None):
    """Kill a session run at three points (mid tool call, waiting at a review point, writing the
    report), resume it, and compare with the same session run without a kill."""
    env = {**os.environ, "GEOLOCATE_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir(exist_ok=True)  # a --store in a missing folder is an error
    url = store_url or str(tmp_path / "home" / "sessions.sqlite")
    store_args = ["--store", url]
    # 1. Killed mid tool call: the OCR call is pending (its checkpoint is written) and running.
    p = _cli(
        "session", "new", str(HAN_SIGN), "--no-exif", "--review", "country", "--quiet", *store_args, env=env
    )

    def ocr_running(s, sid):
        v = s.view(sid, with_branches=False)
        return v.next == ("act",) and not any(e.tool == "ocr" for e in v.episode.evidence)

    _wait_for(url, ocr_running, proc=p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    with SessionStore(url) as s:
        sid = s.ids()[0]
        assert s.view(sid).status in ("interrupted", "review")
    # 2. Resumed interactively: it runs to the review point and is killed while it waits at the prompt.
    p = _cli("session", "resume", sid, "--interactive", "--quiet", *store_args, env=env)
    _wait_for(url, lambda s, _: s.view(sid, with_branches=False).status == "review", proc=p)
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    with SessionStore(url) as s:
        v = s.view(sid)
        assert v.status == "review" and v.pending["action"]["value"] == "CN"
    assert main(["session", "approve", sid, "--quiet", *store_args]) == 0
    # 3. Killed while writing the report: the report is whole or absent, the session intact.
    out = tmp_path / "report.html"
    p = _cli("session", "report", sid, "--format", "html", "-o", str(out), *store_args, env=env)
    time.sleep(1.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not out.exists() or out.read_text().rstrip().endswith("</html>")
    assert main(["session", "report", sid, "--format", "html", "-o", str(out), *store_args]) == 0
    assert out.read_text().rstrip().endswith("</html>")
    with SessionStore(url) as s:
        resumed = s.view(sid).episode
        # The same session without any kill, in the same store.
        ref = s.create(HAN_SIGN, review=["country"], tools="all,-exif")
        ref = s.move(ref.info.id, {"kind": "approve"}).episode
    assert _signature(resumed) == _signature(ref)
    ids = [e.id for e in resumed.evidence]
    assert len(ids) == len(set(ids)) and [e.tool for e in resumed.evidence].count("ocr") == 1


def test_sigkill_at_any_point_then_resume_equals_an_uninterrupted_run(tmp_path):
    _kill_and_resume(tmp_path, None)


@pytest.mark.integration
def test_postgres_store_passes_the_same_resume_test(tmp_path, services):
    import getpass
    import secrets

    import psycopg

    db = f"geolocate_sessions_{secrets.token_hex(4)}"
    admin = f"host=127.0.0.1 port={services.pg_port} dbname=postgres user={getpass.getuser()}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {db}")
    try:
        _kill_and_resume(tmp_path, f"postgresql://{getpass.getuser()}@127.0.0.1:{services.pg_port}/{db}")
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f"DROP DATABASE {db} WITH (FORCE)")


# -- bad input: one-line errors, exit 2, nothing lost ----------------------------------------------------
def test_unknown_and_ambiguous_ids(store, capsys, monkeypatch):
    ids = iter(["abcd0001", "abcd0002"])
    monkeypatch.setattr("secrets.token_hex", lambda n: next(ids))
    for _ in range(2):
        store.create(HAN_SIGN, tools="all,-exif")
    assert main(["session", "show", "zzzz", "--store", store.url]) == 2
    assert "no session 'zzzz'" in capsys.readouterr().err
    assert main(["session", "show", "abcd", "--store", store.url]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "abcd0001" in err and "abcd0002" in err
    assert main(["session", "show", "abcd0002", "--store", store.url]) == 0


def test_approve_with_nothing_pending_and_invalid_constraints(store, capsys):
    sid = store.create(HAN_SIGN, tools="all,-exif").info.id
    assert main(["session", "approve", sid, "--store", store.url]) == 2
    assert "nothing is pending review" in capsys.readouterr().err
    assert main(["session", "constrain", sid, "--store", store.url, "--bbox", "1,2,3"]) == 2
    assert "--bbox S,W,N,E needs 4" in capsys.readouterr().err
    assert main(["session", "constrain", sid, "--store", store.url, "--country", "Atlantis"]) == 2
    assert "unknown country 'Atlantis'" in capsys.readouterr().err
    assert main(["session", "constrain", sid, "--store", store.url, "--bbox=10,5,2,6"]) == 2
    assert "south < north" in capsys.readouterr().err
    assert store.view(sid).status == "answered"  # nothing was lost or half-written


def test_a_photo_changed_on_disk_does_not_change_the_examined_one(store, tmp_path, capsys):
    """The store keeps the examined bytes: after the file is replaced, the session goes on with the
    photo it started with (its SHA-256), and the report says what the file holds now."""
    photo = tmp_path / "p.jpg"
    photo.write_bytes(HAN_SIGN.read_bytes())
    v = store.create(photo, review=["country"], tools="all,-exif")
    sid, examined = v.info.id, v.info.sha256
    from PIL import Image

    Image.open(HAN_SIGN).rotate(1).save(photo)
    assert main(["session", "approve", sid, "--store", store.url]) == 0
    view = store.view(sid)
    assert view.episode.image.sha256 == examined and view.episode.answer is not None
    assert main(["session", "report", sid, "--store", store.url]) == 0
    assert "now has SHA" in capsys.readouterr().out.replace("\\-", "-")


def test_a_corrupt_store_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    assert main(["session", "list", "--store", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot open the session store") and "\n" not in err


def test_two_writers_are_never_allowed(store, capsys):
    sid = store.create(HAN_SIGN, review=["country"], tools="all,-exif").info.id
    with store.lock(sid):  # another process is running this session
        assert main(["session", "approve", sid, "--store", store.url]) == 2
    assert "in use by another process" in capsys.readouterr().err
    assert main(["session", "approve", sid, "--store", store.url]) == 0


def test_cli_walkthrough_new_hint_history_fork_delete(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["session", "new", str(HAN_SIGN), "--no-exif", "--review", "country", "--quiet"]) == 0
    out = capsys.readouterr().out
    sid = out.splitlines()[0].strip()
    assert len(sid) == 8 and "waiting for your review" in out and "country = CN" in out
    assert main(["session", "hint", sid, "cars drive on the left", "--quiet"]) == 0
    assert "a1" in capsys.readouterr().out
    assert main(["session", "approve", sid, "--quiet"]) == 0
    assert main(["session", "list"]) == 0
    assert sid in capsys.readouterr().out
    assert main(["session", "history", sid]) == 0
    assert "waiting for review" in capsys.readouterr().out
    assert main(["session", "tool", sid, "gazetteer", "--args", '{"query": "Vaduz"}', "--quiet"]) == 0
    v = SessionStore(str(tmp_path / "sessions.sqlite")).view(sid)
    manual = [e for e in v.episode.evidence if e.tool == "gazetteer" and e.author]
    assert manual and manual[0].id.startswith("e") and manual[0].typed().matches[0].country_code == "LI"
    assert main(["session", "conclude", sid, "--quiet"]) == 0
    assert main(["session", "hint", sid, "more"]) == 2
    assert "concluded" in capsys.readouterr().err
    assert main(["session", "delete", sid]) == 0
    assert main(["session", "show", sid]) == 2
