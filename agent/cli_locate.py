"""``geolocate locate PHOTO [PHOTO ...]``: one-shot runs of the agent, printed with their evidence.

Results are never lost to an output error: ``--json`` is checked before any photo runs, each photo's
trajectory is written as soon as it is done through :mod:`geolocate.tools.files` (atomically for a
regular file, directly into a device, a FIFO or standard output), a failed write is reported and the
other photos still run, and the exit code says that something failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from geolocate.agent.cli_common import (
    EXIT_ERROR,
    EXIT_USAGE,
    add_budget_args,
    add_policy_args,
    budget_from_args,
    checkpoint_defaults,
    fail,
    policy_from_args,
    positive_float,
    print_result,
    stderr,
)
from geolocate.agent.options import RunOptions
from geolocate.agent.state import TRAJECTORY_SCHEMA, EpisodeState
from geolocate.tools.files import OutputError, check_target, write_output


def register(sub) -> None:
    """Add the ``locate`` command to the root parser's sub-parsers."""
    loc = sub.add_parser(
        "locate",
        help="geolocate photos",
        description="Geolocate photos and print the Chain of Region with its evidence.",
    )
    loc.add_argument(
        "photo",
        nargs="+",
        help="photos (JPEG, PNG, HEIC, ...) or videos (MP4, MOV, MKV, WebM...): each is located on its own "
        "(one process), or all together as one case with --case",
    )
    loc.add_argument(
        "--case",
        action="store_true",
        help="the media are one case (the same place): one episode, one Chain of Region, evidence from all",
    )
    add_media_args(loc)
    loc.add_argument(
        "--json",
        metavar="OUT",
        help=f"write the full trajectory as JSON ({TRAJECTORY_SCHEMA}) to OUT; with several photos OUT "
        "is a folder "
        "of <photo>.json; '-' writes to stdout (JSON Lines with several photos)",
    )
    loc.add_argument(
        "--tools",
        default=None,
        metavar="LIST",
        help="tools to enable: comma list, 'all', or 'all,-ocr' (default: a trained checkpoint's, else all)",
    )
    loc.add_argument(
        "--no-exif", action="store_true", help="ignore the photo's EXIF metadata (as benchmarks do)"
    )
    add_budget_args(loc)
    add_backend_args(loc)
    loc.add_argument("--quiet", action="store_true", help="no progress output")
    add_policy_args(loc)
    loc.set_defaults(run=cmd_locate)


def add_media_args(p: argparse.ArgumentParser) -> None:
    """``--max-frames``, ``--min-frame-gap`` and ``--max-video-duration``: how videos are keyframed."""
    from geolocate.tools.media import (
        DEFAULT_FRAME_MAX_SIDE,
        DEFAULT_MAX_FRAMES,
        DEFAULT_MAX_VIDEO_S,
        DEFAULT_MIN_GAP_S,
    )

    p.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        metavar="N",
        help=f"keyframes kept per video at most (default {DEFAULT_MAX_FRAMES})",
    )
    p.add_argument(
        "--min-frame-gap",
        type=positive_float,
        default=DEFAULT_MIN_GAP_S,
        metavar="S",
        help=f"least seconds between two keyframes (default {DEFAULT_MIN_GAP_S:g})",
    )
    p.add_argument(
        "--frame-max-side",
        type=int,
        default=DEFAULT_FRAME_MAX_SIDE,
        metavar="PX",
        help=f"keyframes are examined at most PX pixels a side (default {DEFAULT_FRAME_MAX_SIDE}; "
        "larger reads smaller text, slower)",
    )
    p.add_argument(
        "--max-video-duration",
        type=positive_float,
        default=DEFAULT_MAX_VIDEO_S,
        metavar="S",
        help=f"longest video examined, seconds (default {DEFAULT_MAX_VIDEO_S:g}); longer ones are refused",
    )


