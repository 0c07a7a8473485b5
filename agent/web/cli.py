"""``geolocate serve``: the local web workbench (FastAPI + uvicorn).

Binds 127.0.0.1 by default. Any other address needs ``--token`` (checked on every request, event
streams included) and prints a warning: the photos of an investigation must not be open to a network.
"""

from __future__ import annotations

import argparse
import ipaddress
import os

from geolocate.agent.cli_common import fail, stderr


def register(sub) -> None:
    """Add the ``serve`` command to the root parser's sub-parsers."""
    p = sub.add_parser("serve", help="the local web workbench for sessions (offline map, reviews, reports)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--store", metavar="URL", default=None, help="session store (as for geolocate session)")
    p.add_argument("--token", default=None, help="required with a non-loopback --host; also $GEOLOCATE_TOKEN")
    p.add_argument(
        "--tiles",
        metavar="URL",
        default=None,
        help="XYZ tiles of your own tile server, e.g. http://tiles.lan/{z}/{x}/{y}.png",
    )
    p.add_argument("--osm-db", metavar="DB", default=None, help="local OSM index offered to new sessions")
    p.set_defaults(run=cmd_serve)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from geolocate.agent.session import SessionError
    from geolocate.agent.web.app import create_app

    token = args.token or os.environ.get("GEOLOCATE_TOKEN")
    if not is_loopback(args.host):
        if not token:
            return fail(
                f"--host {args.host} is reachable from other machines: give --token SECRET (or bind "
                "127.0.0.1)"
            )
        stderr().print(
            f"[yellow]warning:[/yellow] serving on {args.host}:{args.port}: anyone who can reach it and "
            "knows the "
            "token sees your sessions and photos"
        )
    try:
        app = create_app(
            args.store or os.environ.get("GEOLOCATE_STORE"), token=token, tiles=args.tiles, osm_db=args.osm_db
        )
    except SessionError as e:
        return fail(e)
    url = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    stderr().print(f"geolocate workbench on {url}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
