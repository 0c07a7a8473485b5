"""Web workbench benchmarks (run by hand; figures go in the issue note).

    python benchmarks/web.py [--loads 10]

1. Page load in headless Chromium (Debian's ``chromium``, driven by Playwright): the sessions list and
   a session page, time to the ``load`` event and until the map has drawn (p50).
2. First-event latency: an SSE client subscribed to a session; a hint is posted; time until the first
   ``step`` event arrives, and until the ``paused`` event (the planner has answered again).

Photo: examples/photos/2872700852992867.jpg (OSV-5M, CC-BY-SA 4.0).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console

from geolocate.agent.web.app import create_app

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "photos" / "2872700852992867.jpg"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=10)
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as d:
        app = create_app(str(Path(d) / "s.sqlite"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=srv.run, daemon=True).start()
        while not srv.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        store = app.state.store
        sid = store.create(PHOTO, tools="all,-exif").info.id
        store.move(sid, {"kind": "hint", "text": "warm-up"})
        first, paused = [], []
        for i in range(args.loads):
            got: dict[str, float] = {}
            ready = threading.Event()

            def listen(got=got, ready=ready):
                with httpx.stream("GET", f"{base}/sessions/{sid}/events", timeout=60) as r:
                    for line in r.iter_lines():
                        if line.startswith("event: hello"):
                            ready.set()
                        if line.startswith("event: step") and "step" not in got:
                            got["step"] = time.perf_counter()
                        if line.startswith("event: paused"):
                            got["paused"] = time.perf_counter()
                            return

            t = threading.Thread(target=listen, daemon=True)
            t.start()
            ready.wait(10)
            t0 = time.perf_counter()
            httpx.post(f"{base}/sessions/{sid}/move", data={"kind": "hint", "text": f"note {i}"})
            t.join(60)
            first.append(got["step"] - t0)
            paused.append(got["paused"] - t0)
        from playwright.sync_api import sync_playwright

        loads: dict[str, list[float]] = {
            "sessions list": [],
            "session page": [],
            "session page, map drawn": [],
        }
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page()
            for _ in range(args.loads):
                t0 = time.perf_counter()
                page.goto(base + "/", wait_until="load")
                loads["sessions list"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                page.goto(f"{base}/sessions/{sid}", wait_until="load")
                loads["session page"].append(time.perf_counter() - t0)
                page.wait_for_function("document.querySelectorAll('#map .leaflet-interactive').length > 100")
                loads["session page, map drawn"].append(time.perf_counter() - t0)
            browser.close()
        srv.should_exit = True
    for name, xs in loads.items():
        console.print(f"{name}: p50 {1000 * statistics.median(xs):.0f} ms (n={len(xs)})")
    console.print(f"hint posted -> first step event: p50 {1000 * statistics.median(first):.0f} ms")
    console.print(
        f"hint posted -> paused event (planner answered again): p50 {1000 * statistics.median(paused):.0f} ms"
    )
    print(json.dumps({"first_event_ms": 1000 * statistics.median(first)}))


if __name__ == "__main__":
    main()
