"""The ``osm_search`` agent tool: a FeatureQuery in, matching map features out.

The backend comes from the run's options (``options["osm_backend"]``), else from the environment:
``GEOLOCATE_OSM_DB`` (a local index from ``geolocate osm index``) or ``GEOLOCATE_OVERPASS_URL``. No
query is ever sent to a public server unless configured (investigators' queries can be sensitive).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from geolocate.tools.base import Tool, ToolContext, ToolOutput
from geolocate.tools.errors import ToolUnavailableError
from geolocate.tools.osm.query import FeatureQuery, QueryResult

if TYPE_CHECKING:  # the backends import shapely and pyproj: load them only when a query runs
    from geolocate.tools.osm.engine import OsmBackend


class OsmSearchOutput(ToolOutput):
    result: QueryResult

    def summary(self) -> str:
        r = self.result
        if not r.matches and not r.places:
            return "no matching features: relax a tag filter, widen a distance or the scope"
        if not r.places:  # an older result
            return f"{len(r.matches)}{'+' if r.truncated else ''} match(es) via {r.backend}"
        parts = []
        for p in r.places[:8]:
            f = p.feature
            near = ", ".join(
                f"{fid} {g.tags.get('name', g.id)!r} {p.distances_m.get(k, 0.0):.0f} m"
                for (fid, g), k in zip(p.support.items(), p.distances_m, strict=False)
            )
            parts.append(
                f"{f.tags.get('name', f.id)!r} ({f.lat:.5f}, {f.lon:.5f})" + (f" near {near}" if near else "")
            )
        shown = f"{r.offset + 1}-{r.offset + len(r.places)}" if r.places else "none"
        more = (
            f"; offset {r.offset + len(r.places)} for more"
            if r.offset + len(r.places) < r.total_places
            else ""
        )
        return f"{r.total_places} distinct place(s) via {r.backend} (showing {shown}{more}): " + "; ".join(
            parts
        )


@functools.cache
def _env_backend(db: str | None, url: str | None) -> OsmBackend:
    from geolocate.tools.osm import make_backend

    return make_backend(db, url)


class OsmSearchTool(Tool):
    name = "osm_search"
    description = (
        "Search OpenStreetMap features near each other: e.g. a church within 200 m of a pharmacy, in a "
        "bbox, "
        "around a point, or in an admin area. Features are tag filters (eq, neq, regex, exists, absent, "
        "lt/le/gt/ge "
        "on numbers such as lanes or maxspeed); relations give max distances in metres (edge to edge). "
        "Scope too large: narrow it. No results: relax a filter or widen a distance."
    )
    Input = FeatureQuery
    Output = OsmSearchOutput
    timeout_s = 120.0

    def __init__(self, backend: OsmBackend | None = None):
        self.backend = backend

    def run(self, args: FeatureQuery, ctx: ToolContext) -> OsmSearchOutput:
        backend = ctx.options.get("osm_backend") or self.backend
        if backend is None:
            db, url = os.environ.get("GEOLOCATE_OSM_DB"), os.environ.get("GEOLOCATE_OVERPASS_URL")
            if not (db or url):
                raise ToolUnavailableError(
                    "no OpenStreetMap backend is configured for this run",
                    hint="use other tools; a user can build one with 'geolocate osm index EXTRACT' and "
                    "pass --osm-db",
                )
            backend = _env_backend(db, url)
        return OsmSearchOutput(result=backend.query(args))
