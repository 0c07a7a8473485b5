"""Command-line interface: ``geolocate locate PHOTO``.

Exit codes: 0 located (or honestly not), 2 unusable input or bad arguments, 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agent.state import TRAJECTORY_SCHEMA, Budget, EpisodeState


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geolocate", description="Find where a photo was taken, with evidence (Chain of Region).")
    sub = p.add_subparsers(dest="command", required=True)
    loc = sub.add_parser("locate", help="geolocate one photo", description="Geolocate one photo and print the Chain of Region with its evidence.")
    loc.add_argument("photo", help="path to the photo (JPEG, PNG, WebP, ...)")
    loc.add_argument("--json", metavar="OUT", help=f"write the full trajectory as JSON ({TRAJECTORY_SCHEMA}) to OUT ('-' for stdout)")
    loc.add_argument("--tools", default="all", metavar="LIST", help="tools to enable: comma list, 'all', or 'all,-ocr' (default: all)")
    loc.add_argument("--no-exif", action="store_true", help="ignore the photo's EXIF metadata (as benchmarks do)")
    loc.add_argument("--policy", default="heuristic", help="planner policy (default: heuristic)")
    loc.add_argument("--max-turns", type=int, default=Budget().max_turns, help="turn budget (default: %(default)s)")
    loc.add_argument("--max-tool-calls", type=int, default=Budget().max_tool_calls, help="tool-call budget (default: %(default)s)")
    loc.add_argument("--tool-timeout", type=float, default=None, metavar="S", help="override every tool's timeout, in seconds")
    loc.add_argument("--nominatim", metavar="HOST[:PORT]", help="use this Nominatim server for the geocode tool instead of offline GeoNames (e.g. localhost:8088)")
    loc.add_argument("--nominatim-scheme", default="https", choices=["http", "https"])
    loc.add_argument("--user-agent", default="geolocate/0.1 (https://github.com/geolocate)", help="user agent sent to Nominatim (its usage policy requires one that identifies you)")
    loc.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _progress_text(node: str, state: EpisodeState) -> str:
    turn = len(state.turns)
    last = state.turns[-1].observations[-1].text if state.turns and state.turns[-1].observations else ""
    return f"turn {turn} [{node}] {last[:100]}"


def _print_result(state: EpisodeState, console) -> None:
    from rich.table import Table

    from tools.geo import osm_url

    ev = {e.id: e for e in state.evidence}
    table = Table(title=f"Chain of Region for {state.image.path}", show_lines=False)
    table.add_column("level")
    table.add_column("value")
    table.add_column("conf", justify="right")
    table.add_column("evidence")
    for lv, c in state.chain.items():
        cites = "; ".join(f"{i}: {ev[i].tool}: {ev[i].summary[:70]}" if i in ev else i for i in c.evidence)
        table.add_row(lv.value, c.value + (f" ({c.code})" if c.code and c.code != c.value and not c.code.isdigit() else ""), f"{c.confidence:.2f}", cites)
    a = state.answer
    if a is not None:
        table.add_row("coordinates", f"{a.lat:.5f}, {a.lon:.5f}", f"{a.localizability:.2f}", f"radius {a.radius_km:g} km ({a.source})")
    console.print(table)
    if a is not None:
        console.print(f"[bold]Answer:[/bold] {a.lat:.5f}, {a.lon:.5f} +- {a.radius_km:g} km   localizability {a.localizability:.2f}")
        console.print(f"OpenStreetMap: {osm_url(a.lat, a.lon, zoom=_zoom(a.radius_km))}", soft_wrap=True)
    if not state.chain:
        console.print("No region could be committed from the evidence: treat the answer as a guess.")
    for w in state.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    n_fail = sum(not e.ok for e in state.evidence)
    console.print(f"{len(state.turns)} turns, {len(state.evidence)} tool calls ({n_fail} failed), {state.elapsed_s:.2f} s, status {state.status}")


def _zoom(radius_km: float) -> int:
    import math

    return int(max(2, min(17, round(14 - math.log2(max(radius_km, 0.05) / 2)))))


def cmd_locate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agent.graph import stream_episode
    from agent.policies import make_policy
    from tools.errors import InputImageError, UnknownToolError
    from tools.image import load_image
    from tools.registry import ToolSet

    err = Console(stderr=True, soft_wrap=True)
    out = Console()
    try:
        image = load_image(args.photo)
    except InputImageError as e:
        err.print(f"[red]error:[/red] {e}")
        return 2
    try:
        tools = ToolSet.parse_spec(args.tools, exclude=["exif"] if args.no_exif else [])
        policy = make_policy(args.policy)
        budget = Budget(max_turns=args.max_turns, max_tool_calls=args.max_tool_calls)
    except UnknownToolError as e:
        err.print(f"[red]error:[/red] {e}")
        return 2
    except (KeyError, ValueError) as e:
        err.print(f"[red]error:[/red] {e.args[0] if isinstance(e, KeyError) else e}")
        return 2
    options: dict = {"tool_timeout_s": args.tool_timeout} if args.tool_timeout else {}
    if args.nominatim:
        from tools.geocode import NominatimGeocoder

        try:
            options["geocoder"] = NominatimGeocoder(args.user_agent, domain=args.nominatim, scheme=args.nominatim_scheme)
        except ValueError as e:
            err.print(f"[red]error:[/red] {e}")
            return 2
    state = None
    t0 = time.perf_counter()
    if args.quiet or not err.is_terminal:
        for node, state in stream_episode(image, tools, policy, budget, options=options):
            if not args.quiet:
                print(_progress_text(node, state), file=sys.stderr)
    else:
        with err.status("starting (the first run builds the GeoNames index, ~15 s)...") as status:
            for node, state in stream_episode(image, tools, policy, budget, options=options):
                status.update(_progress_text(node, state))
    assert state is not None
    state.elapsed_s = round(time.perf_counter() - t0, 4)
    if args.json:
        payload = json.dumps(state.dump(), ensure_ascii=False, indent=2)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload, encoding="utf-8")
    if args.json != "-":
        _print_result(state, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``geolocate`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "locate":
        return cmd_locate(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
