"""What every command group of the CLI shares: consoles, error printing, progress bars, planner
and budget options.

Each wing owns its commands (``agent/cli_locate.py``, ``agent/session_cli.py``, ``evals/cli.py``,
``policy_training/cli.py``, ``tools/osm/cli.py``, ``tools/cli.py``) and registers them with the root
command (:mod:`geolocate.agent.cli`) through the entry-point group ``geolocate.commands``.
"""

from __future__ import annotations

import argparse
import os

from geolocate.agent.state import Budget

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
"""Exit codes: done; an unexpected error; unusable input or bad arguments."""


def stderr():
    """A rich console on standard error (progress, warnings, errors)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def one_line(message: object) -> str:
    """``message`` as one line: a pydantic ``ValidationError`` as ``field: problem; ...``, any other
    text with its line breaks folded.

    >>> one_line("no such file\\n  (check the path)")
    'no such file (check the path)'
    """
    from pydantic import ValidationError

    from geolocate.tools.errors import format_validation_error

    text = format_validation_error(message) if isinstance(message, ValidationError) else str(message)
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def fail(message: object, code: int = EXIT_USAGE) -> int:
    """Print ``error: message`` on standard error as one line and return ``code``."""
    from rich.markup import escape

    stderr().print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True)
    return code


def progress(label: str):
    """A rich progress bar (label, bar, n/total, time left) on standard error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=stderr(),
    )


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, metres, km).

    >>> positive_float("2.5")
    2.5
    """
    import math

    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return x


def finite_float(text: str) -> float:
    """argparse type: a finite number (no NaN, no infinity).

    >>> finite_float("-33.9")
    -33.9
    """
    import math

    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return x


def numbers(text: str, n: int, what: str) -> list[float]:
    """``n`` comma-separated finite numbers (a bbox, a circle).

    >>> numbers("59.9, 10.7, 5", 3, "--circle LAT,LON,KM")
    [59.9, 10.7, 5.0]

    Raises:
        ValueError: not ``n`` numbers, or one is NaN or infinite (the message names ``what``).
    """
    import math

    try:
        xs = [float(x) for x in str(text).split(",")]
    except ValueError:
        xs = []
    if len(xs) != n:
        raise ValueError(f"{what} needs {n} comma-separated numbers, got {text!r}")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError(f"{what} needs finite numbers (no nan or inf), got {text!r}")
    return xs


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if x < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return x


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return x


def add_budget_args(p: argparse.ArgumentParser) -> None:
    """``--max-turns`` and ``--max-tool-calls`` (defaults from :class:`Budget`)."""
    p.add_argument(
        "--max-turns",
        type=positive_int,
        default=None,
        help=f"turn budget (default: a trained checkpoint's, else {Budget().max_turns})",
    )
    p.add_argument(
        "--max-tool-calls",
        type=nonnegative_int,
        default=None,
        help=f"tool-call budget (default: a trained checkpoint's, else {Budget().max_tool_calls})",
    )


def checkpoint_defaults(args: argparse.Namespace) -> dict | None:
    """Fill the tool mask and budgets a command line leaves unset from the checkpoint ``--model``
    names, when ``geolocate train`` recorded them (``geolocate_training.json``); returns what it read."""
    from geolocate.agent.policies.transformers_policy import training_metadata

    meta = training_metadata(args.model) if getattr(args, "model", None) else None
    if not meta:
        return None
    used = []
    if getattr(args, "tools", None) is None and meta.get("tools"):
        args.tools, _ = meta["tools"], used.append(f"tools {meta['tools']}")
    for key in ("max_turns", "max_tool_calls"):
        if getattr(args, key, None) is None and meta.get(key):
            setattr(args, key, int(meta[key]))
            used.append(f"{key.replace('_', '-')} {meta[key]}")
    if used:
        stderr().print(
            f"using what {args.model} was trained with: {', '.join(used)}, "
            f"prompt v{meta.get('prompt_version')}"
        )
    return meta


def budget_from_args(args: argparse.Namespace) -> Budget:
    """The Budget of ``--max-turns``/``--max-tool-calls`` (unset: the defaults)."""
    d = Budget()
    return Budget(
        max_turns=args.max_turns if args.max_turns is not None else d.max_turns,
        max_tool_calls=args.max_tool_calls if args.max_tool_calls is not None else d.max_tool_calls,
    )


def add_policy_args(p: argparse.ArgumentParser) -> None:
    """The planner options: ``--policy`` (a name or ``module:attr``), ``--model``, ``--server``..."""
    g = p.add_argument_group(
        "planner",
        "the heuristic planner by default; a Qwen-VL model with --model (in-process) or --server (served)",
    )
    g.add_argument(
        "--policy",
        default=None,
        help="heuristic, transformers, openai_compatible, a plug-in's name, or module:attr "
        "(default: heuristic; implied by --model / --server)",
    )
    g.add_argument(
        "--model",
        metavar="ID_OR_PATH",
        help="a Qwen2-VL/Qwen2.5-VL/Qwen3-VL checkpoint: hub id or local folder (with --server: the "
        "served model name)",
    )
    g.add_argument(
        "--server", metavar="URL", help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1"
    )
    g.add_argument(
        "--api-key", default=None, help="API key for --server (default: $OPENAI_API_KEY or 'EMPTY')"
    )
    g.add_argument("--dtype", default="auto", help="model dtype for --model (bfloat16 on GPUs)")
    g.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    g.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=None,
        help="new tokens per turn (default: what a trained checkpoint was trained with, else 768)",
    )
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--seed", type=int, default=None)


def policy_from_args(args: argparse.Namespace):
    """The Policy the command line asks for.

    Raises:
        ValueError: inconsistent options; UnknownNameError (a ValueError): an unknown policy.
    """
    from geolocate.agent.policies import make_policy

    name = args.policy or (
        "openai_compatible" if args.server else "transformers" if args.model else "heuristic"
    )
    if name == "transformers":
        if not args.model:
            raise ValueError("the transformers policy needs --model ID_OR_PATH")
        return make_policy(
            name,
            model=args.model,
            dtype=args.dtype,
            device=args.device,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            seed=args.seed,
        )
    if name == "openai_compatible":
        if not (args.server and args.model):
            raise ValueError("the openai_compatible policy needs --server URL and --model NAME")
        key = args.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return make_policy(
            name,
            base_url=args.server,
            model=args.model,
            api_key=key,
            max_tokens=args.max_new_tokens or 768,
            temperature=args.temperature,
            seed=args.seed,
        )
    return make_policy(name)


def media_title(media: list[dict]) -> str:
    """``a case of 3 media: a.jpg, b.jpg, clip.mp4 (10.0 s, 10 keyframes)``."""
    from pathlib import Path

    def one(m: dict) -> str:
        name = Path(m["path"]).name
        if m.get("kind") == "video":
            dur = f"{m['duration_s']:.1f} s, " if m.get("duration_s") is not None else ""
            return f"{name} ({dur}{len(m.get('frames', []))} keyframes)"
        return name

    return f"a case of {len(media)} media: " + ", ".join(one(m) for m in media)


def print_result(state, console) -> None:
    """Print an episode's Chain of Region with its evidence, the answer and an OpenStreetMap link."""
    from rich.markup import escape  # text read from the photo may look like rich markup ([/INST])
    from rich.table import Table

    from geolocate.tools.geo import osm_url

    ev = {e.id: e for e in state.evidence}
    what = state.image.path if not state.media else media_title(state.media)
    table = Table(title=f"Chain of Region for {escape(what)}", show_lines=False)
    table.add_column("level")
    table.add_column("value")
    table.add_column("conf", justify="right")
    table.add_column("evidence")
    for lv, c in state.chain.items():
        cites = "; ".join(f"{i}: {ev[i].tool}: {ev[i].summary[:70]}" if i in ev else i for i in c.evidence)
        table.add_row(
            lv.value,
            escape(
                c.value + (f" ({c.code})" if c.code and c.code != c.value and not c.code.isdigit() else "")
            ),
            f"{c.confidence:.2f}",
            escape(cites),
        )
    a = state.answer
    if a is not None:
        table.add_row(
            "coordinates",
            f"{a.lat:.5f}, {a.lon:.5f}",
            f"{a.localizability:.2f}",
            f"radius {a.radius_km:g} km ({a.source})",
        )
    console.print(table)
    if a is not None:
        console.print(
            f"[bold]Answer:[/bold] {a.lat:.5f}, {a.lon:.5f} +- {a.radius_km:g} km   "
            f"localizability {a.localizability:.2f}"
        )
        console.print(f"OpenStreetMap: {osm_url(a.lat, a.lon, zoom=osm_zoom(a.radius_km))}", soft_wrap=True)
    if not state.chain:
        console.print("No region could be committed from the evidence: treat the answer as a guess.")
    for w in state.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)
    n_fail = sum(not e.ok for e in state.evidence)
    console.print(
        f"{len(state.turns)} turns, {len(state.evidence)} tool calls ({n_fail} failed), "
        f"{state.elapsed_s:.2f} s, status {state.status}"
    )


def osm_zoom(radius_km: float) -> int:
    """An OpenStreetMap zoom level that shows a circle of ``radius_km``.

    >>> osm_zoom(1.0), osm_zoom(2500.0)
    (15, 4)
    """
    import math

    return int(max(2, min(17, round(14 - math.log2(max(radius_km, 0.05) / 2)))))
