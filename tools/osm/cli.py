"""``geolocate osm index|query``: build the embedded OSM index of an extract, run FeatureQuery searches."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geolocate.agent.cli_common import (
    EXIT_ERROR,
    fail,
    finite_float,
    nonnegative_int,
    numbers,
    positive_float,
    positive_int,
    stderr,
)
from geolocate.tools.osm.query import feature_from_text


def register(sub) -> None:
    """Add the ``osm`` command group to the root parser's sub-parsers."""
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
        description="Examples: geolocate osm query --db li.sqlite --bbox 47.0,9.4,47.3,9.7 --feature "
        "amenity=place_of_worship "
        "--feature amenity=pharmacy --within 200 ; geolocate osm query --db li.sqlite query.json --geojson",
    )
    osub.add_parser("presets", help="list the presets, with their parameters and tags")
    oq.add_argument("query", nargs="?", help="FeatureQuery JSON file, or '-' for stdin")
    oq.add_argument("--db", metavar="DB", help="local index (from 'geolocate osm index')")
    oq.add_argument("--overpass", metavar="URL", help="Overpass interpreter URL instead of a local index")
    oq.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds to wait for Overpass (default: 60)",
    )
    oq.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="TAGS",
        help="a feature as comma-separated filters: k=v, k!=v, k~regex, k, !k, k>=4; '|' between "
        "alternatives ('shop=bakery|amenity=cafe'); repeatable",
    )
    oq.add_argument(
        "--preset",
        action="append",
        nargs="+",
        default=[],
        metavar="NAME [KEY=VALUE ...]",
        help="a preset feature with its parameters: --preset road lanes=4, --preset cafe "
        "(list them: geolocate osm presets; repeatable)",
    )
    oq.add_argument("--name", help="name regex for the first feature")
    oq.add_argument(
        "--within", type=positive_float, metavar="M", help="every other feature within M metres of the first"
    )
    oq.add_argument(
        "--bbox", metavar="S,W,N,E", help="write --bbox=-34.1,18.3,-33.8,18.6 when it starts with a minus"
    )
    for edge in ("south", "west", "north", "east"):
        oq.add_argument(
            f"--{edge}", type=finite_float, metavar="DEG", help=f"bbox {edge} edge (instead of --bbox)"
        )
    oq.add_argument("--around", metavar="LAT,LON,RADIUS_M")
    oq.add_argument("--area", metavar="ISO_OR_NAME", help="admin area: ISO 3166 code (LI, CH-ZH) or name")
    oq.add_argument(
        "--kinds",
        metavar="LIST",
        help="geometry kinds of every feature: point, line, area (comma list; default: all)",
    )
    oq.add_argument("--limit", type=positive_int, default=50, help="places (or combinations) per page")
    oq.add_argument("--offset", type=nonnegative_int, default=0, help="skip this many places (next page)")
    oq.add_argument(
        "--combinations",
        action="store_true",
        help="list every combination of features instead of one row per distinct place",
    )
    oq.add_argument(
        "--max-area-km2",
        type=positive_float,
        default=2500.0,
        help="area guard, a finite number of km^2 above 0 (default: %(default)s)",
    )
    fmt = oq.add_mutually_exclusive_group()
    fmt.add_argument("--geojson", action="store_true", help="print a GeoJSON FeatureCollection")
    fmt.add_argument("--csv", action="store_true", help="print CSV, one row per place (or combination)")
    fmt.add_argument("--kml", action="store_true", help="print KML (simplekml)")
    osm.set_defaults(run=cmd_osm)


