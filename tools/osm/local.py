"""The embedded OSM backend: a SQLite database with an R*Tree index, built from an .osm.pbf (or
.osm / .osm.gz / .osm.bz2) extract with pyosmium, answering :class:`FeatureQuery` offline.

Stored: every tagged node (point), every tagged way (line; closed ways with area tags become
areas), and every multipolygon or boundary relation (area, assembled by libosmium). Geometries are
WKB in WGS84; tags are kept whole (JSON) and indexed by (key, value). OSM data is ODbL 1.0,
(c) OpenStreetMap contributors.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import shapely

from geolocate.tools.errors import GeolocateError, ToolInputError
from geolocate.tools.files import OutputError, check_target, output_path
from geolocate.tools.geonames import readonly_sqlite
from geolocate.tools.osm.engine import (
    Candidate,
    OsmBackend,
    ResolvedScope,
    add_geometry,
    answer,
    geodesic_area_km2,
    in_scope,
    pair_distances_shapely,
    projector,
    representative_point,
    resolve_bbox_or_around,
    sort_candidates,
)
from geolocate.tools.osm.query import AreaScope, Feature, FeatureQuery, FeatureSpec, QueryLimits, QueryResult

INDEX_VERSION = 3

# Closed ways with one of these keys are areas (OSM wiki "Area"), unless area=no.
AREA_KEYS = {
    "building",
    "landuse",
    "amenity",
    "leisure",
    "natural",
    "shop",
    "tourism",
    "place",
    "boundary",
    "man_made",
    "water",
    "historic",
    "military",
    "office",
    "aeroway",
    "craft",
    "healthcare",
    "public_transport",
    "parking",
    "building:part",
    "landcover",
    "area:highway",
    "indoor",
    "golf",
    "club",
}
IGNORED_TAGS = {"created_by", "source", "note", "fixme", "FIXME"}


class OsmIndexError(GeolocateError, ValueError):
    """The extract cannot be indexed (missing, malformed, or without any tagged feature)."""


class AreaNotFoundError(ToolInputError):
    """An area scope names an area that the backend cannot find."""


def is_area_way(tags: dict[str, str]) -> bool:
    """Whether a *closed* way with these tags is an area, by iD's and osm2pgsql's rule: ``area=yes``
    or ``area=no`` decides; otherwise any area key makes it one (a fenced playground is an area, the
    fence notwithstanding), as do ``waterway=riverbank`` and ``waterway=dock``; a way with linear keys
    only (a closed road, a fence) stays a line.

    >>> is_area_way({"leisure": "playground", "barrier": "fence"}), is_area_way({"highway": "residential"})
    (True, False)
    """
    if tags.get("area") == "no":
        return False
    if tags.get("area") == "yes" or tags.get("waterway") in ("riverbank", "dock"):
        return True
    return any(k in AREA_KEYS for k in tags)


@dataclass
class IndexStats:
    path: Path
    points: int
    lines: int
    areas: int
    seconds: float
    source_mb: float

    @property
    def mb_per_s(self) -> float:
        return self.source_mb / self.seconds if self.seconds else float("inf")


_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE features(rowid INTEGER PRIMARY KEY, fid TEXT UNIQUE, kind TEXT, lat REAL, lon REAL, tags TEXT,
geom BLOB, clipped INTEGER DEFAULT 0);
CREATE TABLE feature_tags(rowid INTEGER, key TEXT, value TEXT);
CREATE VIRTUAL TABLE features_rtree USING rtree(rowid, min_lon, max_lon, min_lat, max_lat);
"""


def build_index(
    extract: str | Path, out: str | Path | None = None, progress: Callable[[int], None] | None = None
) -> IndexStats:
    """Build the SQLite index of ``extract`` at ``out`` (default: next to the extract, ``.sqlite``).

    ``progress`` is called with the number of features stored so far (every 5,000). The index is
    written to a temporary file beside ``out`` and renamed at the end (:mod:`geolocate.tools.files`),
    so a failed or interrupted build leaves neither a half index nor a temporary file behind.

    Raises:
        OsmIndexError: missing or unreadable file, malformed data, or no tagged feature in it;
        OutputError: ``out`` cannot be written, or the disk filled up.
    """
    src = Path(extract)
    if not src.is_file():
        raise OsmIndexError(f"{src}: no such file")
    dst = Path(out) if out else src.with_name(src.name.split(".osm")[0] + ".sqlite")
    check_target(dst)  # before the extract is read: a bad --out fails at once
    t0 = time.perf_counter()
    with output_path(dst, suffix=".tmp") as tmp:
        counts = _build(src, tmp, progress)
    if progress:
        progress(sum(counts.values()))
    return IndexStats(
        dst,
        counts["point"],
        counts["line"],
        counts["area"],
        time.perf_counter() - t0,
        src.stat().st_size / 1e6,
    )


