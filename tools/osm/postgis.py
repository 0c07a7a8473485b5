"""The PostGIS backend of the OSM feature search: an osm2pgsql database (``--latlong --hstore-all
--multi-geometry``, as ``geolocate services up`` builds it) answering :class:`FeatureQuery` with the
same result model as the other backends. The path for country- and planet-scale extracts.

Tag filters use the ``tags`` hstore (GIN index: ``tags ? key`` and ``tags @> 'key=>value'``); the
scope is checked in SQL (``ST_Intersects``; ``ST_DWithin`` on geography for a radius); relation
distances are PostGIS geography distances in true metres on the WGS84 spheroid
(``ST_DWithin`` / ``ST_Distance`` on ``geography``), edge to edge. The same area guard applies.
Feature ids follow OSM: ``n`` for nodes, ``w`` for ways, ``r`` for relations (osm2pgsql stores
relations with negative ids). A way with a single node inside the extract cannot be a line, so
osm2pgsql drops it; the embedded index keeps it as a clipped point, the one difference between them.
"""

from __future__ import annotations

import json

import shapely

from geolocate.tools.errors import ToolTimeoutError, ToolUnavailableError
from geolocate.tools.osm.engine import (
    Candidate,
    OsmBackend,
    PairDistances,
    ResolvedScope,
    add_geometry,
    answer,
    geodesic_area_km2,
    representative_point,
    resolve_bbox_or_around,
    sort_candidates,
)
from geolocate.tools.osm.local import AreaNotFoundError
from geolocate.tools.osm.query import (
    AreaScope,
    AroundScope,
    Feature,
    FeatureQuery,
    FeatureSpec,
    QueryLimits,
    QueryResult,
)

TABLES = (("planet_osm_point", "point"), ("planet_osm_line", "line"), ("planet_osm_polygon", "area"))