def preset_params(pairs: list[str]) -> dict:
    """``["lanes=4", "oneway=no", "kind=bakery"]`` -> ``{"lanes": 4, "oneway": False, "kind": "bakery"}``.

    Raises:
        ValueError: a parameter without ``=``.
    """
    out: dict = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"preset parameters are KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        low = v.strip().lower()
        if low in ("true", "yes", "false", "no"):
            out[k.strip()] = low in ("true", "yes")
            continue
        try:
            out[k.strip()] = int(v) if v.strip().lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _query_from_flags(args: argparse.Namespace):
    from geolocate.tools.osm.presets import preset
    from geolocate.tools.osm.query import FeatureQuery, FeatureSpec

    feats = [feature_from_text(f"f{i + 1}", t) for i, t in enumerate(args.feature)]
    feats += [preset(p[0], id=f"p{i + 1}", **preset_params(p[1:])) for i, p in enumerate(args.preset)]
    if not feats:
        raise ValueError("give a FeatureQuery JSON file, or at least one --feature / --preset")
    if args.name:
        feats[0] = feats[0].model_copy(update={"name": args.name})
    if args.kinds:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        feats = [FeatureSpec.model_validate({**f.model_dump(), "kinds": kinds}) for f in feats]
    edges = [args.south, args.west, args.north, args.east]
    if any(e is not None for e in edges):
        if any(e is None for e in edges):
            raise ValueError("give all four of --south --west --north --east")
        args.bbox = ",".join(str(e) for e in edges)
    scopes = [x for x in (args.bbox, args.around, args.area) if x]
    if len(scopes) != 1:
        raise ValueError(
            "give exactly one scope: --bbox (or --south/--west/--north/--east), --around or --area"
        )
    if args.bbox:
        s, w, n, e = numbers(args.bbox, 4, "--bbox S,W,N,E")
        scope = {"kind": "bbox", "south": s, "west": w, "north": n, "east": e}
    elif args.around:
        lat, lon, r = numbers(args.around, 3, "--around LAT,LON,RADIUS_M")
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
        {"features": [f.model_dump() for f in feats], "relations": rels, "scope": scope, "limit": args.limit,
         "offset": args.offset}
    )  # fmt: skip


