"""OSM feature search: index every shared extract, check the local backend against an independent
pyosmium + shapely computation, pin the Overpass QL, run overpy against a loopback server."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import osmium
import pytest
import shapely
from pydantic import ValidationError
from pyproj import Transformer
from shapely import wkt

from geolocate.agent.actions import ToolCall, render_turn
from geolocate.agent.cli import main
from geolocate.agent.episode import Episode
from geolocate.tools.errors import RateLimitedError, ToolInputError, ToolTimeoutError
from geolocate.tools.image import load_image
from geolocate.tools.osm.engine import ScopeTooLargeError
from geolocate.tools.osm.local import LocalBackend, OsmIndexError, build_index
from geolocate.tools.osm.overpass import OverpassBackend, compile_ql
from geolocate.tools.osm.query import FeatureQuery, QueryLimits, TagFilter
from geolocate.tools.osm.tool import OsmSearchTool
from geolocate.tools.registry import ToolSet, create
from tests.conftest import SHARED

OSM = SHARED / "osm"
EXTRACTS = {
    "liechtenstein": "liechtenstein-2013-08-03.osm.pbf",
    "helsinki": "helsinki.osm.pbf",
    "andorra": "andorra.osm.pbf",
    "monaco": "monaco.osm.gz",
}
HEL_BBOX = {"kind": "bbox", "south": 60.16, "west": 24.93, "north": 60.18, "east": 24.96}
LI_BBOX = {"kind": "bbox", "south": 47.04, "west": 9.47, "north": 47.28, "east": 9.64}
LI_SMALL = {"kind": "bbox", "south": 47.12, "west": 9.50, "north": 47.15, "east": 9.54}

# Every query of these tests, by name: (extract, FeatureQuery JSON). The PostGIS backend is checked
# against the local one on all of them (tests/test_services.py).
QUERIES = {
    "any_of": (
        "helsinki",
        {
            "features": [
                {
                    "id": "a",
                    "any_of": [
                        [{"key": "amenity", "value": "cafe"}],
                        [{"key": "shop", "value": "bakery"}],
                        [{"key": "amenity", "value": "ice_cream"}],
                    ],
                }
            ],
            "scope": HEL_BBOX,
            "limit": 500,
        },
    ),
    "tag_filter": (
        "helsinki",
        {
            "features": [{"id": "a", "tags": [{"key": "amenity", "value": "pharmacy"}]}],
            "scope": HEL_BBOX,
            "limit": 500,
        },
    ),
    "numeric": (
        "helsinki",
        {
            "features": [
                {
                    "id": "a",
                    "tags": [
                        {"key": "highway", "op": "exists"},
                        {"key": "lanes", "op": "ge", "value": 3},
                        {"key": "oneway", "op": "neq", "value": "yes"},
                    ],
                }
            ],
            "scope": HEL_BBOX,
            "limit": 500,
        },
    ),
    "name_small_bbox": (
        "liechtenstein",
        {
            "features": [{"id": "a", "tags": [{"key": "amenity", "op": "exists"}], "name": "apotheke"}],
            "scope": LI_SMALL,
            "limit": 500,
        },
    ),
    "name_all": (
        "liechtenstein",
        {
            "features": [{"id": "a", "tags": [{"key": "amenity", "op": "exists"}], "name": "apotheke"}],
            "scope": LI_BBOX,
            "limit": 500,
        },
    ),
    "two_feature": (
        "liechtenstein",
        {
            "features": [
                {"id": "w", "tags": [{"key": "amenity", "value": "place_of_worship"}]},
                {"id": "p", "tags": [{"key": "amenity", "value": "pharmacy"}]},
            ],
            "relations": [{"a": "w", "b": "p", "max_m": 300}],
            "scope": LI_BBOX,
            "limit": 500,
        },
    ),
    "three_feature": (
        "helsinki",
        {
            "features": [
                {"id": "c", "tags": [{"key": "amenity", "value": "cafe"}]},
                {"id": "b", "tags": [{"key": "highway", "value": "bus_stop"}]},
                {"id": "p", "tags": [{"key": "amenity", "value": "pharmacy"}]},
            ],
            "relations": [{"a": "c", "b": "b", "max_m": 60}, {"a": "c", "b": "p", "max_m": 80}],
            "scope": HEL_BBOX,
            "limit": 500,
        },
    ),
    "edge_vs_centroid": (
        "helsinki",
        {
            "features": [
                {"id": "church", "tags": [{"key": "building", "op": "exists"}], "name": "^Vanha kirkko$"},
                {"id": "shop", "tags": [{"key": "shop", "op": "exists"}]},
            ],
            "relations": [{"a": "church", "b": "shop", "max_m": 60}],
            "scope": HEL_BBOX,
        },
    ),
    "area": (
        "liechtenstein",
        {
            "features": [{"id": "fuel", "tags": [{"key": "amenity", "value": "fuel"}]}],
            "scope": {"kind": "area", "iso": "LI"},
        },
    ),
}


def Q(name: str) -> FeatureQuery:
    return FeatureQuery.model_validate(QUERIES[name][1])


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    d = tmp_path_factory.mktemp("osm")
    out = {}
    for name, f in EXTRACTS.items():
        assert main(["osm", "index", str(OSM / f), "--out", str(d / f"{name}.sqlite")]) == 0
        out[name] = d / f"{name}.sqlite"
    return out


# -- an independent reference: a direct pyosmium pass, WKT geometries, shapely in a national projection
def id_area_rule(tags: dict[str, str]) -> bool:
    """The test's own statement of iD's and osm2pgsql's rule for closed ways: area=yes/no decides,
    riverbanks and docks are areas, and otherwise an area key (OSM wiki "Area") makes an area."""
    if tags.get("area") in ("yes", "no"):
        return tags["area"] == "yes"
    keys = {"building", "building:part", "landuse", "landcover", "amenity", "leisure", "natural", "water",
            "shop", "tourism", "man_made", "historic", "public_transport", "parking", "place", "boundary",
            "military", "office", "aeroway", "craft", "healthcare", "area:highway", "indoor", "golf",
            "club"}  # fmt: skip
    return tags.get("waterway") in ("riverbank", "dock") or any(k in keys for k in tags)


def reference_features(
    extract: str, bbox: dict, keep, area_rule=None, tags_out: dict | None = None
) -> dict[str, shapely.Geometry]:
    """Features with these tags from a direct pyosmium pass. Osmium makes an area of every closed
    way; with ``area_rule``, a closed way it rejects is a line instead, and a multipolygon or boundary
    relation osmium cannot assemble (a member cut by the extract's edge) is built from the members
    present (shapely.polygonize: areas where rings close, lines otherwise). ``tags_out`` collects the
    features' tags by id."""
    wktf = osmium.geom.WKTFactory()
    box = shapely.box(bbox["west"], bbox["south"], bbox["east"], bbox["north"])
    out = {}
    rels, member_pts, assembled = {}, {}, set()
    if area_rule is not None:  # relations osmium cannot assemble (a member cut or missing): kept below
        for r in osmium.FileProcessor(str(OSM / extract), osmium.osm.RELATION):
            rtags = dict(r.tags)
            if rtags.get("type") in ("multipolygon", "boundary") and keep(rtags):
                rels[r.id] = (rtags, [m.ref for m in r.members if m.type == "w"])
    wanted = {w for _t, ws in rels.values() for w in ws}
    for o in osmium.FileProcessor(str(OSM / extract)).with_locations().with_areas():
        if o.is_way() and o.id in wanted:
            member_pts[o.id] = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
        if o.is_area() and not o.from_way():
            assembled.add(o.orig_id())
        tags = dict(o.tags)
        if not tags or not keep(tags):
            continue
        try:
            if o.is_node():
                g, fid = wkt.loads(wktf.create_point(o)), f"n{o.id}"
            elif o.is_area():
                if area_rule is not None and o.from_way() and not area_rule(tags):
                    continue  # a line, from the way itself below
                g, fid = (
                    wkt.loads(wktf.create_multipolygon(o)),
                    ("w" if o.from_way() else "r") + str(o.orig_id()),
                )
            elif o.is_way() and o.is_closed() and area_rule is not None:
                fid = f"w{o.id}"
                pts = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
                complete = all(n.location.valid() for n in o.nodes)
                if not pts or (area_rule(tags) and complete):
                    continue  # nothing inside, or osmium's area above
                g = shapely.LineString(pts) if len(set(pts)) >= 2 else shapely.Point(pts[0])
                if area_rule(tags) and len(set(pts)) >= 3:  # cut by the extract's edge
                    poly = shapely.make_valid(shapely.Polygon(pts))
                    g = poly if poly.area > 0 else g
            elif o.is_way() and not o.is_closed():
                fid = f"w{o.id}"
                pts = [
                    (n.lon, n.lat) for n in o.nodes if n.location.valid()
                ]  # ways cut at the extract's edge keep their inside part: one node, a point
                if not pts:
                    continue
                g = shapely.LineString(pts) if len(set(pts)) >= 2 else shapely.Point(pts[0])
            else:
                continue
        except RuntimeError:
            continue
        if g.intersects(box):
            out[fid] = g
            if tags_out is not None:
                tags_out[fid] = tags
    for rid, (rtags, ways) in rels.items():
        lines = [shapely.LineString(member_pts[w]) for w in ways if len(set(member_pts.get(w, []))) >= 2]
        if rid in assembled or not lines:
            continue
        polys = [p for p in shapely.get_parts(shapely.polygonize(lines)) if p.area > 0]
        g = shapely.MultiPolygon(polys) if polys else shapely.MultiLineString(lines)
        if g.intersects(box):
            out[f"r{rid}"] = g
            if tags_out is not None:
                tags_out[f"r{rid}"] = rtags
    return out


def metric(epsg: int):
    import numpy as np

    tr = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)

    def f(xy):
        if len(xy) == 1:
            return np.array([tr.transform(float(xy[0, 0]), float(xy[0, 1]))])
        return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

    return lambda g: shapely.transform(g, f)


