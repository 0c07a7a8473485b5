"""The Overpass backend: compiles a FeatureQuery to Overpass QL, runs it through overpy against a
configurable endpoint (public or self-hosted), parses the answer with overpy, and evaluates the exact
proximity relations with the same engine as the local backend.

Overpass narrows candidates on the server (tag filters, scope, ``around`` between sets); numeric
comparisons and relation distances are then checked exactly on the client (numbers with units are
normalised as :func:`geolocate.tools.osm.query.parse_number` does; distances are edge to edge in metres).
Retries with exponential backoff on 429 and 504 (tenacity); answers are cached on disk by query text.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import regex
import shapely
from shapely.geometry import LineString, Point, Polygon

from geolocate.tools.errors import RateLimitedError, ToolInputError, ToolTimeoutError, ToolUnavailableError
from geolocate.tools.osm.engine import (
    Candidate,
    OsmBackend,
    ResolvedScope,
    add_geometry,
    answer,
    bbox_area_km2,
    in_scope,
    pair_distances_shapely,
    projector,
    representative_point,
    resolve_bbox_or_around,
    sort_candidates,
)
from geolocate.tools.osm.local import AreaNotFoundError, is_area_way
from geolocate.tools.osm.query import (
    AreaScope,
    AroundScope,
    BBoxScope,
    Feature,
    FeatureQuery,
    FeatureSpec,
    QueryLimits,
    QueryResult,
    TagFilter,
)

DEFAULT_ENDPOINT = "https://overpass-api.de/api/interpreter"


def ql_string(s: str) -> str:
    """A double-quoted Overpass QL string literal with ``\\`` and ``"`` escaped.

    >>> ql_string('Saint "Peter"')
    '"Saint \\\\"Peter\\\\""'
    """
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _filter(t: TagFilter) -> str:
    k = ql_string(t.key)
    if t.op == "eq":
        return f"[{k}={ql_string(t.value)}]"
    if t.op == "neq":
        return f"[{k}!={ql_string(t.value)}]"
    if t.op == "regex":
        return f"[{k}~{ql_string(t.value)}]"
    if t.op == "absent":
        return f"[!{k}]"
    return f"[{k}]"  # exists, and numeric comparisons (checked exactly on the client)


def _selector(spec: FeatureSpec) -> str:
    kinds = set(spec.kinds or ("point", "line", "area"))
    if kinds == {"point"}:
        return "node"
    if "point" not in kinds and "area" not in kinds:
        return "way"
    if "point" not in kinds:
        return "wr"
    return "nwr"


def area_selector(s: AreaScope) -> str:
    """The Overpass tag selector of an admin area scope (ISO code, name, admin level).

    >>> area_selector(AreaScope(kind="area", iso="CH-ZH"))
    '["ISO3166-2"="CH-ZH"]'
    """
    sel = ""
    if s.iso:
        key = "ISO3166-1" if len(s.iso) == 2 else "ISO3166-2"
        sel += f"[{ql_string(key)}={ql_string(s.iso)}]"
    if s.name:
        sel += f'["name"={ql_string(s.name)}]'
    if s.admin_level:
        sel += f'["admin_level"="{s.admin_level}"]'
    return sel


def compile_ql(q: FeatureQuery, timeout_s: int = 60) -> str:
    """Overpass QL for ``q``: one named set per feature, pruned by ``around`` for each relation, then
    the sets with their member ways and nodes (``out body``) so geometries can be rebuilt.

    >>> fuel = {"id": "fuel", "tags": [{"key": "amenity", "value": "fuel"}]}
    >>> q = FeatureQuery.model_validate({"features": [fuel],
    ...     "scope": {"kind": "around", "lat": 47.14, "lon": 9.52, "radius_m": 1000}})
    >>> print(compile_ql(q))
    [out:json][timeout:60];
    nwr["amenity"="fuel"](around:1000,47.14,9.52)->.fuel;
    (.fuel;);
    (._;>;);
    out body;
    """
    s = q.scope
    lines = [f"[out:json][timeout:{int(timeout_s)}];"]
    if isinstance(s, BBoxScope):
        scope = f"({s.south:g},{s.west:g},{s.north:g},{s.east:g})"
    elif isinstance(s, AroundScope):
        scope = f"(around:{s.radius_m:g},{s.lat:g},{s.lon:g})"
    else:
        lines.append(f"area{area_selector(s)}->.scope;")
        scope = "(area.scope)"
    for f in q.features:
        name = f'["name"~{ql_string(f.name)},i]' if f.name else ""
        stmts = [
            f"{_selector(f)}{''.join(_filter(t) for t in branch)}{name}{scope}" for branch in f.branches()
        ]
        if len(stmts) == 1:
            lines.append(f"{stmts[0]}->.{f.id};")
        else:  # OR across keys: a union of one statement per alternative
            lines.append("(" + "".join(f"{x};" for x in stmts) + f")->.{f.id};")
    for r in q.relations:
        lines.append(f"nwr.{r.a}(around.{r.b}:{r.max_m:g})->.{r.a};")
        lines.append(f"nwr.{r.b}(around.{r.a}:{r.max_m:g})->.{r.b};")
    lines.append("(" + "".join(f".{f.id};" for f in q.features) + ");")
    lines.append("(._;>;);")
    lines.append("out body;")
    return "\n".join(lines)


def _polygonize_relation(rel) -> shapely.Geometry | None:
    lines = []
    for m in rel.members:
        if getattr(m, "_type_value", None) != "way":
            continue
        try:
            way = m.resolve()
            coords = [(float(n.lon), float(n.lat)) for n in way.nodes]
        except Exception:  # noqa: BLE001 - incomplete member: skip it
            continue
        if len(coords) >= 2:
            lines.append(LineString(coords))
    if not lines:
        return None
    g = shapely.build_area(shapely.GeometryCollection(lines))
    return None if g.is_empty else g


def parse_elements(result) -> list[Candidate]:
    """Features (tagged nodes, ways, multipolygon/boundary relations) from an ``overpy.Result``."""
    out: list[Candidate] = []
    for n in result.nodes:
        if n.tags:
            out.append(_cand(f"n{n.id}", "point", n.tags, Point(float(n.lon), float(n.lat))))
    for w in result.ways:
        if not w.tags:
            continue
        try:
            coords = [(float(n.lon), float(n.lat)) for n in w.get_nodes(resolve_missing=False)]
        except Exception:  # noqa: BLE001 - nodes missing from the answer
            continue
        if len(coords) < 2:
            continue
        closed = coords[0] == coords[-1] and len(coords) >= 4
        if closed and is_area_way(w.tags):
            out.append(_cand(f"w{w.id}", "area", w.tags, Polygon(coords)))
        else:
            out.append(_cand(f"w{w.id}", "line", w.tags, LineString(coords)))
    for r in result.relations:
        if r.tags.get("type") in ("multipolygon", "boundary"):
            g = _polygonize_relation(r)
            if g is not None:
                out.append(_cand(f"r{r.id}", "area", r.tags, g))
    return out


def _cand(fid: str, kind: str, tags: dict, geom) -> Candidate:
    lat, lon = representative_point(geom)
    return Candidate(Feature(id=fid, tags=dict(tags), lat=lat, lon=lon, kind=kind), geom)


class _GatewayTimeout(ToolTimeoutError):
    """504 from the server (busy): retried with backoff, unlike a server that does not answer at all."""


def read_before(response, deadline: float, where: str) -> bytes:
    """The whole body of an HTTP ``response``, read in chunks, or :class:`ToolTimeoutError` once the
    monotonic clock passes ``deadline``: a server that answers 200 and then trickles a byte a second
    is cut off at the request's time-out, not after the last byte. Each read waits at most the time
    left (the socket's time-out is lowered to it)."""
    chunks = []
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    while True:
        left, chunk = deadline - time.monotonic(), None
        if left > 0:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(max(0.01, left))
            with contextlib.suppress(TimeoutError):  # a read that waits out the time left: the deadline
                chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if chunk is None:
            raise ToolTimeoutError(
                f"{where} did not finish its answer in time ({sum(map(len, chunks)):,} bytes so far)",
                hint="narrow the scope, or use the local backend",
            )
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (seconds, or an HTTP date); None if absent
    or unreadable.

    >>> retry_after_s("120"), retry_after_s(None), retry_after_s("soon")
    (120.0, None, None)
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import datetime as dt

    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class OverpassBackend(OsmBackend):
    """Overpass API through overpy.

    Args:
        endpoint: interpreter URL (public, or self-hosted ``http://localhost:12345/api/interpreter``).
        user_agent: sent with every request (public servers ask for one that identifies you).
        retries: attempts after the first on 429/504, with exponential backoff from ``backoff_s``.
        timeout_s: seconds to wait for an answer (a silent server is an error after this, not retried);
            also the ``[timeout:]`` the server is asked to respect.
        cache: cache answers on disk (geolocate cache dir) keyed by endpoint and query text.
        sleep: the sleep function used between retries (patchable in tests).
    """

    name = "overpass"

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        user_agent: str = "geolocate/0.1 (OSM feature search)",
        limits: QueryLimits | None = None,
        retries: int = 3,
        backoff_s: float = 2.0,
        timeout_s: int = 60,
        cache: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.endpoint, self.user_agent = endpoint, user_agent
        self.limits = limits or QueryLimits()
        self.retries, self.backoff_s, self.timeout_s, self.sleep = retries, backoff_s, timeout_s, sleep
        self._cache = None
        if cache:
            import diskcache

            from geolocate.tools.geonames import cache_dir

            self._cache = diskcache.Cache(str(cache_dir() / "overpass"))

    def _fetch(self, ql: str):
        """POST ``ql`` (:meth:`_post`) and parse the JSON with overpy (parsing apart from the network
        call, as overpy is built)."""
        import overpy

        body = self._post(ql)
        try:
            return overpy.Overpass().parse_json(body)
        except (ValueError, KeyError, TypeError, overpy.exception.OverPyException) as e:
            raise ToolUnavailableError(f"Overpass at {self.endpoint} sent a malformed answer: {e}") from None

    def area_bounds(self, s: AreaScope) -> tuple[float, float, float, float]:
        """(south, west, north, east) of the admin boundaries an area scope names, asked of the server
        before the query itself (``out ids bb``), so the area guard holds for named areas too.

        Raises:
            AreaNotFoundError: no boundary relation has those tags.
        """
        ql = f'[out:json][timeout:25];rel{area_selector(s)}["boundary"="administrative"];out ids bb;'
        try:
            els = json.loads(self._post(ql)).get("elements", [])
        except ValueError:
            els = []
        bounds = [e["bounds"] for e in els if isinstance(e, dict) and "bounds" in e]
        if not bounds:
            what = " ".join(x for x in (s.name, s.iso) if x)
            raise AreaNotFoundError(
                f"no admin boundary {what!r} on this Overpass server", hint="check the name or code"
            )
        return (
            min(b["minlat"] for b in bounds),
            min(b["minlon"] for b in bounds),
            max(b["maxlat"] for b in bounds),
            max(b["maxlon"] for b in bounds),
        )

    def _post(self, ql: str) -> bytes:
        """POST ``ql`` with a time-out (urllib) and map the HTTP status and content type to tool
        errors; the JSON body."""
        import socket

        req = urllib.request.Request(
            self.endpoint, data=ql.encode("utf-8"), headers={"User-Agent": self.user_agent}, method="POST"
        )
        where = f"Overpass at {self.endpoint}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as f:
                body, ctype = (
                    read_before(f, time.monotonic() + self.timeout_s, where),
                    f.headers.get_content_type(),
                )
        except urllib.error.HTTPError as e:
            if e.code in (429, 503):
                wait = retry_after_s(e.headers.get("Retry-After"))
                what = "429 Too Many Requests" if e.code == 429 else "503 Service Unavailable"
                raise RateLimitedError(
                    f"{where} answered {what}" + (f" (retry after {wait:g} s)" if wait is not None else ""),
                    retry_after=wait,
                    hint="wait, or use the local backend",
                ) from None
            if e.code == 504:
                raise _GatewayTimeout(
                    f"{where} answered 504 Gateway Timeout", hint="narrow the scope, or retry later"
                ) from None
            text = regex.sub(r"<[^>]+>|\s+", " ", e.read().decode("utf-8", "replace")).strip()
            if e.code == 400:
                raise ToolInputError(
                    f"Overpass rejected the query (400): {text[:200] or 'bad request'}",
                    hint="check tag keys and regexes",
                ) from None
            raise ToolUnavailableError(
                f"{where} answered HTTP {e.code}", hint="use the local backend"
            ) from None
        except ToolTimeoutError:
            raise
        except TimeoutError:
            raise ToolTimeoutError(
                f"{where} did not answer within {self.timeout_s:g} s",
                hint="narrow the scope, or use the local backend",
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise ToolTimeoutError(f"{where} did not answer within {self.timeout_s:g} s") from None
            raise ToolUnavailableError(
                f"cannot reach {where}: {reason}", hint="check the endpoint or use the local backend"
            ) from None
        if ctype != "application/json":
            raise ToolUnavailableError(
                f"{where} answered {ctype or 'no content type'}, not JSON (an error page?)",
                hint="check the endpoint URL (it ends in /api/interpreter)",
            )
        return body

    def fetch_candidates(self, ql: str) -> list[Candidate]:
        """Run ``ql`` (cached), retrying 429/504 with exponential backoff; parse into candidates."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        key = ("overpass", self.endpoint, ql)
        if self._cache is not None and key in self._cache:
            return [Candidate(Feature(**f), shapely.from_wkb(g)) for f, g in self._cache[key]]
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=60),
            retry=retry_if_exception_type((RateLimitedError, _GatewayTimeout)),
            sleep=self.sleep,
            reraise=True,
        )
        result = retrying(self._fetch, ql)
        cands = parse_elements(result)
        if self._cache is not None:
            self._cache[key] = [(c.feature.model_dump(), shapely.to_wkb(c.geom)) for c in cands]
        return cands

    def resolve_scope(self, q: FeatureQuery) -> ResolvedScope | None:
        s = q.scope
        if not isinstance(s, AreaScope):
            return resolve_bbox_or_around(s)
        if s.iso and len(s.iso) == 2:
            from geolocate.tools.geonames import get_db

            c = get_db().countries.get(s.iso)
            if c is None:
                raise AreaNotFoundError(
                    f"unknown country code {s.iso!r}", hint="use an ISO 3166-1 alpha-2 code"
                )
            return ResolvedScope(
                shapely.Polygon(), (-90, -180, 90, 180), (c.lat or 0.0, c.lon or 0.0), c.area_km2
            )
        if s.name and not s.iso:
            from geolocate.tools.geonames import get_db

            db = get_db()
            cc = db.resolve_country(s.name)  # a country by name is held to the guard like its ISO code
            c = db.countries.get(cc) if cc else None
            if c is not None:
                return ResolvedScope(
                    shapely.Polygon(), (-90, -180, 90, 180), (c.lat or 0.0, c.lon or 0.0), c.area_km2
                )
        # A smaller named area or an ISO 3166-2 code: sized by its bounding box, asked of the server.
        south, west, north, east = self.area_bounds(s)
        area = bbox_area_km2(south, west, north, east)
        return ResolvedScope(
            shapely.box(west, south, east, north), (south, west, north, east),
            ((south + north) / 2, (west + east) / 2), area,
        )  # fmt: skip

    def query(self, q: FeatureQuery, with_geometry: bool = False) -> QueryResult:
        """Answer ``q`` through Overpass. Raises the tool error types (see module docstring)."""
        scope = self.guarded_scope(q)
        cands = self.fetch_candidates(compile_ql(q, self.timeout_s))
        if scope is None or isinstance(q.scope, AreaScope):
            # The server applied the area; measure in metres around the answer's own centre.
            if cands:
                b = shapely.GeometryCollection([c.geom for c in cands]).bounds
                scope = ResolvedScope(
                    shapely.box(*b),
                    (b[1], b[0], b[3], b[2]),
                    ((b[1] + b[3]) / 2, (b[0] + b[2]) / 2),
                    scope.area_km2 if scope else 0.0,
                )
            else:
                return QueryResult(matches=[], backend=self.name)
        project = projector(*scope.center)
        per_spec: dict[str, list[Candidate]] = {}
        for f in q.features:
            mine = [c for c in cands if f.matches(c.feature.tags, c.feature.kind)]
            if not isinstance(q.scope, AreaScope) and mine:
                mask = in_scope(
                    scope,
                    project,
                    [project(c.geom) for c in mine] if scope.radius_m is not None else [],
                    [c.geom for c in mine],
                )
                mine = [c for c, k in zip(mine, mask) if k]
            per_spec[f.id] = sort_candidates(mine)
        found = answer(q, per_spec, pair_distances_shapely(q, per_spec, scope))
        if with_geometry:
            add_geometry(found, {c.feature.id: c.geom for c in cands})
        return QueryResult(
            **found, backend=self.name, scope_km2=round(scope.area_km2, 3) if scope.area_km2 else None
        )