def cmd_osm(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from geolocate.tools.errors import GeolocateError, format_validation_error
    from geolocate.tools.osm import make_backend
    from geolocate.tools.osm.query import FeatureQuery, QueryLimits

    err = stderr()
    if args.osm_command == "presets":
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from geolocate.tools.osm.presets import PRESETS, describe

        title = f'{len(PRESETS)} presets: --preset NAME [KEY=VALUE ...], or {{"preset": NAME}} in a query'
        console = Console(soft_wrap=True)
        if not console.is_terminal:  # piped: one line per preset, nothing cut to a terminal's width
            print(title)
            for name in sorted(PRESETS):
                what, params = describe(name)
                print("\t".join([name, what, ", ".join(params)]))
            return 0
        t = Table(title=title)
        for col in ("preset", "finds", "parameters"):
            t.add_column(col, overflow="fold")
        for name in sorted(PRESETS):
            what, params = describe(name)
            t.add_row(name, escape(what), escape(", ".join(params)))
        console.print(t)
        return 0
    if args.osm_command == "index":
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from geolocate.tools.files import OutputError, OutputTargetError
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
        except OutputTargetError as e:
            return fail(e)
        except OutputError as e:
            return fail(e, EXIT_ERROR)
        except OsmIndexError as e:
            return fail(e)
        print(
            f"{stats.path}: {stats.points:,} points, {stats.lines:,} lines, {stats.areas:,} areas in "
            f"{stats.seconds:.1f} s ({stats.mb_per_s:.2f} MB of extract per second)"
        )
        return 0
    try:
        if args.query:
            text = sys.stdin.read() if args.query == "-" else Path(args.query).read_text(encoding="utf-8")
            q = FeatureQuery.model_validate_json(text)
        else:
            q = _query_from_flags(args)
        backend = make_backend(
            args.db, args.overpass, QueryLimits(max_area_km2=args.max_area_km2), timeout_s=args.timeout
        )
        if args.query and args.offset:
            q = q.model_copy(update={"offset": args.offset})
        result = backend.query(q, with_geometry=args.geojson or args.kml)
    except ValidationError as e:
        return fail(f"invalid query: {format_validation_error(e)}")
    except KeyError as e:
        return fail(e.args[0])
    except (GeolocateError, ValueError, OSError) as e:
        return fail(e)
    rows = _rows(q, result, args.combinations)
    for note in result.notes:  # e.g. a key in OSM use that this extract lacks: zero results, said why
        err.print(f"note: {note}", soft_wrap=True, markup=False)
    if args.geojson:
        print(json.dumps(_geojson(q, result, rows, args.combinations), ensure_ascii=False))
    elif args.csv:
        _print_csv(q, result, rows)
    elif args.kml:
        print(_kml(result, rows))
    else:
        _print_table(q, result, rows, args.combinations)
    return 0


def _rows(q, result, combinations: bool) -> list[tuple[dict, dict]]:
    """(features by query id, distances) per row: one per distinct place, or per combination."""
    if combinations:
        return [(m.features, m.distances_m) for m in result.matches]
    first = q.features[0].id
    return [({first: p.feature, **p.support}, p.distances_m) for p in result.places]


def _cap_note(result, combinations: bool) -> str:
    if combinations:
        return f"{len(result.matches)}{'+ (capped at the limit)' if result.truncated else ''} combination(s)"
    end = result.offset + len(result.places)
    more = f"; --offset {end} for the next page" if end < result.total_places else ""
    start = result.offset + 1 if result.places else 0
    return f"{result.total_places} distinct place(s), showing {start}-{end}{more}"


def _geojson(q, result, rows, combinations: bool) -> dict:
    feats = []
    for i, (features, dists) in enumerate(rows):
        for role, f in features.items():
            feats.append(
                {
                    "type": "Feature",
                    "id": f.id,
                    "geometry": f.geometry,
                    "properties": {"row": i, "role": role, "kind": f.kind, **f.tags,
                                   **{f"distance_m:{k}": v for k, v in dists.items()}},
                }
            )  # fmt: skip
    props = {
        "view": "combinations" if combinations else "places",
        "truncated": result.truncated,
        "total_places": result.total_places,
        "offset": result.offset,
        "backend": result.backend,
    }
    return {"type": "FeatureCollection", "properties": props, "features": feats}


def _print_csv(q, result, rows) -> None:
    import csv

    w = csv.writer(sys.stdout)
    ids = [f.id for f in q.features]
    rels = [f"{r.a}~{r.b}" for r in q.relations]
    w.writerow(["row", *(f"{i}_{c}" for i in ids for c in ("osm_id", "name", "lat", "lon")),
                *(f"{r}_m" for r in rels), "truncated", "total_places"])  # fmt: skip
    for n, (features, dists) in enumerate(rows):
        cells = []
        for i in ids:
            f = features.get(i)
            cells += [f.id, f.tags.get("name", ""), f"{f.lat:.6f}", f"{f.lon:.6f}"] if f else ["", "", "", ""]
        w.writerow([n, *cells, *(dists.get(r, "") for r in rels), result.truncated, result.total_places])


def _kml(result, rows) -> str:
    import simplekml

    doc = simplekml.Kml(name=f"geolocate osm query ({result.backend})")
    for n, (features, dists) in enumerate(rows):
        folder = doc.newfolder(name=f"place {n + 1}")
        for role, f in features.items():
            pt = folder.newpoint(name=f"{role}: {f.tags.get('name', f.id)}", coords=[(f.lon, f.lat)])
            pt.description = json.dumps({"osm_id": f.id, **f.tags, **dists}, ensure_ascii=False)
    return doc.kml()


def _print_table(q, result, rows, combinations: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{_cap_note(result, combinations)} ({result.backend} backend)")
    t.add_column("#")
    for f in q.features:
        t.add_column(f.id)
    if q.relations:
        t.add_column("distances (m)")
    for i, (features, dists) in enumerate(rows):
        cells = [str(result.offset + i + 1 if not combinations else i + 1)] + [
            f"{features[f.id].id} {features[f.id].tags.get('name', '')}\n"
            f"({features[f.id].lat:.5f}, {features[f.id].lon:.5f})"
            for f in q.features
        ]
        if q.relations:
            cells.append(", ".join(f"{k}: {v:.1f}" for k, v in dists.items()))
        t.add_row(*(escape(c) for c in cells))
    Console(soft_wrap=True).print(t)