def video_options(args: argparse.Namespace) -> dict:
    """Keyframing options for :func:`geolocate.tools.media.load_case` from the media flags.

    Raises:
        ValueError: ``--max-frames`` below 1, ``--frame-max-side`` below 64.
    """
    if args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1 (got {args.max_frames})")
    if args.frame_max_side < 64:
        raise ValueError(f"--frame-max-side must be at least 64 pixels (got {args.frame_max_side})")
    return {
        "max_frames": args.max_frames,
        "min_gap_s": args.min_frame_gap,
        "max_video_s": args.max_video_duration,
        "max_side": args.frame_max_side,
    }


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The :class:`RunOptions` the ``locate`` / ``session new`` flags give."""
    return RunOptions(
        tool_timeout_s=args.tool_timeout,
        osm_db=args.osm_db,
        overpass=args.overpass,
        nominatim=args.nominatim,
        nominatim_scheme=args.nominatim_scheme,
        user_agent=args.user_agent,
        clip_model=args.clip_model,
    )


def tools_spec(args: argparse.Namespace) -> str:
    """The tool mask of ``--tools``, with visual_candidates added when ``--clip-model`` is given and
    the mask does not exclude it."""
    spec = "all" if args.tools is None else args.tools
    if getattr(args, "clip_model", None) and "visual_candidates" not in spec.split(","):
        if "-visual_candidates" not in spec:
            spec += ",visual_candidates"
    return spec


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """The tool-backend flags shared by ``locate`` and ``session new``."""
    p.add_argument(
        "--tool-timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="override every tool's time-out, in seconds",
    )
    p.add_argument(
        "--nominatim",
        metavar="HOST[:PORT]",
        help="use this Nominatim server for the geocode tool instead of offline GeoNames "
        "(e.g. localhost:8088)",
    )
    p.add_argument("--nominatim-scheme", default="https", choices=["http", "https"])
    p.add_argument(
        "--user-agent",
        default="geolocate/0.1 (https://github.com/geolocate)",
        help="user agent sent to Nominatim (its usage policy requires one that identifies you)",
    )
    p.add_argument(
        "--osm-db", metavar="DB", help="local OSM index for the osm_search tool (from 'geolocate osm index')"
    )
    p.add_argument("--overpass", metavar="URL", help="Overpass interpreter URL for the osm_search tool")
    p.add_argument(
        "--clip-model",
        metavar="ID_OR_PATH",
        help="CLIP ViT-L/14 image encoder for the visual_candidates tool (GeoCLIP), e.g. "
        "openai/clip-vit-large-patch14; enables that tool unless the tool mask excludes it",
    )


def output_names(photos: list[str]) -> dict[str, str]:
    """A unique ``.json`` file name for each photo: its stem, or, where two photos share a stem, its
    path relative to the photos' common folder with ``/`` written as ``__``.

    >>> output_names(["a/x.jpg", "b/x.jpg", "b/y.png"])
    {'a/x.jpg': 'a__x.json', 'b/x.jpg': 'b__x.json', 'b/y.png': 'y.json'}
    """
    stems = [Path(p).stem for p in photos]
    absolute = [os.path.abspath(p) for p in photos]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute]) if photos else ""
    out = {}
    for p, a, stem in zip(photos, absolute, stems):
        if stems.count(stem) == 1:
            out[p] = f"{stem}.json"
        else:
            rel = Path(os.path.relpath(a, common)).with_suffix("")
            out[p] = "__".join(rel.parts) + ".json"
    return out


def _progress_text(node: str, state: EpisodeState) -> str:
    turn = len(state.turns)
    last = state.turns[-1].observations[-1].text if state.turns and state.turns[-1].observations else ""
    return f"turn {turn} [{node}] {last[:100]}"


def cmd_locate(args: argparse.Namespace) -> int:
    """Locate each photo in turn (one process: models and indexes load once).

    The cyclic garbage collector is paused until the first photo is done: start-up (imports, the
    OCR models, the GeoNames indexes) creates about a million long-lived objects and few cycles, and
    scanning them again and again costs about 0.2 s of a 2-3 s run on 2 cores.
    """
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        return _locate(args, resume_gc=paused)
    finally:
        if paused:
            gc.enable()


def _locate(args: argparse.Namespace, resume_gc: bool) -> int:
    import gc

    from rich.console import Console
    from rich.markup import escape

    from geolocate.agent.graph import stream_episode
    from geolocate.tools.errors import InputImageError
    from geolocate.tools.media import load_case
    from geolocate.tools.registry import ToolSet

    err = stderr()
    out = Console()
    several = len(args.photo) > 1 and not args.case
    if args.json:
        try:
            check_target(args.json, folder=several and args.json != "-")
        except OutputError as e:
            return fail(e)
    checkpoint_defaults(args)  # a trained planner runs with the tools, budgets and prompt it learned
    try:
        tools = ToolSet.parse_spec(tools_spec(args), exclude=["exif"] if args.no_exif else [])
        policy = policy_from_args(args)
        budget = budget_from_args(args)
        options = options_from_args(args).build()
        media = video_options(args)
    except (ValueError, OSError) as e:
        return fail(e)
    names = output_names(args.photo)
    rc = 0
    runs = [args.photo] if args.case else [[p] for p in args.photo]
    for paths in runs:
        photo = paths[0]
        try:
            image = load_case(paths, **media)
        except InputImageError as e:
            fail(e)
            rc = max(rc, EXIT_USAGE)
            continue
        for e in image.errors:  # a case with one bad medium runs on the others
            fail(e)
            rc = max(rc, EXIT_USAGE)
        state = None
        t0 = time.perf_counter()
        if args.quiet or not err.is_terminal:
            for node, state in stream_episode(image, tools, policy, budget, options=options):
                if not args.quiet:
                    print(_progress_text(node, state), file=sys.stderr)
        else:
            with err.status("starting (the first run builds the GeoNames index, ~15 s)...") as status:
                for node, state in stream_episode(image, tools, policy, budget, options=options):
                    status.update(escape(_progress_text(node, state)))
        assert state is not None
        state.elapsed_s = round(time.perf_counter() - t0, 4)
        if args.json:
            target = Path(args.json) / names[photo] if several and args.json != "-" else args.json
            text = json.dumps(state.dump(), ensure_ascii=False, indent=None if several else 2) + "\n"
            try:
                write_output(target, text)
            except OutputError as e:
                fail(f"{photo}: could not write the trajectory: {e}", EXIT_ERROR)
                rc = max(rc, EXIT_ERROR)
        if args.json != "-":
            print_result(state, out)
        failed = [w for w in state.warnings if w.startswith(f"policy {policy.name} failed")]
        if state.turns and len(failed) >= len(state.turns):
            fail(
                f"{photo}: every call to the planner failed ({len(failed)} of {len(state.turns)} turns); "
                f"the answer is only the fallback. Last error: {failed[-1]}",
                EXIT_ERROR,
            )
            rc = max(rc, EXIT_ERROR)
        if resume_gc:
            gc.enable()  # later photos: the start-up objects are scanned once, then stay old
    return rc