def _build(src: Path, tmp: Path, progress: Callable[[int], None] | None) -> dict[str, int]:
    """Write the index of ``src`` into the SQLite file ``tmp``; the feature counts by kind.

    Raises:
        OsmIndexError: malformed data, or no tagged feature; OutputError: the disk is full.
    """
    import osmium
    from osmium.geom import WKBFactory

    wkb = WKBFactory()
    con = sqlite3.connect(tmp)
    counts = {"point": 0, "line": 0, "area": 0}
    rows: list[tuple] = []
    tag_rows: list[tuple] = []
    rtree_rows: list[tuple] = []

    def add(fid: str, kind: str, tags: dict[str, str], geom, clipped: bool = False) -> None:
        """Store a feature; ``geom`` is osmium's WKB (hex) or a shapely geometry."""
        g = geom if isinstance(geom, shapely.Geometry) else shapely.from_wkb(geom)
        if g.is_empty:
            return
        rowid = sum(counts.values()) + 1
        counts[kind] += 1
        lat, lon = representative_point(g)
        rows.append(
            (
                rowid,
                fid,
                kind,
                lat,
                lon,
                json.dumps(tags, ensure_ascii=False),
                shapely.to_wkb(g),
                int(clipped),
            )
        )
        tag_rows.extend((rowid, k, v) for k, v in tags.items())
        minx, miny, maxx, maxy = g.bounds
        rtree_rows.append((rowid, minx, maxx, miny, maxy))
        if progress and rowid % 5000 == 0:
            progress(rowid)

    try:
        con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
        # Multipolygon and boundary relations, to keep those cut by the extract's edge (osmium's area
        # assembler drops an incomplete one): their tags and member ways, from a quick first pass.
        relations: dict[int, tuple[dict[str, str], list[int]]] = {}
        for r in osmium.FileProcessor(str(src), osmium.osm.RELATION):
            rtags = {t.k: t.v for t in r.tags if t.k not in IGNORED_TAGS}
            if rtags.get("type") in ("multipolygon", "boundary") and len(rtags) > 1:
                relations[r.id] = (rtags, [m.ref for m in r.members if m.type == "w"])
        members = {w for _t, ws in relations.values() for w in ws}
        member_lines: dict[int, list[tuple[float, float]]] = {}
        assembled: set[int] = set()
        fp = osmium.FileProcessor(str(src)).with_locations().with_areas()
        for o in fp:
            if o.is_area():
                tags = {t.k: t.v for t in o.tags if t.k not in IGNORED_TAGS}
                if not o.from_way():
                    assembled.add(o.orig_id())
                if not tags or (o.from_way() and not is_area_way(tags)):
                    continue
                try:
                    geom = wkb.create_multipolygon(o)
                except RuntimeError:
                    continue
                add(("w" if o.from_way() else "r") + str(o.orig_id()), "area", tags, geom)
            elif o.is_node():
                tags = {t.k: t.v for t in o.tags if t.k not in IGNORED_TAGS}
                if tags and o.location.valid():
                    add(f"n{o.id}", "point", tags, wkb.create_point(o))
            elif o.is_way():
                if o.id in members:
                    member_lines[o.id] = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
                tags = {t.k: t.v for t in o.tags if t.k not in IGNORED_TAGS}
                if not tags:
                    continue
                complete = all(n.location.valid() for n in o.nodes)
                area = o.is_closed() and is_area_way(tags)
                if area and complete:
                    continue  # the area assembler above has it
                if complete:
                    add(f"w{o.id}", "line", tags, wkb.create_linestring(o))
                    continue
                # Cut by the extract's edge: keep the part inside, flagged clipped (an area as the
                # polygon of its present nodes), rather than drop it.
                pts = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
                if len(set(pts)) == 1:  # one node inside: the way is there, as a point, clipped
                    add(f"w{o.id}", "point", tags, shapely.Point(pts[0]), clipped=True)
                    continue
                if not pts:
                    continue
                if area and len(set(pts)) >= 3:
                    poly = shapely.make_valid(shapely.Polygon(pts))
                    if poly.area > 0:
                        add(f"w{o.id}", "area", tags, poly, clipped=True)
                        continue
                add(f"w{o.id}", "line", tags, shapely.LineString(pts), clipped=True)
        for rid, (rtags, ways) in relations.items():  # cut by the edge: the part inside, clipped
            if rid in assembled:
                continue
            lines = [
                shapely.LineString(member_lines[w]) for w in ways if len(set(member_lines.get(w, []))) >= 2
            ]
            if not lines:
                continue
            polys = [p for p in shapely.get_parts(shapely.polygonize(lines)) if p.area > 0]
            g = shapely.MultiPolygon(polys) if polys else shapely.MultiLineString(lines)
            add(f"r{rid}", "area" if polys else "line", rtags, g, clipped=True)
        if not rows:
            raise OsmIndexError(f"{src}: the extract contains no tagged feature")
        con.executemany("INSERT INTO features VALUES (?,?,?,?,?,?,?,?)", rows)
        con.executemany("INSERT INTO feature_tags VALUES (?,?,?)", tag_rows)
        con.executemany("INSERT INTO features_rtree VALUES (?,?,?,?,?)", rtree_rows)
        con.execute("CREATE INDEX feature_tags_kv ON feature_tags(key, value)")
        sha = hashlib.sha256(src.read_bytes()).hexdigest()
        meta = {
            "index_version": INDEX_VERSION,
            "source": src.name,
            "source_sha256": sha,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **{f"n_{k}": v for k, v in counts.items()},
        }
        con.executemany("INSERT INTO meta VALUES (?,?)", [(k, str(v)) for k, v in meta.items()])
        con.commit()
    except sqlite3.Error as e:
        if "full" in str(e):
            raise OutputError(f"{tmp.name}: no space left on the device (disk full)") from None
        raise OsmIndexError(f"cannot write the index: {e}") from None
    except RuntimeError as e:  # libosmium: malformed or unreadable input
        raise OsmIndexError(f"{src}: cannot read the extract ({e})") from e
    finally:
        con.close()
    return counts


