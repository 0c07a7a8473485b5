"""Faults from outside: a server that never answers, and parallel first runs on an empty cache.

Photos: OSV-5M sample (Mapillary, CC-BY-SA 4.0) with GPS written into their EXIF by the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

from geolocate.agent.cli import main
from tests.conftest import render_sign, with_gps


def _silent_server():
    """A TCP server on loopback that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv, held


def test_a_server_that_never_answers_is_bounded_by_the_tool_timeout(tmp_path, osv_dir, labels):
    """Five photos whose EXIF GPS is reverse-geocoded on a silent Nominatim with --tool-timeout 2:
    each geocode call ends at 2 s, the run ends within 5 x (2 s + a normal run), and the tool calls
    after a time-out still work (the chain is committed from EXIF and the offline tools)."""
    srv, _held = _silent_server()
    port = srv.getsockname()[1]
    ids = sorted(labels)[:5]
    photos = []
    for i in ids:
        lab = labels[i]
        photos.append(
            str(
                with_gps(
                    osv_dir / "images" / f"{i}.jpg",
                    float(lab["latitude"]),
                    float(lab["longitude"]),
                    tmp_path / f"{i}.jpg",
                )
            )
        )
    out = tmp_path / "out"
    t0 = time.perf_counter()
    args = ["locate", *photos, "--quiet", "--json", str(out), "--tool-timeout", "2"]
    rc = main(
        [
            *args,
            "--nominatim",
            f"127.0.0.1:{port}",
            "--nominatim-scheme",
            "http",
            "--user-agent",
            "geolocate-tests/1.0",
        ]
    )
    elapsed = time.perf_counter() - t0
    srv.close()
    assert rc == 0
    assert elapsed < 5 * (2 + 8), elapsed
    for i in ids:
        t = json.loads((out / f"{i}.json").read_text())
        geo = [e for e in t["evidence"] if e["tool"] == "geocode"]
        assert geo and not geo[0]["ok"] and "timed out after 2 s" in geo[0]["error"]
        assert geo[0]["elapsed_s"] < 3.0
        assert t["answer"]["radius_km"] <= 0.05  # the EXIF position, though the geocoder failed


def test_four_parallel_first_runs_on_an_empty_cache_agree_with_a_warm_run(tmp_path, plain_photo):
    """Four processes build the GeoNames index at once and answer like a warm run. Each sets a generous
    tool time-out of its own: on a busy machine a tool may be slow, and that is not what is tested."""
    photo = render_sign(plain_photo, ["KALAMUNDA"], tmp_path / "sign.jpg")
    warm = tmp_path / "warm.json"
    assert main(["locate", str(photo), "--no-exif", "--quiet", "--json", str(warm)]) == 0
    env = {**os.environ, "GEOLOCATE_CACHE_DIR": str(tmp_path / "empty-cache")}
    code = "import sys; from geolocate.agent.cli import main; sys.exit(main(sys.argv[1:]))"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "locate",
                str(photo),
                "--no-exif",
                "--quiet",
                "--json",
                str(tmp_path / f"{i}.json"),
                "--tool-timeout",  # a loaded 2-core machine must not turn a slow tool into a failure
                "600",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    want = json.loads(warm.read_text())
    for i in range(4):
        got = json.loads((tmp_path / f"{i}.json").read_text())
        assert got["answer"] == want["answer"] and got["chain"] == want["chain"]
        assert all(e["ok"] for e in got["evidence"])
    built = list((tmp_path / "empty-cache").glob("geonames-*.sqlite"))
    assert len(built) == 1 and not list((tmp_path / "empty-cache").glob("*.tmp*"))
