"""The root ``geolocate`` command. Each wing registers its own command group through the entry-point
group ``geolocate.commands`` (a function ``register(subparsers)``), so this module imports none of
them by name: ``locate`` (agent), ``session`` (agent), ``eval``/``ablate`` (evals), ``train``
(policy_training), ``osm`` (tools.osm), ``services`` (tools), and any installed plug-in's.

Exit codes: 0 done (or honestly not localizable), 2 unusable input or bad arguments, 1 an unexpected
error or an output that could not be written.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

COMMAND_GROUP = "geolocate.commands"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``error: geolocate locate: argument --max-turns: '0' must be 1
    or more (geolocate locate --help)`` on standard error, exit 2 (argparse prints the whole usage)."""

    def error(self, message: str):
        from geolocate.agent.cli_common import fail

        raise SystemExit(fail(f"{self.prog}: {message} (see {self.prog} --help)"))


def build_parser() -> tuple[argparse.ArgumentParser, list]:
    """The root parser with every registered command group, and the modules that registered them.

    Raises:
        RuntimeError: no command is registered (the package's metadata is missing: reinstall it).
    """
    p = Parser(prog="geolocate", description="Find where a photo was taken, with evidence (Chain of Region).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = []
    # One per name: a checkout installed twice (an editable and a plain install) lists each twice.
    eps = sorted({e.name: e for e in entry_points(group=COMMAND_GROUP)}.values(), key=lambda e: e.name)
    if not eps:
        raise RuntimeError("no geolocate commands are registered: reinstall the package (pip install -e .)")
    for ep in eps:
        register = ep.load()
        register(sub)
        modules.append(sys.modules[register.__module__])
    return p, modules


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command; returns its exit code."""
    parser, modules = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for m in modules:
        rewrite = getattr(m, "rewrite_argv", None)
        if rewrite is not None:
            argv = rewrite(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a one-line usage error (Parser.error)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    return args.run(args)


def console_main() -> int:
    """Entry point of the ``geolocate`` console script: :func:`main`, then a faster exit.

    An exception no command handled is a bug: it is printed as one line (exit 1) unless
    ``GEOLOCATE_DEBUG`` is set, which shows the traceback; Ctrl-C exits 130.

    ``gc.freeze()`` moves every live object to the permanent generation, so the interpreter's
    final collection does not walk the objects that langgraph, langchain-core, pydantic and the
    tools create at import (about 0.3 s of a 2-3 s run on 2 cores). ``atexit`` handlers and
    buffered files are still run and flushed as usual. In-process users call :func:`main`.
    """
    import gc
    import os

    try:
        rc = main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `geolocate ... | head`: the reader left
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no error at the interpreter's final flush
        return 0
    except Exception as e:
        if os.environ.get("GEOLOCATE_DEBUG"):
            raise
        from geolocate.agent.cli_common import EXIT_ERROR, fail

        return fail(
            f"internal error: {type(e).__name__}: {e} (a bug in geolocate; run again with "
            "GEOLOCATE_DEBUG=1 for the traceback, and report it)",
            EXIT_ERROR,
        )
    gc.freeze()
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