class LocalBackend(OsmBackend):
    """Answers FeatureQuery from an index built by :func:`build_index` (read-only, thread-safe)."""

    name = "local"

    def __init__(self, db_path: str | Path, limits: QueryLimits | None = None):
        self.path = Path(db_path)
        if not self.path.is_file():
            raise OsmIndexError(
                f"{self.path}: no OSM index here; build one with 'geolocate osm index EXTRACT'"
            )
        self.limits = limits or QueryLimits()
        try:
            meta = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as e:  # not SQLite, empty, or another program's database
            raise OsmIndexError(
                f"{self.path}: not a geolocate OSM index ({e}); build one with 'geolocate osm index EXTRACT'"
            ) from None
        if int(meta.get("index_version", 0)) != INDEX_VERSION:
            raise OsmIndexError(
                f"{self.path}: index version {meta.get('index_version')} != {INDEX_VERSION}; rebuild it"
            )
        self.meta = meta
        self._keys: dict[str, int] | None = None

    def key_counts(self) -> dict[str, int]:
        """Every tag key of the index with the number of features carrying it (computed once)."""
        if self._keys is None:
            self._keys = dict(
                self.con.execute("SELECT key, COUNT(*) FROM feature_tags GROUP BY key").fetchall()
            )
        return self._keys

    def check_keys(self, q: FeatureQuery) -> list[str]:
        """Notes on the keys of ``q`` that no feature of this extract has: a feature that cannot match
        because a key of each of its alternatives is absent. A key in common OSM use (the presets',
        Bellingcat's, or the iD editor's, :func:`geolocate.tools.osm.presets.known_keys`) that this
        extract lacks gives zero results and a note; any other such key is taken for a typo.

        Raises:
            ToolInputError: an unknown key (the message lists the closest keys of the extract by edit
                similarity, rapidfuzz, with their feature counts).
        """
        from rapidfuzz import process

        from geolocate.tools.osm.presets import known_keys

        have, known = self.key_counts(), known_keys()
        notes: list[str] = []
        for f in q.features:
            missing = [
                [t.key for t in branch if t.op not in ("neq", "absent") and t.key not in have]
                for branch in f.branches()
            ]
            if not all(missing):  # some alternative can match here
                continue
            for key in dict.fromkeys(k for ks in missing for k in ks):
                if key in known:  # a real OSM key this extract happens to lack: no match, not an error
                    notes.append(
                        f"feature {f.id!r}: no feature of this extract has the key {key!r} (in common OSM "
                        "use): zero results here"
                    )
                    continue
                near = process.extract(key, list(have), limit=4, score_cutoff=60)
                hint = (
                    "near keys in this extract: " + ", ".join(f"{k} ({have[k]:,})" for k, _s, _i in near)
                    if near
                    else "check the key on the OpenStreetMap wiki (taginfo)"
                )
                raise ToolInputError(f"no feature in this extract has the tag key {key!r}", hint=hint)
        return notes

    @property
    def con(self) -> sqlite3.Connection:
        return readonly_sqlite(self.path)

    def resolve_scope(self, q: FeatureQuery) -> ResolvedScope:
        s = q.scope
        if not isinstance(s, AreaScope):
            return resolve_bbox_or_around(s)
        conds, args = [], []
        if s.iso:
            conds.append(
                "(t.key IN ('ISO3166-1', 'ISO3166-1:alpha2', 'ISO3166-2') AND t.value = ? COLLATE NOCASE)"
            )
            args.append(s.iso)
        if s.name:
            conds.append("(t.key = 'name' AND t.value = ? COLLATE NOCASE)")
            args.append(s.name)
        sql = (
            "SELECT DISTINCT f.tags, f.geom FROM feature_tags t JOIN features f ON f.rowid = t.rowid "
            f"WHERE f.kind = 'area' AND ({' OR '.join(conds)})"
        )
        best = None
        for tags_json, geom in self.con.execute(sql, args):
            tags = json.loads(tags_json)
            if tags.get("boundary") not in ("administrative", None) and "ISO3166-1" not in tags:
                continue
            if s.admin_level and tags.get("admin_level") != str(s.admin_level):
                continue
            if (
                s.name
                and s.iso
                and not (
                    tags.get("name", "").lower() == s.name.lower()
                    or s.iso.lower() in (v.lower() for v in tags.values())
                )
            ):
                continue
            g = shapely.from_wkb(geom)
            if best is None or g.area > best.area:
                best = g
        if best is None:
            what = " ".join(x for x in (s.name, s.iso) if x)
            raise AreaNotFoundError(
                f"area {what!r} is not in the local extract {self.meta.get('source')}",
                hint="use a bbox or a point with a radius instead",
            )
        minx, miny, maxx, maxy = best.bounds
        c = best.centroid
        return ResolvedScope(best, (miny, minx, maxy, maxx), (c.y, c.x), geodesic_area_km2(best))

    def _candidates(self, spec: FeatureSpec, scope: ResolvedScope, project) -> list[Candidate]:
        s, w, n, e = scope.bbox
        found: dict[str, Candidate] = {}
        for branch in spec.branches():  # OR: one indexed look-up per alternative, merged by id
            sql = (
                "SELECT f.fid, f.kind, f.lat, f.lon, f.tags, f.geom, f.clipped "
                "FROM features_rtree r JOIN features f ON f.rowid = r.rowid"
            )
            args: list = []
            pos = next((t for t in branch if t.op == "eq"), None) or next(
                (t for t in branch if t.op in ("exists", "regex", "lt", "le", "gt", "ge")), None
            )
            if pos is not None:
                sql += " JOIN feature_tags t ON t.rowid = f.rowid AND t.key = ?" + (
                    " AND t.value = ?" if pos.op == "eq" else ""
                )
                args += [pos.key] + ([pos.value] if pos.op == "eq" else [])
            sql += " WHERE r.max_lon >= ? AND r.min_lon <= ? AND r.max_lat >= ? AND r.min_lat <= ?"
            args += [w, e, s, n]
            for fid, kind, lat, lon, tags_json, geom, clipped in self.con.execute(sql, args):
                if fid in found:
                    continue
                tags = json.loads(tags_json)
                if spec.matches(tags, kind):
                    feature = Feature(id=fid, tags=tags, lat=lat, lon=lon, kind=kind, clipped=bool(clipped))
                    found[fid] = Candidate(feature, shapely.from_wkb(geom))
        out = list(found.values())
        if not out:
            return out
        mask = in_scope(
            scope,
            project,
            [project(c.geom) for c in out] if scope.radius_m is not None else [],
            [c.geom for c in out],
        )
        return sort_candidates([c for c, keep in zip(out, mask) if keep])

    def query(self, q: FeatureQuery, with_geometry: bool = False) -> QueryResult:
        """Answer ``q`` from the index.

        Raises:
            ScopeTooLargeError, AreaNotFoundError (ToolInputError): bad scope.
            ToolInputError: limit over the maximum result count.
        """
        scope = self.guarded_scope(q)
        notes = self.check_keys(q)
        project = projector(*scope.center)
        cands = {f.id: self._candidates(f, scope, project) for f in q.features}
        found = answer(q, cands, pair_distances_shapely(q, cands, scope))
        if with_geometry:
            add_geometry(found, {c.feature.id: c.geom for cs in cands.values() for c in cs})
        return QueryResult(**found, backend=self.name, scope_km2=round(scope.area_km2, 3), notes=notes)