def ids(result, role="a"):
    return {m.features[role].id for m in result.matches}


def one(tags, bbox, name=None, limit=500):
    f = {"id": "a", "tags": tags}
    if name:
        f["name"] = name
    return FeatureQuery.model_validate({"features": [f], "scope": bbox, "limit": limit})


def test_every_shared_extract_is_indexed(dbs):
    for name, path in dbs.items():
        b = LocalBackend(path)
        assert int(b.meta["n_point"]) > 100 and int(b.meta["n_line"]) > 100 and int(b.meta["n_area"]) > 100, (
            name,
            b.meta,
        )


def test_tag_filter_matches_reference(dbs):
    b = LocalBackend(dbs["helsinki"])
    ref = reference_features("helsinki.osm.pbf", HEL_BBOX, lambda t: t.get("amenity") == "pharmacy")
    assert ids(b.query(Q("tag_filter"))) == set(ref) and len(ref) >= 5


def test_numeric_and_negative_filters_match_reference(dbs):
    b = LocalBackend(dbs["helsinki"])

    def lanes_ge_3(t):
        try:
            return (
                "highway" in t and float(t.get("lanes", "x").split(";")[0]) >= 3 and t.get("oneway") != "yes"
            )
        except ValueError:
            return False

    ref = reference_features("helsinki.osm.pbf", HEL_BBOX, lanes_ge_3)
    got = b.query(Q("numeric"))
    assert ids(got) == set(ref) and len(ref) >= 5


def test_name_match_and_bbox_scope_match_reference(dbs):
    b = LocalBackend(dbs["liechtenstein"])
    ref = reference_features(
        EXTRACTS["liechtenstein"],
        LI_SMALL,
        lambda t: "amenity" in t and re.search("apotheke", t.get("name", ""), re.I),
    )
    got = b.query(Q("name_small_bbox"))
    assert ids(got) == set(ref) and len(ref) >= 1
    everywhere = b.query(Q("name_all"))
    assert ids(got) < ids(everywhere)


def _pairs_reference(extract, bbox, epsg, specs, rels):
    feats = {k: reference_features(extract, bbox, f) for k, f in specs.items()}
    proj = metric(epsg)
    pm = {k: {i: proj(g) for i, g in v.items()} for k, v in feats.items()}
    order = list(specs)
    out = {}

    def rec(i, chosen):
        if i == len(order):
            out[tuple(chosen[k] for k in order)] = {
                f"{a}~{b_}": pm[a][chosen[a]].distance(pm[b_][chosen[b_]]) for a, b_, _ in rels
            }
            return
        k = order[i]
        for fid in pm[k]:
            trial = {**chosen, k: fid}
            if all(
                pm[a][trial[a]].distance(pm[b_][trial[b_]]) <= m
                for a, b_, m in rels
                if a in trial and b_ in trial
            ):
                rec(i + 1, trial)

    rec(0, {})
    return out


