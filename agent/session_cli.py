"""``geolocate session ...``: investigator sessions from the terminal (a thin view over
:mod:`geolocate.agent.session`; the web workbench is the other view of the same store).

Exit codes: 0 done, 2 a session error (unknown or ambiguous id, nothing pending, photo changed,
store unusable, session in use) or bad arguments, 1 an output that could not be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.markup import escape

from geolocate.agent.cli_common import (
    EXIT_ERROR,
    EXIT_USAGE,
    add_budget_args,
    add_policy_args,
    budget_from_args,
    fail,
    print_result,
    stderr,
)
from geolocate.tools.files import OutputError, OutputTargetError, check_target, write_output


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="session store: a SQLite file (default: $GEOLOCATE_STORE, else sessions.sqlite in "
        "$GEOLOCATE_HOME "
        "or the user data folder) or postgresql://user@host/db",
    )


def register(sub) -> None:
    """Add the ``session`` command group to the root parser's sub-parsers."""
    from geolocate.agent.cli_locate import add_backend_args, add_media_args

    s = sub.add_parser(
        "session", help="investigator sessions: resumable, reviewed, with analyst moves and reports"
    )
    ss = s.add_subparsers(dest="session_command", required=True, metavar="ACTION")

    def cmd(name: str, help_: str, with_id: bool = True) -> argparse.ArgumentParser:
        p = ss.add_parser(name, help=help_, description=help_)
        if with_id:
            p.add_argument("id", help="session id (a unique prefix is enough)")
        _store_arg(p)
        p.add_argument("--quiet", action="store_true", help="no step-by-step output")
        return p

    p = cmd(
        "new",
        "start a session on a photo, or on a case of several photos and videos (one chain); runs to the "
        "first review point or the answer",
        with_id=False,
    )
    p.add_argument("photo", nargs="+", help="a photo, or several photos and videos: one case")
    add_media_args(p)
    p.add_argument(
        "--review",
        default="none",
        metavar="LEVELS",
        help="levels that wait for your approval: continent,country,region,city,coordinates,answer, "
        "'all' or "
        "'none' (default: none, run through)",
    )
    p.add_argument("--tools", default="all", metavar="LIST", help="tool mask (default: all)")
    p.add_argument("--no-exif", action="store_true", help="ignore the photo's EXIF metadata")
    p.add_argument("--interactive", action="store_true", help="ask at each review point in the terminal")
    p.add_argument(
        "--author", default=None, help="your name in the evidence log (default: $GEOLOCATE_AUTHOR or login)"
    )
    add_budget_args(p)
    add_backend_args(p)
    add_policy_args(p)
    cmd("list", "list the sessions in the store", with_id=False)
    p = cmd("show", "chain, pending review, evidence and branches of a session")
    p.add_argument("--checkpoint", default=None, help="show the state at this checkpoint (see history)")
    p.add_argument("--json", action="store_true", help="print the episode state as JSON")
    cmd("approve", "approve the pending commitment or answer")
    p = cmd("reject", "reject the pending commitment or answer; the planner will not propose it again")
    p.add_argument("--why", required=True, help="the reason (the planner reads it)")
    p = cmd("edit", "replace the pending value with yours")
    p.add_argument(
        "--value", required=True, help="the value for the pending level ('lat, lon' for an answer)"
    )
    p.add_argument("--confidence", type=float, default=0.9)
    p = cmd("hint", "tell the planner what you see ('cars drive on the left', 'the sign says Rua')")
    p.add_argument("text")
    p = cmd("constrain", "restrict where the photo can be; every later commit and answer respects it")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--country", metavar="CC", help="the photo is in this country (ISO 3166-1 code or name)")
    g.add_argument("--not-country", metavar="CC", help="the photo is not in this country")
    g.add_argument(
        "--bbox", metavar="S,W,N,E", help="inside this box, WGS84 degrees (write --bbox=-34.1,... for S<0)"
    )
    g.add_argument(
        "--circle", metavar="LAT,LON,KM", help="within KM km of (LAT, LON) (write --circle=-33.9,...)"
    )
    p = cmd("tool", "run a tool by hand and add its result to the evidence")
    p.add_argument("name", help="tool name (ocr, gazetteer, geocode, osm_search, zoom, ...)")
    p.add_argument(
        "--args", default="{}", metavar="JSON", help='arguments as JSON, e.g. \'{"query": "Vaduz"}\''
    )
    p = cmd("backtrack", "remove a committed level and all below it; the planner goes on from there")
    p.add_argument("level")
    p = cmd(
        "split",
        "split a case: a new session (own Chain of Region) on the media named, another on the rest; "
        "the original stays as it is",
    )
    p.add_argument("media", nargs="+", metavar="MEDIUM", help="medium ids to split off (m2 m3; see show)")
    p = cmd(
        "relate",
        "relate two chains of a case: this session was taken within KM km of where OTHER answered "
        "(a circle constraint around OTHER's answer, widened by its radius)",
    )
    p.add_argument("other", help="the other session's id (a unique prefix is enough)")
    p.add_argument("--within-km", type=float, required=True, metavar="KM", help="how far apart, km (> 0)")
    p = cmd("conclude", "end the session on the current branch")
    p.add_argument("--note", default="")
    p = cmd("resume", "go on with a session that stopped mid-run (killed, crashed)")
    p.add_argument("--force", action="store_true", help="go on although the photo changed on disk")
    p.add_argument("--interactive", action="store_true", help="then ask at each review point in the terminal")
    cmd("history", "the checkpoints of the current branch")
    p = cmd("fork", "start a new branch from an earlier checkpoint (see history)")
    p.add_argument("checkpoint")
    p = cmd("switch", "make another branch the current one (see show)")
    p.add_argument("branch")
    p = cmd("report", "evidence report: Markdown, self-contained HTML, GeoJSON or KML, with its manifest")
    p.add_argument("--format", choices=["md", "html", "geojson", "kml"], default="md")
    p.add_argument(
        "-o", "--out", metavar="FILE", help="write here ('-' or nothing: standard output; html needs -o)"
    )
    p.add_argument(
        "--sign",
        metavar="KEY",
        help="sign the report's manifest with this Ed25519 private key (geolocate keys new makes one)",
    )
    v = ss.add_parser(
        "verify",
        help="check a report from the file alone: its evidence chain, its text and its signature",
        description="Recompute every evidence hash, the chain head, each entry's rendering, the body hash "
        "and the signature of a report (md, html, geojson or kml); exit 0 when intact, 1 naming the first "
        "entry that differs, 2 when the file holds no readable manifest.",
    )
    v.add_argument("report", help="the report file ('-' for standard input)")
    v.add_argument("--key", metavar="PUBLIC_KEY", help="the signer's Ed25519 public key (PEM) you trust")
    v.set_defaults(session_command="verify")
    cmd("delete", "delete a session and all its checkpoints")
    s.set_defaults(run=cmd_session)
    k = sub.add_parser("keys", help="Ed25519 keys to sign evidence reports")
    ks = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kn = ks.add_parser("new", help="make a key pair: PREFIX.key (private, mode 0600) and PREFIX.pub")
    kn.add_argument(
        "--out", metavar="PREFIX", default="geolocate-ed25519", help="file name prefix (default: %(default)s)"
    )
    k.set_defaults(run=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    """``geolocate keys new``: a new Ed25519 key pair for ``session report --sign``."""
    from geolocate.agent.provenance import ProvenanceError, fingerprint, load_public_key, new_keypair

    try:
        key, pub = new_keypair(args.out)
    except OutputTargetError as e:
        return fail(e)
    except OutputError as e:
        return fail(e, EXIT_ERROR)
    except ProvenanceError as e:
        return fail(e)
    print(f"private key: {key} (keep it secret)\npublic key:  {pub} (give it to whoever verifies)")
    print(f"fingerprint: {fingerprint(load_public_key(pub))}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``geolocate session verify REPORT [--key PUB]``: exit 0 intact, 1 a difference, 2 unreadable."""
    from geolocate.agent.provenance import ProvenanceError, load_public_key, verify_report

    try:
        text = sys.stdin.read() if args.report == "-" else Path(args.report).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return fail(f"{args.report}: cannot read the report ({getattr(e, 'strerror', None) or e})")
    try:
        key = load_public_key(args.key) if args.key else None
        v = verify_report(text, key)
    except ProvenanceError as e:
        return fail(f"{args.report}: {e}")
    if not v.ok:
        return fail(f"{args.report}: NOT intact: {v.problem}", EXIT_ERROR)
    who = (
        f"signed by {v.signed_by}"
        + (
            ""
            if v.key_checked
            else " (the key the report carries; pass --key to check it is the signer you trust)"
        )  # fmt: skip
        if v.signed_by
        else "not signed"
    )
    print(
        f"{args.report}: intact ({v.format}): {', '.join(v.checked)}; chain head {v.chain_head}; photo "
        f"SHA-256 {v.photo_sha256}; {who}"
    )
    return 0


def _printer(quiet: bool):
    if quiet:
        return None
    err = stderr()

    def on_step(node: str, ep) -> None:
        last = ep.turns[-1].observations[-1].text if ep.turns and ep.turns[-1].observations else ""
        err.print(
            f"[dim]turn {len(ep.turns)} \\[{node}][/dim] {escape(last[:110])}", markup=True, highlight=False
        )

    return on_step


def print_view(view, console) -> None:
    """The session's chain and answer, the pending review, analyst moves and branches."""
    from rich.panel import Panel
    from rich.table import Table

    print_result(view.episode, console)
    moves = [e for e in view.episode.evidence if e.author is not None]
    if moves:
        t = Table(title="analyst moves", show_lines=False)
        for col in ("id", "kind", "what", "author", "UTC"):
            t.add_column(col)
        for e in moves:
            t.add_row(e.id, e.tool, escape(e.summary[:90]), escape(e.author or ""), e.utc or "")
        console.print(t)
    if len(view.branches) > 1:
        t = Table(title="branches")
        for col in ("branch", "current", "chain", "answer", "concluded"):
            t.add_column(col)
        for b in view.branches:
            chain = escape(" > ".join(c.value for c in b.episode.chain.values()))
            a = b.episode.answer
            t.add_row(
                b.short,
                "*" if b.current else "",
                chain,
                f"{a.lat:.4f}, {a.lon:.4f}" if a else "-",
                str(b.concluded),
            )
        console.print(t)
    p = view.pending
    if p and p.get("kind") == "review":
        act = p["action"]
        what = (
            f"{p['level']} = {act['value']} (confidence {act['confidence']:.2f}, evidence "
            f"{', '.join(act['evidence'])})"
            if p["level"] != "answer"
            else f"answer ({act['lat']:.5f}, {act['lon']:.5f}) +- {act['radius_km']:g} km"
        )
        sid = view.info.id
        console.print(
            Panel(
                f"{escape(what)}\n\n"
                f"geolocate session approve {sid}  |  reject {sid} --why TEXT  |  edit {sid} --value V",
                title="waiting for your review",
            )
        )
    console.print(
        f"session {view.info.id}: {view.status} (checkpoint {view.checkpoint.replace('-', '')[-8:]})"
    )


def _move(args: argparse.Namespace) -> dict:
    kind = args.session_command
    if kind == "approve":
        return {"kind": "approve"}
    if kind == "reject":
        return {"kind": "reject", "reason": args.why}
    if kind == "edit":
        return {"kind": "edit", "value": args.value, "confidence": args.confidence}
    if kind == "hint":
        return {"kind": "hint", "text": args.text}
    if kind == "backtrack":
        return {"kind": "backtrack", "level": args.level}
    if kind == "conclude":
        return {"kind": "conclude", "note": args.note}
    if kind == "tool":
        try:
            arguments = json.loads(args.args)
        except json.JSONDecodeError as e:
            raise ValueError(f"--args is not JSON: {e}") from None
        if not isinstance(arguments, dict):
            raise ValueError('--args must be a JSON object, e.g. \'{"query": "Vaduz"}\'')
        return {"kind": "tool", "name": args.name, "arguments": arguments}
    return {"kind": "constrain", "constraint": constraint_from_args(args)}


def constraint_from_args(args: argparse.Namespace) -> dict:
    """The constraint dict of ``session constrain`` flags.

    Raises:
        ValueError: a box or circle that is not finite numbers.
    """
    from geolocate.agent.cli_common import numbers

    if args.country:
        return {"kind": "country", "country": args.country}
    if args.not_country:
        return {"kind": "not_country", "country": args.not_country}
    if args.bbox:
        return {"kind": "bbox", "bbox": numbers(args.bbox, 4, "--bbox S,W,N,E")}
    lat, lon, km = numbers(args.circle, 3, "--circle LAT,LON,KM")
    return {"kind": "circle", "lat": lat, "lon": lon, "radius_km": km}


def cmd_session(args: argparse.Namespace) -> int:
    """Run one ``session`` action."""
    import os

    from pydantic import ValidationError
    from rich.console import Console

    from geolocate.agent.session import SessionError, SessionStore
    from geolocate.tools.errors import GeolocateError, format_validation_error

    out = Console(soft_wrap=True)
    if args.session_command == "verify":  # from the file alone: no store is opened
        return cmd_verify(args)
    try:
        with SessionStore(args.store or os.environ.get("GEOLOCATE_STORE")) as store:
            return _dispatch(args, store, out)
    except ValidationError as e:
        return fail(format_validation_error(e))
    except OutputTargetError as e:
        return fail(e)
    except OutputError as e:
        return fail(e, EXIT_ERROR)
    except (SessionError, GeolocateError, ValueError) as e:
        return fail(e)
    except OSError as e:
        return fail(f"{e.strerror or e}: {getattr(e, 'filename', '') or ''}".rstrip(": "), EXIT_ERROR)


def _dispatch(args: argparse.Namespace, store, out) -> int:
    from geolocate.agent.analyst import parse_review_levels
    from geolocate.agent.cli_common import policy_from_args

    action = args.session_command
    on_step = _printer(args.quiet)
    if action == "new":
        from geolocate.agent.cli_common import checkpoint_defaults
        from geolocate.agent.cli_locate import options_from_args, tools_spec

        checkpoint_defaults(args)
        policy = policy_from_args(args)  # checks the planner options before anything runs
        from geolocate.agent.cli_locate import video_options

        photos = args.photo[0] if len(args.photo) == 1 else args.photo
        opts = video_options(args)
        view = store.create(
            photos,
            video_options=opts,
            review=parse_review_levels(args.review),
            policy=args.policy or policy.name,
            policy_args=_policy_kwargs(args),
            tools=tools_spec(args),
            no_exif=args.no_exif,
            budget=budget_from_args(args),
            options=options_from_args(args),
            author=args.author,
            on_step=on_step,
        )
        print(view.info.id)
        if args.interactive:
            view = interactive(store, view, out, on_step)
        print_view(view, out)
        left_out = [
            w.removeprefix("medium not used: ")
            for w in view.episode.warnings
            if w.startswith("medium not used: ")
        ]
        for w in left_out:  # a case runs on the usable media; the others are said, and the exit code says so
            fail(w)
        return EXIT_USAGE if left_out else 0
    if action == "list":
        from rich.table import Table

        t = Table(title=f"sessions in {store.url}")
        for col in ("id", "photo", "status", "chain", "answer", "last change (UTC)"):
            t.add_column(col)
        for s in store.summaries():
            a = s["answer"]
            t.add_row(
                s["id"],
                Path(s["photo"]).name + (f" +{s['media'] - 1} media" if s.get("media", 1) > 1 else ""),
                s["status"],
                escape(" > ".join(s["chain"].values())),
                f"{a['lat']:.4f}, {a['lon']:.4f} +- {a['radius_km']:g} km" if a else "-",
                s["updated"][:19],
            )
        out.print(t)
        return 0
    sid = store.resolve(args.id)
    if action == "show":
        view = store.view(sid, args.checkpoint)
        if args.json:
            print(json.dumps(view.episode.dump(), ensure_ascii=False, indent=2))
        else:
            print_view(view, out)
        return 0
    if action == "history":
        from rich.table import Table

        t = Table(title=f"history of session {sid} (current branch)")
        for col in ("checkpoint", "step", "source", "next", "UTC", "state"):
            t.add_column(col)
        for h in store.history(sid):
            t.add_row(h.short, str(h.step), h.source, h.node, h.ts[:19], escape(h.summary))
        out.print(t)
        return 0
    if action == "resume":
        view = store.resume(sid, force=args.force, on_step=on_step)
        if args.interactive:
            view = interactive(store, view, out, on_step)
        print_view(view, out)
        return 0
    if action == "fork":
        print_view(store.fork(sid, args.checkpoint, on_step=on_step), out)
        return 0
    if action == "relate":
        print_view(store.relate(sid, args.other, args.within_km, on_step=on_step), out)
        return 0
    if action == "split":
        for part in store.split(sid, args.media, on_step=on_step):
            print(part.info.id)
            print_view(part, out)
        return 0
    if action == "switch":
        print_view(store.switch(sid, args.branch), out)
        return 0
    if action == "delete":
        store.delete(sid)
        print(f"deleted session {sid}")
        return 0
    if action == "report":
        from geolocate.agent.report import render_report

        if args.format == "html" and not args.out:
            raise ValueError("the HTML report is a file: give -o FILE (or -o - for standard output)")
        if args.out:
            try:
                check_target(args.out)
            except OutputError as e:
                raise ValueError(str(e)) from None
        key = None
        if args.sign:
            from geolocate.agent.provenance import ProvenanceError, load_private_key

            try:
                key = load_private_key(args.sign)
            except ProvenanceError as e:
                raise ValueError(str(e)) from None
        text = render_report(store, sid, args.format, sign_key=key)
        if args.out and args.out != "-":
            write_output(args.out, text, private=True)
            print(f"{args.format} report of session {sid}: {args.out}")
        else:
            write_output("-", text)
        return 0
    view = store.move(sid, _move(args), on_step=on_step)
    print_view(view, out)
    return 0


def _policy_kwargs(args: argparse.Namespace) -> dict:
    """What a VLM policy needs again when the session resumes (never the API key: that stays in the
    environment)."""
    if args.server or args.model:
        keys = ("model", "dtype", "device", "max_new_tokens", "temperature", "seed")
        kw = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
        if args.server:
            kw = {
                "base_url": args.server,
                "model": args.model,
                "max_tokens": args.max_new_tokens or 768,
                "seed": args.seed,
            }
        return kw
    return {}


def interactive(store, view, out, on_step):
    """Ask at each pause in the terminal (rich prompts) until the analyst concludes or quits."""
    from rich.prompt import Prompt

    while view.pending is not None:
        print_view(view, out)
        if view.pending.get("kind") == "review":
            choice = Prompt.ask(
                "decision", choices=["approve", "reject", "edit", "hint", "quit"], default="approve"
            )
        else:
            choice = Prompt.ask("next", choices=["conclude", "hint", "quit"], default="conclude")
        if choice == "quit":
            break
        if choice == "reject":
            move = {"kind": "reject", "reason": Prompt.ask("why")}
        elif choice == "edit":
            move = {"kind": "edit", "value": Prompt.ask("value")}
        elif choice == "hint":
            move = {"kind": "hint", "text": Prompt.ask("what do you see")}
        else:
            move = {"kind": choice}
        view = store.move(view.info.id, move, on_step=on_step)
        if view.concluded:
            break
    return view
