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

__all__ = [
    "Feature",
    "FeatureQuery",
    "FeatureSpec",
    "Match",
    "QueryLimits",
    "QueryResult",
    "Relation",
    "TagFilter",
]