def _check_cluster(result, reference, order):
    got = {tuple(m.features[k].id for k in order): m.distances_m for m in result.matches}
    assert set(got) == set(reference) and reference
    for key, dists in got.items():
        for rel, d in dists.items():
            assert d == pytest.approx(reference[key][rel], rel=5e-3, abs=0.5)


def test_two_feature_cluster_matches_reference(dbs):
    q = Q("two_feature")
    ref = _pairs_reference(
        EXTRACTS["liechtenstein"],
        LI_BBOX,
        2056,
        {
            "w": lambda t: t.get("amenity") == "place_of_worship",
            "p": lambda t: t.get("amenity") == "pharmacy",
        },
        [("w", "p", 300)],
    )
    _check_cluster(LocalBackend(dbs["liechtenstein"]).query(q), ref, ["w", "p"])


def test_three_feature_cluster_matches_reference(dbs):
    q = Q("three_feature")
    specs = {
        "c": lambda t: t.get("amenity") == "cafe",
        "b": lambda t: t.get("highway") == "bus_stop",
        "p": lambda t: t.get("amenity") == "pharmacy",
    }
    ref = _pairs_reference("helsinki.osm.pbf", HEL_BBOX, 3067, specs, [("c", "b", 60), ("c", "p", 80)])
    _check_cluster(LocalBackend(dbs["helsinki"]).query(q), ref, ["c", "b", "p"])


def test_edge_distance_not_centroid_distance(dbs):
    """The Old Church of Helsinki is a large building: shops 50-60 m from its wall are 75-82 m from its
    centroid."""
    q = Q("edge_vs_centroid")
    r = LocalBackend(dbs["helsinki"]).query(q, with_geometry=True)
    proj = metric(3067)
    disagree = 0
    for m in r.matches:
        church, shop = (
            shapely.geometry.shape(m.features["church"].geometry),
            shapely.geometry.shape(m.features["shop"].geometry),
        )
        edge, centroid = proj(church).distance(proj(shop)), proj(church.centroid).distance(proj(shop))
        assert edge == pytest.approx(m.distances_m["church~shop"], rel=5e-3) and edge <= 60
        disagree += centroid > 60
    assert disagree >= 2


def test_area_scope_from_the_extracts_boundary(dbs):
    b = LocalBackend(dbs["liechtenstein"])
    r = b.query(Q("area"))
    assert r.matches and 150 < r.scope_km2 < 170  # Liechtenstein is 160 km^2
    with pytest.raises(ToolInputError, match="not in the local extract"):
        b.query(
            FeatureQuery.model_validate(
                {
                    "features": [{"id": "fuel", "tags": [{"key": "amenity", "value": "fuel"}]}],
                    "scope": {"kind": "area", "name": "Atlantis"},
                }
            )
        )


def test_bad_queries_and_bad_extracts(dbs, tmp_path, capsys):
    with pytest.raises(ValidationError, match="op"):
        TagFilter(key="amenity", op="like", value="x")
    with pytest.raises(ValidationError, match="not allowed"):
        TagFilter(key='name"];out;', value="x")
    with pytest.raises(ValidationError, match="not related"):
        FeatureQuery.model_validate(
            {
                "features": [
                    {"id": "a", "tags": [{"key": "shop", "op": "exists"}]},
                    {"id": "b", "tags": [{"key": "amenity", "op": "exists"}]},
                ],
                "scope": HEL_BBOX,
            }
        )
    with pytest.raises(ScopeTooLargeError, match="over the limit"):
        LocalBackend(dbs["helsinki"]).query(
            one(
                [{"key": "shop", "op": "exists"}],
                {"kind": "bbox", "south": 59, "west": 23, "north": 61, "east": 26},
            )
        )
    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all" * 50)
    assert main(["osm", "index", str(bad)]) == 2
    assert "cannot read the extract" in capsys.readouterr().err
    empty = tmp_path / "empty.osm"
    empty.write_text(
        '<?xml version="1.0"?><osm version="0.6"><node id="1" lat="47.1" lon="9.5" version="1"/></osm>'
    )
    with pytest.raises(OsmIndexError, match="no tagged feature"):
        build_index(empty, tmp_path / "empty.sqlite")


def test_overpass_ql_is_pinned_and_well_formed():
    q = FeatureQuery.model_validate(
        {
            "features": [
                {
                    "id": "church",
                    "tags": [
                        {"key": "amenity", "value": "place_of_worship"},
                        {"key": "religion", "op": "neq", "value": "muslim"},
                    ],
                },
                {
                    "id": "road",
                    "tags": [
                        {"key": "highway", "op": "regex", "value": "^(primary|secondary)$"},
                        {"key": "lanes", "op": "ge", "value": 4},
                        {"key": "tunnel", "op": "absent"},
                    ],
                    "name": 'Sankt "Peter"',
                    "kinds": ["line"],
                },
            ],
            "relations": [{"a": "church", "b": "road", "max_m": 150}],
            "scope": {"kind": "bbox", "south": 47.1, "west": 9.5, "north": 47.2, "east": 9.6},
        }
    )
    ql = compile_ql(q, timeout_s=25)
    assert ql == "\n".join(
        [
            "[out:json][timeout:25];",
            'nwr["amenity"="place_of_worship"]["religion"!="muslim"](47.1,9.5,47.2,9.6)->.church;',
            'way["highway"~"^(primary|secondary)$"]["lanes"][!"tunnel"]["name"~"Sankt '
            '\\"Peter\\"",i](47.1,9.5,47.2,9.6)->.road;',
            "nwr.church(around.road:150)->.church;",
            "nwr.road(around.church:150)->.road;",
            "(.church;.road;);",
            "(._;>;);",
            "out body;",
        ]
    )
    area = compile_ql(
        FeatureQuery.model_validate(
            {
                "features": [{"id": "fuel", "tags": [{"key": "amenity", "value": "fuel"}]}],
                "scope": {"kind": "area", "iso": "CH-ZH", "admin_level": 4},
            }
        )
    )
    assert area.splitlines()[1] == 'area["ISO3166-2"="CH-ZH"]["admin_level"="4"]->.scope;'
    for text in (ql, area):
        # structure: balanced brackets and quotes, one statement per line, sets defined before use
        body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
        assert body.count("[") == body.count("]") and body.count("(") == body.count(")")
        assert all(line.endswith(";") for line in text.splitlines())
        defined = {"_"}
        for line in body.splitlines()[1:]:
            used = set(re.findall(r"(?:\.|around\.|area\.)([a-z_][a-z0-9_]*)", line.split("->")[0]))
            assert used <= defined, (line, used - defined)
            defined |= set(re.findall(r"->\.([a-z_][a-z0-9_]*)", line))


