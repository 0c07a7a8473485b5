"""Integration tests against real self-hosted services: Nominatim and PostGIS on loopback.

Marked ``integration``: ``python -m pytest -m "not integration"`` runs the fast suite alone. The
module brings the services up itself when they are not running (root on Debian: it installs
PostgreSQL 15, PostGIS 3, osm2pgsql and Nominatim 5.3.3) and stops what it started.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from geolocate.tools.base import ToolContext
from geolocate.tools.cli import DEFAULT_SERVICE_EXTRACTS
from geolocate.tools.geocode import GeocodeInput, GeocodeTool, NominatimGeocoder
from geolocate.tools.image import load_image
from geolocate.tools.osm.local import LocalBackend, build_index
from tests.conftest import SHARED
from tests.test_osm import EXTRACTS, QUERIES, Q

pytestmark = pytest.mark.integration
OSM = SHARED / "osm"


@pytest.fixture(scope="module")
def geocoder(services, tmp_path_factory):
    os.environ["GEOLOCATE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return NominatimGeocoder(
        "geolocate-tests/0.1", domain=services.nominatim_domain, scheme="http", min_delay_s=0.0, cache=False
    )


@pytest.mark.parametrize(
    "point, country, admin1, city",
    [
        ((47.1393, 9.5228), "LI", "Vaduz", "Vaduz"),
        ((47.1650, 9.5090), "LI", "Schaan", "Schaan"),
        ((42.5063, 1.5218), "AD", "Andorra la Vella", "Andorra la Vella"),
        ((42.5560, 1.5330), "AD", "Ordino", "Ordino"),
    ],
)
def test_reverse_geocoding_of_known_points_through_geopy(geocoder, point, country, admin1, city):
    r = geocoder.reverse(*point)
    assert (r.country_code, r.admin1, r.city, r.level) == (country, admin1, city, "city")
    assert r.distance_km is not None and r.distance_km < 2


def test_point_outside_the_extract_is_a_country_level_fallback(geocoder, plain_photo):
    r = geocoder.reverse(48.8566, 2.3522)
    assert r.country_code == "FR" and r.level == "country" and r.city == ""
    out = GeocodeTool(geocoder).run(
        GeocodeInput(op="reverse", lat=48.8566, lon=2.3522), ToolContext(load_image(plain_photo))
    )
    assert "[country-level, nominatim]" in out.summary()


def test_forward_search_of_a_town(geocoder):
    hits = geocoder.forward("Vaduz")
    assert (
        hits and hits[0].country_code == "LI" and abs(hits[0].lat - 47.14) < 0.05 and hits[0].place_rank == 16
    )
    assert geocoder.forward("Ordino", country="AD")[0].country_code == "AD"


@pytest.fixture(scope="module")
def local_dbs(tmp_path_factory):
    d = tmp_path_factory.mktemp("osm")
    return {
        name: LocalBackend(build_index(OSM / EXTRACTS[name], d / f"{name}.sqlite").path)
        for name in ("liechtenstein", "helsinki")
    }


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_postgis_backend_answers_like_the_embedded_one(services, local_dbs, name):
    from geolocate.tools.osm.postgis import PostGISBackend

    pg = PostGISBackend(services.dsn())
    q = Q(name)
    local, remote = local_dbs[QUERIES[name][0]].query(q), pg.query(q)
    key = lambda m: tuple(m.features[f.id].id for f in q.features)  # noqa: E731
    # A way with one node inside the extract is kept by the embedded index as a clipped point (issue
    # 25, Bellingcat parity); osm2pgsql cannot build a one-node line and drops it. Those are the only
    # matches PostGIS cannot have.
    one_node_way = lambda m: any(ft.id.startswith("w") and ft.kind == "point" for ft in m.features.values())  # noqa: E731
    local_matches = [m for m in local.matches if not one_node_way(m)]
    assert [key(m) for m in remote.matches] == [key(m) for m in local_matches] and local_matches
    for a, b in zip(local_matches, remote.matches):
        assert a.distances_m.keys() == b.distances_m.keys()
        for k in a.distances_m:
            assert abs(a.distances_m[k] - b.distances_m[k]) <= 0.5


def test_services_listen_on_loopback_only(services):
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    ours = [
        ln.split()[3]
        for ln in out.splitlines()
        if ln.split()[3].endswith((f":{services.pg_port}", f":{services.nominatim_port}"))
    ]
    assert ours and all(addr.startswith("127.0.0.1:") for addr in ours), ours


def test_up_is_idempotent_and_down_leaves_nothing_running(services):
    t = time.perf_counter()
    again = services.up([OSM / f for f in DEFAULT_SERVICE_EXTRACTS], log=lambda m: None)
    assert (
        again["nominatim_import_s"] is None
        and again["postgis_import_s"] is None
        and time.perf_counter() - t < 30
    )
    services.down()
    assert services.status()["postgres"] is False and services.status()["nominatim"] is False
    left = subprocess.run(
        ["pgrep", "-f", str(services.pgdata)], capture_output=True, text=True
    ).stdout.strip()
    assert left == ""
    assert not (services.root / "nominatim-serve.pid").exists()
    services.up(
        [OSM / f for f in DEFAULT_SERVICE_EXTRACTS], log=lambda m: None
    )  # back up for whoever started them
