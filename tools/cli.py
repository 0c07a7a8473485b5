"""``geolocate services up|down|status``: the self-hosted Nominatim and PostGIS on loopback; and
``geolocate doctor``: what this machine can do."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geolocate.agent.cli_common import fail, stderr

DEFAULT_SERVICE_EXTRACTS = ("andorra.osm.pbf", "liechtenstein-2013-08-03.osm.pbf", "helsinki.osm.pbf")
"""Extracts imported by ``services up`` without arguments (from ``../shared/data/osm``)."""


def register(sub) -> None:
    """Add the ``services`` command to the root parser's sub-parsers."""
    sv = sub.add_parser(
        "services", help="self-hosted Nominatim and PostGIS on loopback (Debian): up, down, status"
    )
    sv.add_argument("action", choices=["up", "down", "status"])
    sv.add_argument(
        "extracts",
        nargs="*",
        help="OSM extracts to import (up); default: Andorra, Liechtenstein and Helsinki from "
        "../shared/data/osm",
    )
    sv.set_defaults(run=cmd_services)
    dr = sub.add_parser(
        "doctor", help="what this machine can do: scripts OCR reads, optional parts installed"
    )
    dr.add_argument("--json", action="store_true", help="print the checks as JSON")
    dr.add_argument(
        "--install",
        action="store_true",
        help="first install the missing OCR script packs (apt-get, as root on Debian/Ubuntu; otherwise "
        "say which are missing and go on)",
    )
    dr.set_defaults(run=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print :func:`geolocate.tools.doctor.checks` as a table (or JSON), after installing the OCR
    script packs with ``--install``; always exit 0 (a missing part is reported, not an error)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from geolocate.tools.doctor import checks, install_ocr_packages, report

    if args.install:
        _done, message = install_ocr_packages()
        stderr().print(f"geolocate doctor: {escape(message)}")
    if args.json:
        print(json.dumps(report(), indent=1))
        return 0
    t = Table(title="geolocate doctor")
    for col in ("part", "", "found", "to add it"):
        t.add_column(col)
    for c in checks():
        t.add_row(
            c.part,
            "[green]yes[/green]" if c.ok else "[yellow]no[/yellow]",
            escape(c.detail),
            "" if c.ok else escape(c.fix),
        )
    Console(soft_wrap=True).print(t)
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from geolocate.tools.services import Services, ServicesError

    svc = Services.default()
    err = stderr()
    try:
        if args.action == "up":
            extracts = [Path(p) for p in args.extracts] or [
                Path("../shared/data/osm") / f for f in DEFAULT_SERVICE_EXTRACTS
            ]
            t = svc.up(extracts, log=lambda m: err.print(m))
            print(json.dumps({**svc.status(), **t}))
        elif args.action == "down":
            svc.down()
            print(json.dumps(svc.status()))
        else:
            print(json.dumps(svc.status()))
    except ServicesError as e:
        return fail(e)
    return 0