# -- Overpass over loopback: a church building (100 m square) and a pharmacy 150 m from its wall, 200 m from
# its centre
def _overpass_json():
    lat0, lon0 = 47.1400, 9.5200
    dlat, dlon = 100 / 111_195, 100 / (111_195 * 0.68136)  # ~100 m at 47.14 N
    corners = [(lat0, lon0), (lat0, lon0 + dlon), (lat0 + dlat, lon0 + dlon), (lat0 + dlat, lon0)]
    nodes = [{"type": "node", "id": i + 1, "lat": la, "lon": lo} for i, (la, lo) in enumerate(corners)]
    pharmacy = {
        "type": "node",
        "id": 10,
        "lat": lat0 + dlat / 2,
        "lon": lon0 + dlon + 150 / (111_195 * 0.68136),
        "tags": {"amenity": "pharmacy", "name": "Apotheke"},
    }
    church = {
        "type": "way",
        "id": 20,
        "nodes": [1, 2, 3, 4, 1],
        "tags": {"amenity": "place_of_worship", "building": "church", "name": "St. Test"},
    }
    return {"version": 0.6, "generator": "test", "elements": [pharmacy, church, *nodes]}


class _Overpass(BaseHTTPRequestHandler):
    script: list[int] = []
    seen: list[tuple[str, str]] = []
    bounds: list[dict] = []  # what an "out ids bb" boundary look-up answers

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).seen.append((self.headers.get("User-Agent"), body))
        code = type(self).script.pop(0) if type(self).script else 200
        if code == 200 and "out ids bb" in body:
            els = [{"type": "relation", "id": i + 1, "bounds": b} for i, b in enumerate(type(self).bounds)]
            data, ctype = json.dumps({"version": 0.6, "elements": els}).encode(), "application/json"
        elif code == 200:
            data, ctype = json.dumps(_overpass_json()).encode(), "application/json"
        elif code == 400:
            data, ctype = (
                b'<html><body><p><strong style="color:#FF0000">Error</strong>: line 2: parse error: '
                b"unknown key</p></body></html>",
                "text/html",
            )
        elif code == 1:  # a server that never answers
            time.sleep(30)
            return
        elif code == 2:  # an HTML error page with status 200 (a proxy, a wrong URL)
            code, data, ctype = 200, b"<html><body>Service temporarily down</body></html>", "text/html"
        elif code == 3:  # 200 at once, then a byte a second: never done
            data = json.dumps(_overpass_json()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for b in data:
                try:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1.0)
            return
        elif code in (429, 503):
            data, ctype = b"busy", "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        else:
            data, ctype = b"busy", "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def overpass_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Overpass)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Overpass.script, _Overpass.seen, _Overpass.bounds = [], [], []
    yield f"http://127.0.0.1:{srv.server_port}/api/interpreter"
    srv.shutdown()


CHURCH_PHARMACY = {
    "features": [
        {"id": "church", "tags": [{"key": "amenity", "value": "place_of_worship"}]},
        {"id": "pharmacy", "tags": [{"key": "amenity", "value": "pharmacy"}]},
    ],
    "relations": [{"a": "church", "b": "pharmacy", "max_m": 180}],
    "scope": {"kind": "around", "lat": 47.14, "lon": 9.52, "radius_m": 2000},
}


