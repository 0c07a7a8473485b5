"""OpenStreetMap feature search: one query model (:class:`FeatureQuery`), backends that answer it
(embedded SQLite index built from an extract; the Overpass API through overpy), and the
``osm_search`` agent tool."""

from geolocate.tools.osm.query import (
    Feature,
    FeatureQuery,
    FeatureSpec,
    Match,
    QueryLimits,
    QueryResult,
    Relation,
    TagFilter,
)


def make_backend(
    db: str | None = None,
    overpass: str | None = None,
    limits: QueryLimits | None = None,
    timeout_s: float = 60,
):
    """The one OSM backend factory: the local index ``db`` if given, else the Overpass server
    ``overpass`` (its answers awaited ``timeout_s`` seconds).

    Backends import shapely and pyproj, so they load only here, when a query will run.

    Raises:
        ValueError: neither is given, or the Overpass URL is not an http(s) URL.
    """
    if db:
        from geolocate.tools.osm.local import LocalBackend

        return LocalBackend(db, limits) if limits else LocalBackend(db)
    if overpass:
        from geolocate.agent.options import check_url
        from geolocate.tools.osm.overpass import OverpassBackend

        check_url(overpass, "--overpass")
        return OverpassBackend(overpass, limits=limits or QueryLimits(), timeout_s=timeout_s)
    raise ValueError("give --db INDEX (from 'geolocate osm index') or --overpass URL")


__all__ = [
    "make_backend",
    "Feature",
    "FeatureQuery",
    "FeatureSpec",
    "Match",
    "QueryLimits",
    "QueryResult",
    "Relation",
    "TagFilter",
]
