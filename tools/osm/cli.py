"""``geolocate osm index|query``: build the embedded OSM index of an extract, run FeatureQuery searches."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geolocate.agent.cli_common import fail, positive_float, stderr


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
    osm.set_defaults(run=cmd_osm)


def parse_tag_spec(text: str):
    """A list of TagFilter from 'k=v,k!=v,k~re,k,!k,k>=4' (the CLI's short form).

    >>> [f.model_dump() for f in parse_tag_spec("amenity=pharmacy,lanes>=4,!disused")]
    [{'key': 'amenity', 'op': 'eq', 'value': 'pharmacy'}, {'key': 'lanes', 'op': 'ge', 'value': 4.0},
     {'key': 'disused', 'op': 'absent', 'value': None}]
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

    from geolocate.tools.errors import GeolocateError, format_validation_error
    from geolocate.tools.osm import make_backend
    from geolocate.tools.osm.query import FeatureQuery, QueryLimits

    err = stderr()
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
        result = backend.query(q, with_geometry=args.geojson)
    except ValidationError as e:
        return fail(f"invalid query: {format_validation_error(e)}")
    except KeyError as e:
        return fail(e.args[0])
    except (GeolocateError, ValueError, OSError) as e:
        return fail(e)
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
    from rich.markup import escape
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
            f"{m.features[f.id].id} "
            f"{m.features[f.id].tags.get('name', '')}\n({m.features[f.id].lat:.5f}, "
            f"{m.features[f.id].lon:.5f})"
            for f in q.features
        ]
        if q.relations:
            cells.append(", ".join(f"{k}: {v:.1f}" for k, v in m.distances_m.items()))
        t.add_row(*(escape(c) for c in cells))
    Console(soft_wrap=True).print(t)
    return 0