def test_overpy_path_parses_and_measures_edge_distance(overpass_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    b = OverpassBackend(overpass_server, user_agent="geolocate-tests/1.0", sleep=lambda s: None)
    r = b.query(FeatureQuery.model_validate(CHURCH_PHARMACY))
    assert len(r.matches) == 1
    m = r.matches[0]
    assert (m.features["church"].id, m.features["church"].kind, m.features["pharmacy"].id) == (
        "w20",
        "area",
        "n10",
    )
    assert m.distances_m["church~pharmacy"] == pytest.approx(
        150, abs=1.5
    )  # edge, not the 200 m to the centre
    ua, body = _Overpass.seen[0]
    assert ua == "geolocate-tests/1.0" and "around.pharmacy:180" in body
    b.query(FeatureQuery.model_validate(CHURCH_PHARMACY))
    assert len(_Overpass.seen) == 1  # second answer from the disk cache


def test_overpass_http_errors_map_to_typed_errors(overpass_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    sleeps = []
    b = OverpassBackend(overpass_server, retries=2, backoff_s=1.0, cache=False, sleep=sleeps.append)
    q = FeatureQuery.model_validate(CHURCH_PHARMACY)
    _Overpass.script = [429, 504, 200]
    assert len(b.query(q).matches) == 1 and len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential backoff
    _Overpass.script = [429, 429, 429]
    with pytest.raises(RateLimitedError):
        b.query(q)
    _Overpass.script = [504, 504, 504]
    with pytest.raises(ToolTimeoutError):
        b.query(q)
    n = len(_Overpass.seen)
    _Overpass.script = [400]
    with pytest.raises(ToolInputError, match="unknown key"):
        b.query(q)
    assert len(_Overpass.seen) == n + 1  # a 400 is not retried


def test_osm_search_tool_in_an_episode(dbs, plain_photo):
    image = load_image(plain_photo)
    tools = ToolSet([OsmSearchTool(LocalBackend(dbs["liechtenstein"])), create("gazetteer")])
    ep = Episode(image, tools)
    q = {
        "features": [{"id": "fuel", "tags": [{"key": "amenity", "value": "fuel"}]}],
        "scope": {"kind": "area", "iso": "LI"},
        "limit": 3,
    }
    big = {**q, "scope": {"kind": "bbox", "south": 40, "west": 0, "north": 50, "east": 20}}
    obs = ep.step(
        render_turn(
            "find fuel stations",
            [ToolCall(name="osm_search", arguments=q), ToolCall(name="osm_search", arguments=big)],
        )
    )
    assert [o.kind for o in obs] == ["tool_result", "tool_error"]
    assert "16 distinct place(s) via local (showing 1-3; offset 3 for more)" in obs[0].text
    assert "narrow it" in obs[1].text
    unconfigured = Episode(image, ToolSet([create("osm_search")]))
    o = unconfigured.step(render_turn("x", [ToolCall(name="osm_search", arguments=q)]))[0]
    assert o.kind == "tool_error" and "geolocate osm index" in o.text


def test_a_silent_overpass_ends_within_its_timeout_with_a_clear_message(
    overpass_server, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    q = tmp_path / "q.json"
    q.write_text(json.dumps(CHURCH_PHARMACY))
    _Overpass.script = [1]
    t = time.perf_counter()
    assert main(["osm", "query", str(q), "--overpass", overpass_server, "--timeout", "2"]) == 2
    assert time.perf_counter() - t < 6
    assert "did not answer within 2 s" in capsys.readouterr().err
    _Overpass.script = [2]
    assert main(["osm", "query", str(q), "--overpass", overpass_server]) == 2
    err = capsys.readouterr().err
    assert "answered text/html, not JSON" in err and "Traceback" not in err


def test_an_overpass_that_trickles_is_cut_off_at_the_whole_request_deadline(
    overpass_server, capsys, tmp_path, monkeypatch
):
    """A server that answers 200 at once and then sends a byte a second: the request ends at its
    time-out (the whole request, not each read), with a message."""
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    q = tmp_path / "q.json"
    q.write_text(json.dumps(CHURCH_PHARMACY))
    _Overpass.script = [3]
    t = time.perf_counter()
    assert main(["osm", "query", str(q), "--overpass", overpass_server, "--timeout", "3"]) == 2
    took = time.perf_counter() - t
    err = capsys.readouterr().err
    assert took < 8, took
    assert "did not finish its answer in time" in err and "Traceback" not in err


def test_overpass_429_and_503_say_so_with_retry_after(overpass_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    b = OverpassBackend(overpass_server, retries=0, cache=False, sleep=lambda s: None)
    q = FeatureQuery.model_validate(CHURCH_PHARMACY)
    for code, words in ((429, "429 Too Many Requests"), (503, "503 Service Unavailable")):
        _Overpass.script = [code]
        with pytest.raises(RateLimitedError) as e:
            b.query(q)
        assert words in str(e.value) and "retry after 7 s" in str(e.value) and e.value.retry_after == 7.0


@pytest.mark.parametrize(
    "content", [b"garbage" * 200, b"", None], ids=["not-sqlite", "empty", "other-schema"]
)
def test_a_bad_index_file_is_a_one_line_error(tmp_path, capsys, plain_photo, content):
    db = tmp_path / "x.sqlite"
    if content is None:
        import sqlite3

        sqlite3.connect(db).execute("CREATE TABLE other (a)")
    else:
        db.write_bytes(content)
    assert (
        main(["osm", "query", "--db", str(db), "--bbox", "47,9.4,47.3,9.7", "--feature", "amenity=pharmacy"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "not a geolocate OSM index" in err and "Traceback" not in err
    assert main(["locate", str(plain_photo), "--osm-db", str(db), "--quiet"]) == 2
    assert "not a geolocate OSM index" in capsys.readouterr().err


def test_a_catastrophic_regex_ends_within_its_timeout_with_a_clear_message(dbs, capsys):
    """``(a|aa)+$`` backtracks exponentially on a long run of a's: the query ends at the regex
    time-out with a message, it does not hang."""
    from geolocate.tools.osm.query import TagFilter

    t = time.perf_counter()
    with pytest.raises(Exception, match="took over 0.05 s"):
        TagFilter(key="name", op="regex", value="(a|aa)+$").matches({"name": "a" * 40 + "b"})
    assert time.perf_counter() - t < 1.0
    db = str(dbs["liechtenstein"])
    args = [
        "osm",
        "query",
        "--db",
        db,
        "--bbox",
        "47.04,9.47,47.28,9.64",
        "--feature",
        "amenity=place_of_worship",
    ]
    t = time.perf_counter()
    assert main([*args, "--name", "^(a|aa)+$"]) in (0, 2)  # real names are short: it answers or refuses
    assert time.perf_counter() - t < 30
    assert main([*args, "--name", "x" * 201]) == 2
    assert "at most 100 characters" in capsys.readouterr().err


def test_restaurants_near_benches_come_back_once_each_with_a_true_total(dbs):
    """423 restaurant-bench combinations within 100 m on the Helsinki extract are 53 restaurants: the
    places view lists each once with its nearest bench, ranked by distance, with the true total and
    pages; the combinations view is capped at the limit and says so."""
    q = FeatureQuery.model_validate(
        {"features": [{"id": "restaurant", "tags": [{"key": "amenity", "value": "restaurant"}]},
                      {"id": "bench", "tags": [{"key": "amenity", "value": "bench"}]}],
         "relations": [{"a": "restaurant", "b": "bench", "max_m": 100}],
         "scope": {"kind": "bbox", "south": 60.15, "west": 24.90, "north": 60.20, "east": 25.00},
         "limit": 500}
    )  # fmt: skip
    b = LocalBackend(dbs["helsinki"])
    full = b.query(q)
    assert not full.truncated and len(full.matches) > len(full.places)
    nearest: dict[str, float] = {}
    for m in full.matches:  # the reference: every combination, reduced by hand
        rid, d = m.features["restaurant"].id, m.distances_m["restaurant~bench"]
        nearest[rid] = min(d, nearest.get(rid, float("inf")))
    ids = [p.feature.id for p in full.places]
    assert len(ids) == len(set(ids)) == full.total_places == len(nearest)
    assert {p.feature.id: p.distances_m["restaurant~bench"] for p in full.places} == nearest
    assert [p.total_m for p in full.places] == sorted(p.total_m for p in full.places)
    page = b.query(q.model_copy(update={"limit": 50}))
    assert page.truncated and len(page.matches) == 50  # combinations: capped, and flagged
    assert page.total_places == len(nearest) and [p.feature.id for p in page.places] == ids[:50]
    rest = b.query(q.model_copy(update={"limit": 50, "offset": 50}))
    assert [p.feature.id for p in rest.places] == ids[50:]


def test_or_across_keys_matches_reference_and_every_backend(dbs, overpass_server, tmp_path, monkeypatch):
    """shop=bakery OR amenity=cafe OR amenity=ice_cream: the local index equals an independent pyosmium
    pass; the CLI's '|' form builds the same query; Overpass gets one union statement (and the
    PostGIS backend is checked on the same query in tests/test_services.py)."""
    from geolocate.tools.osm.overpass import compile_ql
    from geolocate.tools.osm.query import feature_from_text

    b = LocalBackend(dbs["helsinki"])
    keep = lambda t: t.get("amenity") in ("cafe", "ice_cream") or t.get("shop") == "bakery"  # noqa: E731
    ref = reference_features("helsinki.osm.pbf", HEL_BBOX, keep)
    got = ids(b.query(Q("any_of")))
    assert got == set(ref) and len(ref) >= 10
    single = set()
    for tag in ("amenity=cafe", "shop=bakery", "amenity=ice_cream"):  # the union of the three queries
        q = FeatureQuery.model_validate({"features": [feature_from_text("a", tag).model_dump()],
                                         "scope": HEL_BBOX, "limit": 500})  # fmt: skip
        single |= ids(b.query(q))
    assert got == single
    spec = feature_from_text("a", "amenity=cafe|shop=bakery|amenity=ice_cream")
    assert spec.model_dump() == Q("any_of").features[0].model_dump()
    ql = compile_ql(Q("any_of"))
    assert '(nwr["amenity"="cafe"](60.16,24.93,60.18,24.96);nwr["shop"="bakery"]' in ql and ")->.a;" in ql
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    church = feature_from_text("church", "building=church|amenity=x").model_dump()
    pharmacy = feature_from_text("pharmacy", "shop=chemist|amenity=pharmacy").model_dump()
    q = FeatureQuery.model_validate({**CHURCH_PHARMACY, "features": [church, pharmacy]})
    r = OverpassBackend(overpass_server, user_agent="geolocate-tests/1.0", sleep=lambda s: None).query(q)
    assert [(m.features["church"].id, m.features["pharmacy"].id) for m in r.matches] == [("w20", "n10")]


def test_the_area_guard_refuses_the_world_and_wide_boxes(dbs, capsys):
    """A world bbox and a 360-degree band are measured on the sphere (a polygon routine sees the world
    box as area 0); a country named on Overpass is held to the guard."""
    from geolocate.tools.osm.engine import ScopeTooLargeError, bbox_area_km2

    b = LocalBackend(dbs["helsinki"])
    feat = [{"id": "a", "tags": [{"key": "amenity", "value": "cafe"}]}]
    for box in ({"south": -90, "west": -180, "north": 90, "east": 180},
                {"south": 60.0, "west": -180, "north": 60.2, "east": 180}):  # fmt: skip
        q = FeatureQuery.model_validate({"features": feat, "scope": {"kind": "bbox", **box}})
        with pytest.raises(ScopeTooLargeError, match="over the limit"):
            b.query(q)
    assert bbox_area_km2(-90, -180, 90, 180) == pytest.approx(510.07e6, rel=1e-3)  # the Earth's surface
    assert main(["osm", "query", "--db", str(dbs["helsinki"]), "--feature", "amenity=cafe",
                 "--bbox=-90,-180,90,180"]) == 2  # fmt: skip
    assert "over the limit" in capsys.readouterr().err
    named = FeatureQuery.model_validate({"features": feat, "scope": {"kind": "area", "name": "Finland"}})
    with pytest.raises(ScopeTooLargeError):
        OverpassBackend("http://127.0.0.1:9/api/interpreter").query(named)  # refused before any request


def test_a_key_no_feature_has_is_an_error_with_the_near_keys(dbs, capsys):
    assert main(["osm", "query", "--db", str(dbs["helsinki"]), "--feature", "amenty=cafe",
                 "--bbox", "60.15,24.90,60.20,25.00"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "no feature in this extract has the tag key 'amenty'" in err and "amenity (" in err
    tags = [{"key": "amenity", "value": "cafe"}, {"key": "amenty", "op": "absent"}]
    ok = FeatureQuery.model_validate({"features": [{"id": "a", "tags": tags}], "scope": HEL_BBOX})
    assert LocalBackend(dbs["helsinki"]).query(ok).total_places > 0  # a negative filter may name any key


HEL_CENTRE = {"kind": "bbox", "south": 60.15, "west": 24.90, "north": 60.20, "east": 25.00}


def _kind(g: shapely.Geometry) -> str:
    return {"Point": "point", "LineString": "line", "MultiLineString": "line"}.get(g.geom_type, "area")


@pytest.mark.parametrize("extract, bbox", [("helsinki", HEL_CENTRE), ("liechtenstein", LI_BBOX)])
def test_every_category_preset_counts_like_pyosmium(dbs, extract, bbox):
    """Every preset (the fixed categories, Bellingcat's OSM Search kinds and more, and the
    parameterised builders with their defaults), on both extracts: the
    local index's points, lines and areas, counted apart, equal an independent pyosmium pass
    (osmium's area assembly, closed ways held to iD's area rule as the test states it) filtered by
    the preset's tags and kinds."""
    from collections import Counter

    from geolocate.tools.osm.presets import CATEGORIES, PRESETS, category, preset

    b = LocalBackend(dbs[extract])
    specs = {name: category(name, "a") for name in CATEGORIES}
    builders = {name: {"kind": "cafe"} if name == "amenity" else {} for name in PRESETS if name not in specs}
    specs |= {name: preset(name, id="a", **params) for name, params in builders.items()}  # their defaults
    tags: dict[str, dict] = {}  # one pyosmium pass, filtered per preset below
    every = reference_features(EXTRACTS[extract], bbox, lambda t: any(s.matches(t) for s in specs.values()),
                               area_rule=id_area_rule, tags_out=tags)  # fmt: skip
    agree = []
    for name, spec in specs.items():
        q = FeatureQuery.model_validate(
            {"features": [spec.model_dump(exclude_none=True)], "scope": bbox, "limit": 500}
        )
        got = Counter()
        r = b.query(q)
        page = r
        while True:  # every page of distinct places
            got.update(p.feature.kind for p in page.places)
            if page.offset + len(page.places) >= page.total_places:
                break
            page = b.query(q.model_copy(update={"offset": page.offset + len(page.places)}))
        ref = [g for fid, g in every.items() if spec.matches(tags[fid])]
        want = Counter(k for k in map(_kind, ref) if spec.kinds is None or k in spec.kinds)
        assert got == want, f"{name}: local {dict(got)} != pyosmium {dict(want)}"
        agree.append(name)
    assert len(agree) == len(PRESETS) and len(CATEGORIES) >= 46


def _extract_bbox(extract: str) -> dict:
    """The whole extract's bounding box (its header's, or its nodes' when the header has none)."""
    import osmium

    box = osmium.io.Reader(str(OSM / extract), osmium.osm.osm_entity_bits.NOTHING).header().box()
    if box.valid():
        bl, tr = box.bottom_left, box.top_right
        return {"kind": "bbox", "south": bl.lat, "west": bl.lon, "north": tr.lat, "east": tr.lon}
    lats, lons = [], []
    for n in osmium.FileProcessor(str(OSM / extract), osmium.osm.NODE):
        if n.location.valid():
            lats.append(n.location.lat)
            lons.append(n.location.lon)
    return {"kind": "bbox", "south": min(lats), "west": min(lons), "north": max(lats), "east": max(lons)}


@pytest.mark.parametrize("extract", ["helsinki", "liechtenstein"])
def test_every_bellingcat_osm_search_preset_counts_like_pyosmium_on_the_whole_extract(dbs, extract):
    """Bellingcat's OSM Search presets (its queries.js, vendored as data), each as the local index
    answers it over the whole extract, points, lines and areas counted apart: equal to an independent
    pyosmium pass filtered by the preset's own filters (geometry type point / line / polygon / any).
    Ways cut by the extract's edge count with what is inside (one node: a point), as the index keeps
    them; a key absent from the extract (``building:levels`` in Liechtenstein) gives zero, not an error."""
    from collections import Counter

    from geolocate.tools.osm.presets import bellingcat_presets

    presets = bellingcat_presets()
    assert len(presets) == 46
    bbox = _extract_bbox(EXTRACTS[extract])
    b = LocalBackend(dbs[extract], limits=QueryLimits(max_area_km2=50_000))
    specs = {name: spec for name, (_display, spec) in presets.items()}
    tags: dict[str, dict] = {}
    every = reference_features(EXTRACTS[extract], bbox, lambda t: any(s.matches(t) for s in specs.values()),
                               area_rule=id_area_rule, tags_out=tags)  # fmt: skip
    exact, counted = [], 0
    for name, spec in specs.items():
        q = FeatureQuery.model_validate(
            {"features": [spec.model_dump(exclude_none=True)], "scope": bbox, "limit": 500}
        )
        got, page = Counter(), b.query(q)
        while True:
            got.update(p.feature.kind for p in page.places)
            if page.offset + len(page.places) >= page.total_places:
                break
            page = b.query(q.model_copy(update={"offset": page.offset + len(page.places)}))
        ref = [g for fid, g in every.items() if spec.matches(tags[fid])]
        want = Counter(k for k in map(_kind, ref) if spec.kinds is None or k in spec.kinds)
        assert got == want, f"{name}: local {dict(got)} != pyosmium {dict(want)}"
        exact.append(name)
        counted += sum(want.values())
    assert len(exact) == 46 and counted > 1000


def test_presets_with_parameters_from_the_cli_and_the_planner(dbs, capsys):
    from geolocate.tools.osm.presets import CATEGORIES, PRESETS

    assert main(["osm", "presets"]) == 0
    listing = capsys.readouterr().out
    assert f"{len(PRESETS)} presets" in listing and "lanes: int | None = None" in listing
    assert "highway=bus_stop" in listing and "water_tower" in listing
    db = str(dbs["helsinki"])
    assert main(["osm", "query", "--db", db, "--preset", "amenity", "--bbox", "60.15,24.90,60.20,25.00"]) == 2
    assert "preset 'amenity' takes kind: str" in capsys.readouterr().err  # no traceback
    assert main(["osm", "query", "--db", db, "--preset", "road", "lanes=3", "--preset", "bus_stop",
                 "--within", "30", "--bbox", "60.15,24.90,60.20,25.00", "--csv"]) == 0  # fmt: skip
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("row,p1_osm_id") and len(rows) > 5
    # The planner names presets in the query it writes: the same features as the CLI's flags.
    feats = [{"id": "r", "preset": "road", "params": {"lanes": 3}}, {"id": "s", "preset": "bus_stop"}]
    rel = [{"a": "r", "b": "s", "max_m": 30}]
    r = LocalBackend(dbs["helsinki"]).query(
        FeatureQuery.model_validate({"features": feats, "relations": rel, "scope": HEL_CENTRE})
    )
    assert len(rows) - 1 == min(50, r.total_places) and r.total_places > 0
    assert {"restaurant", "cafe", "bus_stop", "church", "petrol_station", "rail", "water_tower",
            "sports_pitch", "power_line_any"} <= set(CATEGORIES) and len(CATEGORIES) >= 46  # fmt: skip


def test_ways_cut_by_the_extracts_edge_are_kept_and_flagged(dbs):
    """Every tagged way with nodes outside the Helsinki extract (and at least one inside) is in the
    index with the part inside, flagged clipped: a closed one the area rule accepts is an area, one
    node inside is a point, others are lines. So is
    every multipolygon or boundary relation that osmium cannot assemble for a member cut or missing."""
    import sqlite3

    ignored = {"created_by", "source", "note", "fixme", "FIXME"}
    want: dict[str, str] = {}
    for o in osmium.FileProcessor(str(OSM / EXTRACTS["helsinki"])).with_locations():
        if not o.is_way():
            continue
        tags = {t.k: t.v for t in o.tags if t.k not in ignored}
        pts = {(n.lon, n.lat) for n in o.nodes if n.location.valid()}
        if tags and pts and len(pts) < len({n.ref for n in o.nodes}):
            area = o.is_closed() and id_area_rule(tags) and len(pts) >= 3
            want[f"w{o.id}"] = "area" if area else "line" if len(pts) >= 2 else "point"
    # Multipolygon and boundary relations with a member missing or cut: kept from the members inside.
    rels = {
        r.id: [m.ref for m in r.members if m.type == "w"]
        for r in osmium.FileProcessor(str(OSM / EXTRACTS["helsinki"]), osmium.osm.RELATION)
        if r.tags.get("type") in ("multipolygon", "boundary")
        and len([t for t in r.tags if t.k not in ignored]) > 1
    }
    inside: dict[int, int] = {}
    whole: set[int] = set()
    for o in osmium.FileProcessor(str(OSM / EXTRACTS["helsinki"])).with_locations():
        if o.is_way():
            inside[o.id] = len({(n.lon, n.lat) for n in o.nodes if n.location.valid()})
            if all(n.location.valid() for n in o.nodes):
                whole.add(o.id)
    cut_rels = {
        f"r{rid}" for rid, ws in rels.items()
        if not all(w in whole for w in ws) and any(inside.get(w, 0) >= 2 for w in ws)
    }  # fmt: skip
    con = sqlite3.connect(dbs["helsinki"])
    got = dict(con.execute("SELECT fid, kind FROM features WHERE clipped = 1 AND fid LIKE 'w%'").fetchall())
    got_rels = {r for (r,) in con.execute("SELECT fid FROM features WHERE clipped = 1 AND fid LIKE 'r%'")}
    assert len(cut_rels) >= 10 and got_rels == cut_rels
    assert len(want) > 100 and set(got) == set(want)
    assert sum(k == "area" for k in got.values()) == sum(k == "area" for k in want.values()) > 50
    edge = next(fid for fid, k in got.items() if k == "area")
    lat, lon = con.execute("SELECT lat, lon FROM features WHERE fid = ?", (edge,)).fetchone()
    tags = dict(json.loads(con.execute("SELECT tags FROM features WHERE fid = ?", (edge,)).fetchone()[0]))
    key = next(iter(tags))
    feat = {"id": "a", "tags": [{"key": key, "op": "exists"}], "kinds": ["area"]}
    scope = {"kind": "around", "lat": lat, "lon": lon, "radius_m": 5}
    q = FeatureQuery.model_validate({"features": [feat], "scope": scope})
    hits = [p.feature for p in LocalBackend(dbs["helsinki"]).query(q).places if p.feature.id == edge]
    assert hits and hits[0].clipped  # the query result says so too


def test_named_admin_areas_on_overpass_are_held_to_the_area_guard(overpass_server, tmp_path, monkeypatch):
    """An ISO 3166-2 code or a name below country level is sized by the boundary's bounding box,
    asked of the server first: too large, refused before the query; unknown, a clear error."""
    from geolocate.tools.osm.engine import ScopeTooLargeError
    from geolocate.tools.osm.local import AreaNotFoundError

    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    b = OverpassBackend(overpass_server, user_agent="geolocate-tests/1.0", sleep=lambda s: None)
    feat = [{"id": "a", "tags": [{"key": "amenity", "value": "pharmacy"}]}]
    canton = FeatureQuery.model_validate({"features": feat, "scope": {"kind": "area", "iso": "CH-ZH"}})
    _Overpass.bounds = [{"minlat": 47.16, "minlon": 8.36, "maxlat": 47.69, "maxlon": 8.98}]  # ~3,300 km^2
    with pytest.raises(ScopeTooLargeError, match="over the limit"):
        b.query(canton)
    assert len(_Overpass.seen) == 1 and '["ISO3166-2"="CH-ZH"]' in _Overpass.seen[0][1]  # no query sent
    town = FeatureQuery.model_validate({"features": feat, "scope": {"kind": "area", "name": "Vaduz"}})
    _Overpass.bounds = [{"minlat": 47.12, "minlon": 9.50, "maxlat": 47.16, "maxlon": 9.55}]
    assert b.query(town).backend == "overpass" and len(_Overpass.seen) == 3  # look-up, then the query
    _Overpass.bounds = []
    nowhere = FeatureQuery.model_validate({"features": feat, "scope": {"kind": "area", "name": "Atlantis"}})
    with pytest.raises(AreaNotFoundError, match="Atlantis"):
        b.query(nowhere)


def _overpass_answer(extract: str, q: FeatureQuery) -> dict:
    """What an Overpass server holding this extract answers to ``q``'s QL (``out body`` of the
    features' elements in the scope's bbox, then ``(._;>;)`` for their member ways and nodes),
    built straight from the .osm.pbf with pyosmium: a recorded response, reproducible offline."""
    s = q.scope
    box = shapely.box(s.west, s.south, s.east, s.north)
    wanted_rels: dict[int, dict] = {}
    for r in osmium.FileProcessor(str(OSM / extract), osmium.osm.RELATION):
        tags = dict(r.tags)
        if tags and any(f.matches(tags) for f in q.features):
            wanted_rels[r.id] = {"type": "relation", "id": r.id, "tags": tags,
                                 "members": [{"type": {"w": "way", "n": "node", "r": "relation"}[m.type],
                                              "ref": m.ref, "role": m.role} for m in r.members]}  # fmt: skip
    member_ways = {m["ref"] for r in wanted_rels.values() for m in r["members"] if m["type"] == "way"}
    nodes, ways = {}, {}
    for o in osmium.FileProcessor(str(OSM / extract)).with_locations():
        tags = dict(o.tags)
        if o.is_node() and tags and any(f.matches(tags) for f in q.features):
            if o.location.valid() and box.intersects(shapely.Point(o.location.lon, o.location.lat)):
                nodes[o.id] = {
                    "type": "node",
                    "id": o.id,
                    "lat": o.location.lat,
                    "lon": o.location.lon,
                    "tags": tags,
                }
        elif o.is_way() and (o.id in member_ways or (tags and any(f.matches(tags) for f in q.features))):
            pts = [(n.ref, n.location.lon, n.location.lat) for n in o.nodes if n.location.valid()]
            if len(pts) < len(o.nodes):
                continue  # cut by the extract's edge: a live server has the whole way; left out here
            inside = any(box.intersects(shapely.Point(x, y)) for _r, x, y in pts)
            if o.id in member_ways or inside:
                ways[o.id] = (
                    {"type": "way", "id": o.id, "nodes": [r for r, _x, _y in pts], "tags": tags},
                    inside,
                )
                for r, x, y in pts:
                    nodes.setdefault(r, {"type": "node", "id": r, "lat": y, "lon": x})
    rels = []
    for rel in wanted_rels.values():
        ws = [m["ref"] for m in rel["members"] if m["type"] == "way"]
        if ws and all(w in ways for w in ws) and any(ways[w][1] for w in ws):
            rels.append(rel)
    for w, (_way, inside) in list(ways.items()):
        if not inside and w not in {m["ref"] for r in rels for m in r["members"]}:
            del ways[w]
    return {"version": 0.6, "elements": [*nodes.values(), *(w for w, _i in ways.values()), *rels]}


@pytest.mark.parametrize("name", [n for n, (_e, q) in QUERIES.items() if q["scope"].get("kind") == "bbox"])
def test_overpass_answers_like_the_local_index_on_recorded_responses(dbs, name, tmp_path, monkeypatch):
    """Every bbox query of QUERIES, answered by a server holding the same extract (responses built
    from the .osm.pbf): the Overpass backend's places and distances equal the local index's, except
    for features the extract cuts at its edge (a live server has them whole)."""
    extract, raw = QUERIES[name]
    q = Q(name)
    answer_json = _overpass_answer(EXTRACTS[extract], q)

    class Recorded(_Overpass):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps(answer_json).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorded)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("GEOLOCATE_CACHE_DIR", str(tmp_path))
    try:
        remote = OverpassBackend(
            f"http://127.0.0.1:{srv.server_port}/api/interpreter", sleep=lambda s: None
        ).query(q)
    finally:
        srv.shutdown()
    local = LocalBackend(dbs[extract]).query(q)
    whole = lambda r: {p.feature.id: round(p.total_m, 1) for p in r.places if not p.feature.clipped}  # noqa: E731
    assert whole(remote) and whole(remote) == whole(local)