class PostGISBackend(OsmBackend):
    """FeatureQuery over an osm2pgsql/PostGIS database.

    Args:
        dsn: libpq connection string (``Services.default().dsn()`` for the local services).
        timeout_s: the server cancels a statement after this many seconds (``statement_timeout``).
    Raises:
        ToolUnavailableError: psycopg is missing or the database cannot be reached.
    """

    name = "postgis"

    def __init__(self, dsn: str, limits: QueryLimits | None = None, timeout_s: float = 60.0):
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - environment
            raise ToolUnavailableError(
                "the PostGIS backend needs psycopg", hint="geolocate services up installs it"
            ) from e
        try:
            self.con = psycopg.connect(
                dsn,
                autocommit=True,
                connect_timeout=10,
                options=f"-c statement_timeout={int(timeout_s * 1000)}",
            )
        except psycopg.OperationalError as e:
            raise ToolUnavailableError(
                f"cannot connect to PostGIS ({dsn}): {e}", hint="start it with 'geolocate services up'"
            ) from e
        self.limits = limits or QueryLimits()
        self.timeout_s = timeout_s

    # -- scope
    # -------------------------------------------------------------------------------------------------
    def resolve_scope(self, q: FeatureQuery) -> ResolvedScope:
        s = q.scope
        if not isinstance(s, AreaScope):
            return resolve_bbox_or_around(s)
        conds, args = [], []
        if s.iso:
            conds.append(
                "(lower(tags->'ISO3166-1') = lower(%s) OR lower(tags->'ISO3166-1:alpha2') = lower(%s) OR "
                "lower(tags->'ISO3166-2') = lower(%s))"
            )
            args += [s.iso] * 3
        if s.name:
            conds.append("lower(tags->'name') = lower(%s)")
            args.append(s.name)
        sql = (
            "SELECT ST_AsBinary(way), tags->'admin_level' FROM planet_osm_polygon "
            f"WHERE osm_id < 0 AND ({' OR '.join(conds)}) ORDER BY ST_Area(way) DESC"
        )
        for wkb, level in self.con.execute(sql, args).fetchall():
            if s.admin_level and level != str(s.admin_level):
                continue
            g = shapely.from_wkb(bytes(wkb))
            minx, miny, maxx, maxy = g.bounds
            c = g.centroid
            return ResolvedScope(g, (miny, minx, maxy, maxx), (c.y, c.x), geodesic_area_km2(g))
        what = " ".join(x for x in (s.name, s.iso) if x)
        raise AreaNotFoundError(
            f"area {what!r} is not in the PostGIS database",
            hint="use a bbox or a point with a radius instead",
        )

    # -- candidates
    # --------------------------------------------------------------------------------------------
    def _candidates(self, spec: FeatureSpec, q: FeatureQuery, scope: ResolvedScope) -> list[Candidate]:
        ors, args = [], []
        for branch in spec.branches():  # OR across keys: each alternative's prefilter, ORed
            ands = []
            for t in branch:
                if t.op == "eq":
                    ands.append("tags @> hstore(%s, %s)")
                    args += [t.key, t.value]
                elif t.op in ("exists", "regex", "lt", "le", "gt", "ge"):
                    ands.append("tags ? %s")
                    args.append(t.key)
            ors.append(" AND ".join(ands) or "TRUE")
        where = [f"(({') OR ('.join(ors)}))"]
        s, w, n, e = scope.bbox
        if isinstance(q.scope, AroundScope):
            scope_sql = "ST_DWithin(way::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s)"
            scope_args = [q.scope.lon, q.scope.lat, q.scope.radius_m]
        else:
            scope_sql = (
                "way && ST_MakeEnvelope(%s, %s, %s, %s, 4326) "
                "AND ST_Intersects(way, ST_GeomFromWKB(%s, 4326))"
            )
            scope_args = [w, s, e, n, shapely.to_wkb(scope.polygon)]
        out: dict[str, Candidate] = {}
        for table, kind in TABLES:
            if spec.kinds is not None and kind not in spec.kinds:
                continue
            sql = (
                f"SELECT osm_id, hstore_to_json(tags), ST_AsBinary(way) FROM {table} WHERE {scope_sql}"
                + "".join(f" AND {c}" for c in where)
            )
            for osm_id, tags, wkb in self.con.execute(sql, scope_args + args).fetchall():
                tags = tags if isinstance(tags, dict) else json.loads(tags)
                if not spec.matches(tags, kind):
                    continue
                fid = f"n{osm_id}" if kind == "point" else (f"w{osm_id}" if osm_id > 0 else f"r{-osm_id}")
                geom = shapely.from_wkb(bytes(wkb))
                lat, lon = representative_point(geom)
                out.setdefault(fid, Candidate(Feature(id=fid, tags=tags, lat=lat, lon=lon, kind=kind), geom))
        return sort_candidates(list(out.values()))

    def _pairs(self, q: FeatureQuery, cands: dict[str, list[Candidate]]) -> PairDistances:
        out: PairDistances = {}
        for r in q.relations:
            a = [shapely.to_wkb(c.geom) for c in cands[r.a]]
            b = [shapely.to_wkb(c.geom) for c in cands[r.b]]
            pairs: dict[tuple[int, int], float] = {}
            if a and b:
                sql = """
                    WITH a AS (SELECT i - 1 AS i, ST_GeomFromWKB(g, 4326)::geography AS g FROM
                    unnest(%s::bytea[]) WITH ORDINALITY AS t(g, i)),
                         b AS (SELECT i - 1 AS i, ST_GeomFromWKB(g, 4326)::geography AS g FROM
                         unnest(%s::bytea[]) WITH ORDINALITY AS t(g, i))
                    SELECT a.i, b.i, ST_Distance(a.g, b.g) FROM a JOIN b ON ST_DWithin(a.g, b.g, %s)"""
                for i, j, d in self.con.execute(sql, [a, b, r.max_m]).fetchall():
                    if r.min_m <= d <= r.max_m:
                        pairs[(int(i), int(j))] = round(float(d), 2)
            out[(r.a, r.b)] = pairs
        return out

    def query(self, q: FeatureQuery, with_geometry: bool = False) -> QueryResult:
        """Answer ``q``; raises the same errors as the local backend, and ToolTimeoutError when the
        server cancels a statement at its ``statement_timeout``."""
        import psycopg

        try:
            return self._query(q, with_geometry)
        except psycopg.errors.QueryCanceled:
            raise ToolTimeoutError(
                f"PostGIS cancelled the query after {self.timeout_s:g} s",
                hint="narrow the scope or the filters",
            ) from None

    def _query(self, q: FeatureQuery, with_geometry: bool) -> QueryResult:
        scope = self.guarded_scope(q)
        cands = {f.id: self._candidates(f, q, scope) for f in q.features}
        found = answer(q, cands, self._pairs(q, cands))
        if with_geometry:
            add_geometry(found, {c.feature.id: c.geom for cs in cands.values() for c in cs})
        return QueryResult(**found, backend=self.name, scope_km2=round(scope.area_km2, 3))
