"""Command-line interface: ``geolocate locate PHOTO``.

Exit codes: 0 located (or honestly not), 2 unusable input or bad arguments, 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from geolocate.agent.state import TRAJECTORY_SCHEMA, Budget, EpisodeState


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="geolocate", description="Find where a photo was taken, with evidence (Chain of Region)."
    )
    sub = p.add_subparsers(dest="command", required=True)
    loc = sub.add_parser(
        "locate",
        help="geolocate one photo",
        description="Geolocate one photo and print the Chain of Region with its evidence.",
    )
    loc.add_argument(
        "photo", nargs="+", help="path(s) to the photo(s) (JPEG, PNG, WebP, ...); several run in one process"
    )
    loc.add_argument(
        "--json",
        metavar="OUT",
        help=f"write the full trajectory as JSON ({TRAJECTORY_SCHEMA}) to OUT ('-' for stdout; a folder of <photo>.json for several photos)",
    )
    loc.add_argument(
        "--tools",
        default="all",
        metavar="LIST",
        help="tools to enable: comma list, 'all', or 'all,-ocr' (default: all)",
    )
    loc.add_argument(
        "--no-exif", action="store_true", help="ignore the photo's EXIF metadata (as benchmarks do)"
    )
    loc.add_argument(
        "--max-turns", type=int, default=Budget().max_turns, help="turn budget (default: %(default)s)"
    )
    loc.add_argument(
        "--max-tool-calls",
        type=int,
        default=Budget().max_tool_calls,
        help="tool-call budget (default: %(default)s)",
    )
    loc.add_argument(
        "--tool-timeout",
        type=float,
        default=None,
        metavar="S",
        help="override every tool's timeout, in seconds",
    )
    loc.add_argument(
        "--nominatim",
        metavar="HOST[:PORT]",
        help="use this Nominatim server for the geocode tool instead of offline GeoNames (e.g. localhost:8088)",
    )
    loc.add_argument("--nominatim-scheme", default="https", choices=["http", "https"])
    loc.add_argument(
        "--user-agent",
        default="geolocate/0.1 (https://github.com/geolocate)",
        help="user agent sent to Nominatim (its usage policy requires one that identifies you)",
    )
    loc.add_argument(
        "--osm-db", metavar="DB", help="local OSM index for the osm_search tool (from 'geolocate osm index')"
    )
    loc.add_argument("--overpass", metavar="URL", help="Overpass interpreter URL for the osm_search tool")
    loc.add_argument("--quiet", action="store_true", help="no progress output")
    _policy_args(loc)
    osm = sub.add_parser("osm", help="OpenStreetMap feature search: build a local index, run queries")
    osub = osm.add_subparsers(dest="osm_command", required=True)
    oi = osub.add_parser(
        "index", help="build the embedded SQLite index of an .osm.pbf / .osm / .osm.gz extract"
    )
    oi.add_argument("extract")
    oi.add_argument("--out", metavar="DB", help="index file (default: next to the extract, .sqlite)")
    oq = osub.add_parser(
        "query",
        help="run a FeatureQuery (JSON file, '-' for stdin, or simple flags)",
        description="Examples: geolocate osm query --db li.sqlite --bbox 47.0,9.4,47.3,9.7 --feature amenity=place_of_worship "
        "--feature amenity=pharmacy --within 200 ; geolocate osm query --db li.sqlite query.json --geojson",
    )
    oq.add_argument("query", nargs="?", help="FeatureQuery JSON file, or '-' for stdin")
    oq.add_argument("--db", metavar="DB", help="local index (from 'geolocate osm index')")
    oq.add_argument("--overpass", metavar="URL", help="Overpass interpreter URL instead of a local index")
    oq.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="TAGS",
        help="a feature as comma-separated filters: k=v, k!=v, k~regex, k, !k, k>=4 (repeatable)",
    )
    oq.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        help="a preset feature (road, building, place_of_worship, shop, ...; repeatable)",
    )
    oq.add_argument("--name", help="name regex for the first feature")
    oq.add_argument(
        "--within", type=float, metavar="M", help="every other feature within M metres of the first"
    )
    oq.add_argument("--bbox", metavar="S,W,N,E")
    oq.add_argument("--around", metavar="LAT,LON,RADIUS_M")
    oq.add_argument("--area", metavar="ISO_OR_NAME", help="admin area: ISO 3166 code (LI, CH-ZH) or name")
    oq.add_argument("--limit", type=int, default=50)
    oq.add_argument("--max-area-km2", type=float, default=2500.0, help="area guard (default: %(default)s)")
    oq.add_argument(
        "--geojson", action="store_true", help="print a GeoJSON FeatureCollection instead of a table"
    )

    ev = sub.add_parser(
        "eval",
        help="evaluate a policy on a benchmark, or score a predictions CSV",
        description="Run a policy over a dataset (resumable) and report acc@1/25/200/750/2500 km, median km, GeoScore with "
        "95%% bootstrap CIs, Chain-of-Region accuracy, localizability calibration and tool usage; or score external predictions.",
    )
    _dataset_args(ev)
    ev.add_argument(
        "--tools",
        default="all",
        metavar="LIST",
        help="tool set (default: all; EXIF stays off unless --use-exif)",
    )
    ev.add_argument(
        "--predictions",
        metavar="CSV",
        help="score this predictions CSV (id, lat, lon) against --labels instead of running",
    )
    ab = sub.add_parser(
        "ablate",
        help="run one benchmark with several tool sets and write one table",
        description="Each value of --tools is one arm: 'all', '-ocr' (all but ocr), 'ocr,clues' (exactly those). Example: "
        "geolocate ablate --dataset osv5m --data DIR --tools all -ocr -gazetteer",
    )
    _dataset_args(ab)
    sv = sub.add_parser(
        "services", help="self-hosted Nominatim and PostGIS on loopback (Debian): up, down, status"
    )
    sv.add_argument("action", choices=["up", "down", "status"])
    sv.add_argument(
        "extracts",
        nargs="*",
        help="OSM extracts to import (up); default: the Andorra, Liechtenstein and Helsinki extracts in ../shared/data/osm",
    )
    tr = sub.add_parser("train", help="GRPO training of the planner (see policy_training/configs/)")
    tr.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML or JSON GeoGRPOConfig (any trl.GRPOConfig field too)",
    )
    return p


DEFAULT_SERVICE_EXTRACTS = ("andorra.osm.pbf", "liechtenstein-2013-08-03.osm.pbf", "helsinki.osm.pbf")


def cmd_services(args: argparse.Namespace) -> int:
    from geolocate.tools.services import Services, ServicesError

    svc = Services.default()
    err = _stderr()
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
        err.print(f"[red]error:[/red] {e}")
        return 2
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    err = _stderr()
    try:
        from geolocate.policy_training.train import load_config, train
    except ImportError as e:
        err.print(
            f"[red]error:[/red] training needs the 'train' extra ({e.name} missing): pip install 'geolocate-agent[train]'"
        )
        return 2
    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[red]error:[/red] {e}")
        return 2
    out = train(cfg)
    print(f"trained model and processor saved in {out}")
    return 0


def _policy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "planner",
        "the heuristic planner by default; a Qwen-VL model with --model (in-process) or --server (served)",
    )
    g.add_argument(
        "--policy",
        default=None,
        help="heuristic, transformers or openai_compatible (default: heuristic; implied by --model / --server)",
    )
    g.add_argument(
        "--model",
        metavar="ID_OR_PATH",
        help="a Qwen2-VL/Qwen2.5-VL/Qwen3-VL checkpoint: hub id or local folder (with --server: the served model name)",
    )
    g.add_argument(
        "--server",
        metavar="URL",
        help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vllm serve MODEL)",
    )
    g.add_argument(
        "--api-key", default=None, help="API key for --server (default: $OPENAI_API_KEY or 'EMPTY')"
    )
    g.add_argument("--dtype", default="auto", help="model dtype for --model (bfloat16 on GPUs)")
    g.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    g.add_argument("--max-new-tokens", type=int, default=768)
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--seed", type=int, default=None)


def policy_from_args(args: argparse.Namespace):
    """The Policy the command line asks for.

    Raises:
        ValueError / KeyError: inconsistent options or an unknown policy.
    """
    import os

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
            max_tokens=args.max_new_tokens,
            temperature=args.temperature,
            seed=args.seed,
        )
    return make_policy(name)


DATASET_LAYOUTS = ["csv", "im2gps3k", "mp16-pro", "osv5m", "yfcc4k"]
"""Benchmark layouts of ``--dataset`` (the loaders of :mod:`geolocate.evals.datasets`)."""


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        choices=DATASET_LAYOUTS,
        default="csv",
        help="benchmark layout (default: csv, with the column options)",
    )
    p.add_argument("--data", metavar="DIR", help="dataset folder (osv5m: DIR/labels.csv and DIR/images/)")
    p.add_argument(
        "--labels", metavar="CSV", help="labels CSV (im2gps3k, yfcc4k, mp16-pro, csv, or with --predictions)"
    )
    p.add_argument("--images", metavar="DIR", help="image folder (im2gps3k, yfcc4k, mp16-pro, csv)")
    p.add_argument("--id-col", default="id")
    p.add_argument("--lat-col", default="latitude")
    p.add_argument("--lon-col", default="longitude")
    p.add_argument(
        "--pattern", default="{id}.jpg", help="image file name for an id (csv layout; default: {id}.jpg)"
    )
    _policy_args(p)
    p.add_argument("--limit", type=int, help="only the first N photos")
    p.add_argument("--workers", type=int, default=1, help="episodes in parallel (threads)")
    p.add_argument("--max-turns", type=int, default=Budget().max_turns)
    p.add_argument("--max-tool-calls", type=int, default=Budget().max_tool_calls)
    p.add_argument(
        "--use-exif",
        action="store_true",
        help="let the agent read EXIF (off by default: the answer must not come from metadata)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="eval-out",
        help="results folder: trajectories JSONL (resumable), tables, report (default: eval-out)",
    )


def _load_dataset(args: argparse.Namespace):
    from geolocate.evals import datasets as D

    if args.dataset == "osv5m":
        if not args.data:
            raise ValueError("--dataset osv5m needs --data DIR")
        ds = D.load_osv5m(args.data)
    elif args.dataset == "csv":
        if not (args.labels and args.images):
            raise ValueError("a csv dataset needs --labels CSV and --images DIR")
        ds = D.load_csv(args.labels, args.images, args.id_col, args.lat_col, args.lon_col, args.pattern)
    else:
        if not (args.labels and args.images):
            raise ValueError(f"--dataset {args.dataset} needs --labels CSV and --images DIR")
        ds = D.LOADERS[args.dataset](args.labels, args.images)
    return ds.subset(args.limit)


def _progress(total: int, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=_stderr(),
    )


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def cmd_eval(args: argparse.Namespace) -> int:
    from geolocate.evals.datasets import load_prediction_records
    from geolocate.evals.metrics import evaluate_records
    from geolocate.evals.report import flat_row, markdown_table, write_report
    from geolocate.evals.runner import run_dataset
    from geolocate.tools.registry import ToolSet

    err = _stderr()
    out = Path(args.out)
    try:
        if args.predictions:
            if not args.labels:
                raise ValueError("--predictions needs --labels CSV")
            recs = load_prediction_records(args.predictions, args.labels)
            name = Path(args.predictions).stem
        else:
            ds = _load_dataset(args)
            spec = args.tools if args.use_exif else f"{args.tools},-exif"
            ToolSet.parse_spec(spec)
            out.mkdir(parents=True, exist_ok=True)
            policy = policy_from_args(args)
            name = f"{policy.name} ({args.tools})"
            budget = Budget(max_turns=args.max_turns, max_tool_calls=args.max_tool_calls)
            recs = []
            with _progress(len(ds), f"{ds.name}") as bar:
                task = bar.add_task("eval", total=len(ds))
                for r in run_dataset(
                    ds, policy, spec, budget, out / "trajectories.jsonl", args.workers, seed=args.seed or 0
                ):
                    recs.append(r)
                    bar.advance(task)
    except (FileNotFoundError, KeyError, ValueError) as e:
        err.print(f"[red]error:[/red] {e.args[0] if isinstance(e, KeyError) else e}")
        return 2
    print(markdown_table([flat_row(name, evaluate_records(recs))]))
    report = write_report(out, {name: recs})
    print(f"\nreport: {report}")
    return 0


def cmd_ablate(args: argparse.Namespace, tool_sets: list[str]) -> int:
    from geolocate.evals.ablation import run_ablation
    from geolocate.evals.report import markdown_table
    from geolocate.tools.errors import UnknownToolError

    err = _stderr()
    try:
        ds = _load_dataset(args)
        budget = Budget(max_turns=args.max_turns, max_tool_calls=args.max_tool_calls)
        with _progress(len(ds) * len(tool_sets), "ablation") as bar:
            task = bar.add_task("ablate", total=len(ds) * len(tool_sets))
            rows = run_ablation(
                ds,
                tool_sets,
                args.out,
                policy_from_args(args),
                budget,
                args.workers,
                args.use_exif,
                on_record=lambda n, r: bar.advance(task),
            )
    except UnknownToolError as e:
        err.print(f"[red]error:[/red] {e}")
        return 2
    except (FileNotFoundError, KeyError, ValueError) as e:
        err.print(f"[red]error:[/red] {e.args[0] if isinstance(e, KeyError) else e}")
        return 2
    print(markdown_table(rows))
    print(f"\ntables: {Path(args.out) / 'ablation.md'}, {Path(args.out) / 'ablation.csv'}")
    return 0


def _osm_backend(db: str | None, overpass: str | None, max_area_km2: float = 2500.0):
    from geolocate.tools.osm.query import QueryLimits

    limits = QueryLimits(max_area_km2=max_area_km2)
    if db:
        from geolocate.tools.osm.local import LocalBackend

        return LocalBackend(db, limits)
    from geolocate.tools.osm.overpass import OverpassBackend

    return OverpassBackend(overpass, limits=limits)


def parse_tag_spec(text: str):
    """A list of TagFilter from 'k=v,k!=v,k~re,k,!k,k>=4' (the CLI's short form).

    >>> [f.model_dump() for f in parse_tag_spec("amenity=pharmacy,lanes>=4,!disused")]
    [{'key': 'amenity', 'op': 'eq', 'value': 'pharmacy'}, {'key': 'lanes', 'op': 'ge', 'value': 4.0}, {'key': 'disused', 'op': 'absent', 'value': None}]
    """
    import re

    from geolocate.tools.osm.query import TagFilter

    ops = [("!=", "neq"), (">=", "ge"), ("<=", "le"), ("=", "eq"), ("~", "regex"), (">", "gt"), ("<", "lt")]
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.startswith("!"):
            out.append(TagFilter(key=part[1:], op="absent"))
            continue
        for sym, op in ops:
            if sym in part:
                k, v = part.split(sym, 1)
                out.append(TagFilter(key=k.strip(), op=op, value=v.strip()))
                break
        else:
            if not re.match(r"^[A-Za-z0-9_:.\-]+$", part):
                raise ValueError(f"cannot read the tag filter {part!r}")
            out.append(TagFilter(key=part, op="exists"))
    return out


def _query_from_flags(args: argparse.Namespace):
    from geolocate.tools.osm.presets import preset
    from geolocate.tools.osm.query import FeatureQuery, FeatureSpec

    feats = [FeatureSpec(id=f"f{i + 1}", tags=parse_tag_spec(t)) for i, t in enumerate(args.feature)]
    feats += [preset(p, id=f"p{i + 1}") for i, p in enumerate(args.preset)]
    if not feats:
        raise ValueError("give a FeatureQuery JSON file, or at least one --feature / --preset")
    if args.name:
        feats[0] = feats[0].model_copy(update={"name": args.name})
    scopes = [x for x in (args.bbox, args.around, args.area) if x]
    if len(scopes) != 1:
        raise ValueError("give exactly one scope: --bbox, --around or --area")
    if args.bbox:
        s, w, n, e = (float(x) for x in args.bbox.split(","))
        scope = {"kind": "bbox", "south": s, "west": w, "north": n, "east": e}
    elif args.around:
        lat, lon, r = (float(x) for x in args.around.split(","))
        scope = {"kind": "around", "lat": lat, "lon": lon, "radius_m": r}
    else:
        a = args.area
        scope = (
            {"kind": "area", "iso": a}
            if a.replace("-", "").isalnum() and a[:2].isupper() and len(a) <= 6
            else {"kind": "area", "name": a}
        )
    rels = []
    if len(feats) > 1:
        if args.within is None:
            raise ValueError("several features need --within M (each within M metres of the first)")
        rels = [{"a": feats[0].id, "b": f.id, "max_m": args.within} for f in feats[1:]]
    return FeatureQuery.model_validate(
        {"features": [f.model_dump() for f in feats], "relations": rels, "scope": scope, "limit": args.limit}
    )


def cmd_osm(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from geolocate.tools.errors import GeolocateError
    from geolocate.tools.osm.query import FeatureQuery

    err = _stderr()
    if args.osm_command == "index":
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from geolocate.tools.osm.local import OsmIndexError, build_index

        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,} features"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task(f"indexing {Path(args.extract).name}", total=None)
                stats = build_index(args.extract, args.out, progress=lambda n: bar.update(task, completed=n))
        except OsmIndexError as e:
            err.print(f"[red]error:[/red] {e}")
            return 2
        print(
            f"{stats.path}: {stats.points:,} points, {stats.lines:,} lines, {stats.areas:,} areas in {stats.seconds:.1f} s ({stats.mb_per_s:.2f} MB of extract per second)"
        )
        return 0
    try:
        if args.query:
            text = sys.stdin.read() if args.query == "-" else Path(args.query).read_text(encoding="utf-8")
            q = FeatureQuery.model_validate_json(text)
        else:
            q = _query_from_flags(args)
        if not (args.db or args.overpass):
            raise ValueError("give --db INDEX (from 'geolocate osm index') or --overpass URL")
        backend = _osm_backend(args.db, args.overpass, args.max_area_km2)
        result = backend.query(q, with_geometry=args.geojson)
    except ValidationError as e:
        err.print(
            "[red]error:[/red] invalid query: "
            + "; ".join(f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in e.errors())
        )
        return 2
    except (GeolocateError, ValueError, KeyError, OSError) as e:
        err.print(f"[red]error:[/red] {e.args[0] if isinstance(e, KeyError) else e}")
        return 2
    if args.geojson:
        feats = []
        for i, m in enumerate(result.matches):
            for role, f in m.features.items():
                feats.append(
                    {
                        "type": "Feature",
                        "id": f.id,
                        "geometry": f.geometry,
                        "properties": {
                            "match": i,
                            "role": role,
                            "kind": f.kind,
                            **f.tags,
                            **{f"distance_m:{k}": v for k, v in m.distances_m.items()},
                        },
                    }
                )
        print(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{len(result.matches)}{'+' if result.truncated else ''} match(es) ({result.backend} backend)"
    )
    t.add_column("#")
    for f in q.features:
        t.add_column(f.id)
    if q.relations:
        t.add_column("distances (m)")
    for i, m in enumerate(result.matches):
        cells = [str(i + 1)] + [
            f"{m.features[f.id].id} {m.features[f.id].tags.get('name', '')}\n({m.features[f.id].lat:.5f}, {m.features[f.id].lon:.5f})"
            for f in q.features
        ]
        if q.relations:
            cells.append(", ".join(f"{k}: {v:.1f}" for k, v in m.distances_m.items()))
        t.add_row(*cells)
    Console(soft_wrap=True).print(t)
    return 0


def _progress_text(node: str, state: EpisodeState) -> str:
    turn = len(state.turns)
    last = state.turns[-1].observations[-1].text if state.turns and state.turns[-1].observations else ""
    return f"turn {turn} [{node}] {last[:100]}"


def _print_result(state: EpisodeState, console) -> None:
    from rich.table import Table

    from geolocate.tools.geo import osm_url

    ev = {e.id: e for e in state.evidence}
    table = Table(title=f"Chain of Region for {state.image.path}", show_lines=False)
    table.add_column("level")
    table.add_column("value")
    table.add_column("conf", justify="right")
    table.add_column("evidence")
    for lv, c in state.chain.items():
        cites = "; ".join(f"{i}: {ev[i].tool}: {ev[i].summary[:70]}" if i in ev else i for i in c.evidence)
        table.add_row(
            lv.value,
            c.value + (f" ({c.code})" if c.code and c.code != c.value and not c.code.isdigit() else ""),
            f"{c.confidence:.2f}",
            cites,
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
            f"[bold]Answer:[/bold] {a.lat:.5f}, {a.lon:.5f} +- {a.radius_km:g} km   localizability {a.localizability:.2f}"
        )
        console.print(f"OpenStreetMap: {osm_url(a.lat, a.lon, zoom=_zoom(a.radius_km))}", soft_wrap=True)
    if not state.chain:
        console.print("No region could be committed from the evidence: treat the answer as a guess.")
    for w in state.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    n_fail = sum(not e.ok for e in state.evidence)
    console.print(
        f"{len(state.turns)} turns, {len(state.evidence)} tool calls ({n_fail} failed), {state.elapsed_s:.2f} s, status {state.status}"
    )


def _zoom(radius_km: float) -> int:
    import math

    return int(max(2, min(17, round(14 - math.log2(max(radius_km, 0.05) / 2)))))


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

    from geolocate.agent.graph import stream_episode
    from geolocate.tools.errors import InputImageError, UnknownToolError
    from geolocate.tools.image import load_image
    from geolocate.tools.registry import ToolSet

    err = Console(stderr=True, soft_wrap=True)
    out = Console()
    if args.json and args.json != "-" and len(args.photo) > 1:
        Path(args.json).mkdir(parents=True, exist_ok=True)
    try:
        tools = ToolSet.parse_spec(args.tools, exclude=["exif"] if args.no_exif else [])
        policy = policy_from_args(args)
        budget = Budget(max_turns=args.max_turns, max_tool_calls=args.max_tool_calls)
    except UnknownToolError as e:
        err.print(f"[red]error:[/red] {e}")
        return 2
    except (KeyError, ValueError, OSError) as e:
        err.print(f"[red]error:[/red] {e.args[0] if isinstance(e, KeyError) else e}")
        return 2
    options: dict = {"tool_timeout_s": args.tool_timeout} if args.tool_timeout else {}
    try:
        if args.osm_db or args.overpass:
            options["osm_backend"] = _osm_backend(args.osm_db, args.overpass)
        if args.nominatim:
            from geolocate.tools.geocode import NominatimGeocoder

            options["geocoder"] = NominatimGeocoder(
                args.user_agent, domain=args.nominatim, scheme=args.nominatim_scheme
            )
    except (ValueError, OSError) as e:
        err.print(f"[red]error:[/red] {e}")
        return 2
    rc = 0
    for photo in args.photo:
        try:
            image = load_image(photo)
        except InputImageError as e:
            err.print(f"[red]error:[/red] {e}")
            rc = 2
            continue
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
            elif len(args.photo) > 1:
                (Path(args.json) / f"{Path(photo).stem}.json").write_text(payload, encoding="utf-8")
            else:
                Path(args.json).write_text(payload, encoding="utf-8")
        if args.json != "-":
            _print_result(state, out)
        if resume_gc:
            gc.enable()  # later photos: the start-up objects are scanned once, then stay old
    return rc


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``geolocate`` console script."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ablate"]:
        # Tool sets such as "-ocr" look like options to argparse: collect everything after --tools.
        if "--tools" not in argv:
            parser.error("ablate needs --tools SET [SET ...], e.g. --tools all -ocr -gazetteer")
        i = argv.index("--tools")
        j = next((k for k in range(i + 1, len(argv)) if argv[k].startswith("--")), len(argv))
        tool_sets, argv = argv[i + 1 : j], argv[:i] + argv[j:]
        if not tool_sets:
            parser.error("--tools needs at least one tool set")
        return cmd_ablate(parser.parse_args(argv), tool_sets)
    args = parser.parse_args(argv)
    if args.command == "locate":
        return cmd_locate(args)
    if args.command == "eval":
        return cmd_eval(args)
    if args.command == "osm":
        return cmd_osm(args)
    if args.command == "train":
        return cmd_train(args)
    if args.command == "services":
        return cmd_services(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


def console_main() -> int:
    """Entry point of the ``geolocate`` console script: :func:`main`, then a faster exit.

    ``gc.freeze()`` moves every live object to the permanent generation, so the interpreter's
    final collection does not walk the objects that langgraph, langchain-core, pydantic and the
    tools create at import (about 0.3 s of a 2-3 s run on 2 cores). ``atexit`` handlers and
    buffered files are still run and flushed as usual. In-process users call :func:`main`.
    """
    import gc

    rc = main()
    gc.freeze()
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
