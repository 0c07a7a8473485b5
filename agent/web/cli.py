"""``geolocate serve``: the local web workbench (FastAPI + uvicorn).

Binds 127.0.0.1 by default, with a random token printed in the URL to open (as Jupyter does);
``--no-token`` is allowed on loopback only. Any other address needs ``--token`` and prints a warning:
the photos of an investigation must not be open to a network. See :mod:`geolocate.agent.web.security`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from geolocate.agent.cli_common import fail, stderr


def register(sub) -> None:
    """Add the ``serve`` command to the root parser's sub-parsers."""
    p = sub.add_parser("serve", help="the local web workbench for sessions (offline map, reviews, reports)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=port, default=8765, help="TCP port, 1-65535 (default: %(default)s)")
    p.add_argument("--store", metavar="URL", default=None, help="session store (as for geolocate session)")
    p.add_argument(
        "--token",
        default=None,
        help="the access token (also $GEOLOCATE_TOKEN); default: a random one, printed in the URL to open",
    )
    p.add_argument(
        "--no-token",
        action="store_true",
        help="no token (loopback only): any program of this machine's users can then use the workbench",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept requests whose Host is NAME (besides 127.0.0.1, localhost, [::1] and --host); "
        "repeatable",
    )
    p.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="FOLDER",
        help="let the page open photos and OSM indexes by path under FOLDER (off by default); repeatable",
    )
    p.add_argument(
        "--tiles",
        metavar="URL",
        default=None,
        help="XYZ tiles of your own tile server, e.g. http://tiles.lan/{z}/{x}/{y}.png",
    )
    p.add_argument("--osm-db", metavar="DB", default=None, help="local OSM index offered to new sessions")
    p.set_defaults(run=cmd_serve)


def port(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port {n} is out of range (1-65535)")
    return n


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("[::1]")
    (True, True, False, True)
    """
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_options(args: argparse.Namespace) -> dict:
    """Check the ``serve`` flags and return ``create_app``'s arguments and the URL to open.

    Raises:
        ValueError: a problem with the flags (one line).
    """
    import re
    import secrets

    from geolocate.agent.web.security import url_host

    host = args.host.strip("[]")
    token = args.token or os.environ.get("GEOLOCATE_TOKEN")
    if args.no_token and token:
        raise ValueError("--no-token and --token contradict each other")
    if args.no_token and not is_loopback(host):
        raise ValueError("--no-token is for loopback only: a network address needs a token")
    if not is_loopback(host) and not token:
        raise ValueError(
            f"--host {args.host} is reachable from other machines: give --token SECRET (or bind 127.0.0.1)"
        )
    if not args.no_token and not token:
        token = secrets.token_urlsafe(24)
    hosts = [host]
    for h in args.allow_host:
        if not h.strip() or not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,253}", h.strip()):
            raise ValueError(f"--allow-host {h!r} is not a host name")
        hosts.append(h.strip())
    for d in args.allow_dir:
        if not Path(d).is_dir():
            raise ValueError(f"--allow-dir {d}: not a folder")
    if args.tiles and not all(k in args.tiles for k in ("{z}", "{x}", "{y}")):
        raise ValueError(f"--tiles must be a URL template with {{z}}, {{x}} and {{y}}, got {args.tiles!r}")
    if args.tiles and not args.tiles.startswith(("http://", "https://")):
        raise ValueError("--tiles must be an http(s) URL template")
    if args.osm_db and not Path(args.osm_db).is_file():
        raise ValueError(f"--osm-db {args.osm_db}: no such file")
    url = f"http://{url_host(host)}:{args.port}/" + (f"?token={token}" if token else "")
    return {"token": token, "hosts": hosts, "allow_dirs": list(args.allow_dir), "url": url}


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from geolocate.agent.session import SessionError
    from geolocate.agent.web.app import create_app

    try:
        opts = serve_options(args)
    except ValueError as e:
        return fail(e)
    if not is_loopback(args.host):
        stderr().print(
            f"[yellow]warning:[/yellow] serving on {args.host}:{args.port}: anyone who can reach it and "
            "knows the token sees your sessions and photos"
        )
    try:
        app = create_app(
            args.store or os.environ.get("GEOLOCATE_STORE"),
            token=opts["token"],
            tiles=args.tiles,
            osm_db=args.osm_db,
            hosts=opts["hosts"],
            allow_dirs=opts["allow_dirs"],
        )
    except SessionError as e:
        return fail(e)
    stderr().print(f"geolocate workbench on {opts['url']}", soft_wrap=True, highlight=False)
    uvicorn.run(app, host=args.host.strip("[]"), port=args.port, log_level="warning")
    return 0
