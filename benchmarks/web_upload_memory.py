"""Server memory for a large upload: ``geolocate serve`` in its own process, an 80-megapixel PNG (a
blank frame, as in the issue) uploaded through the page's form with its CSRF token, the session run to
its first pause; the server's resident memory (VmRSS, and the peak VmHWM from /proc) before, during and
after, and the time the index page then takes (it shows thumbnails, not the photo).

    python benchmarks/web_upload_memory.py [--megapixels 80] [--port 8799]

Linux only (/proc). Prints one line per measurement; the figure for the notes is the peak.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    get = lambda k: int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) / 1024  # noqa: E731
    return get("VmRSS"), get("VmHWM")


def children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (the worker that runs the sessions)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == p:
                out.append(int(stat.parent.name))
                todo.append(int(stat.parent.name))
    return out


def main() -> int:
    import httpx
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=float, default=80.0)
    ap.add_argument("--port", type=int, default=8799)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="geolocate-mem-"))
    side = int((args.megapixels * 1e6) ** 0.5)
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 200, 200)).save(buf, format="PNG")
    print(f"upload: {side}x{side} = {side * side / 1e6:.1f} MP, {len(buf.getvalue()):,} bytes PNG")
    env = {**os.environ, "GEOLOCATE_HOME": str(d / "home")}
    srv = subprocess.Popen(
        [sys.executable, "-m", "geolocate.agent.cli", "serve", "--no-token", "--port", str(args.port),
         "--store", str(d / "s.sqlite")],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    try:
        with httpx.Client(base_url=base, timeout=600) as c:
            for _ in range(200):
                try:
                    page = c.get("/")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            rss, hwm = rss_mb(srv.pid)
            print(f"idle server: RSS {rss:.0f} MB, peak {hwm:.0f} MB")
            token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
            t = time.perf_counter()
            r = c.post(
                "/sessions",
                data={"csrf_token": token, "tools": "all"},
                files={"photo": ("blank.png", buf.getvalue(), "image/png")},
                headers={"Origin": base, "Sec-Fetch-Site": "same-origin"},
                follow_redirects=False,
            )
            sid = r.headers["location"].rsplit("/", 1)[-1]
            peak, worker_peak = 0.0, 0.0
            while True:
                rss, hwm = rss_mb(srv.pid)
                peak = max(peak, hwm)
                for child in children(srv.pid):
                    try:
                        worker_peak = max(worker_peak, rss_mb(child)[1])
                    except (OSError, AttributeError):
                        pass
                s = c.get("/api/sessions").json()
                if sid not in s["running"] and any(x["id"] == sid for x in s["sessions"]):
                    break
                time.sleep(0.2)
            took = time.perf_counter() - t
            print(f"session done in {took:.1f} s: server RSS {rss:.0f} MB, peak {peak:.0f} MB; "
                  f"worker process peak {worker_peak:.0f} MB")  # fmt: skip
            t = time.perf_counter()
            c.get("/")
            c.get(f"/sessions/{sid}/thumb")
            rss, hwm = rss_mb(srv.pid)
            took = time.perf_counter() - t
            print(f"index page and its thumbnail: {took:.2f} s; RSS {rss:.0f} MB, peak {hwm:.0f} MB")
    finally:
        srv.terminate()
        srv.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
