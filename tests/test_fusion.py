"""Clue fusion (geolocate.agent.fusion): the country posterior from text clues and the point of least
expected distance under it, on the real GeoNames and CLDR data."""

from __future__ import annotations

import numpy as np
import pytest

from geolocate.agent import fusion
from geolocate.tools.clues import extract_clues
from geolocate.tools.geo import haversine_km
from geolocate.tools.geocode import reverse_batch
from geolocate.tools.geonames import get_db, min_expected_distance_point


def _post(text: str, **kw) -> fusion.CountryPosterior:
    return fusion.fuse([("e2", c) for c in extract_clues(text).clues], **kw)


def test_with_no_clue_the_answer_is_the_prior_centre():
    post = fusion.fuse([])
    assert not post.informative
    assert sum(post.probs.values()) == pytest.approx(1.0)
    lat, lon, km = post.best_point()
    assert (lat, lon) == pytest.approx(get_db().prior_point)  # one idea, one answer
    assert 3000 < km < 8000  # the expected error of a guess with no evidence: continents away


def test_a_phone_number_outweighs_the_population_prior():
    post = _post("Tel. +47 22 12 34 56")
    cc, p = post.top()
    assert cc == "NO" and p > 0.95
    lat, lon, km = post.best_point(country="NO")
    assert reverse_batch([(lat, lon)])[0].country_code == "NO" and km < 500


def test_a_language_spreads_over_its_speakers():
    post = _post("Obrigado")
    assert post.top()[0] == "BR"
    assert post.probs["PT"] > post.probs.get("ES", 0.0)  # Portuguese, not its neighbours
    assert post.continents()["SA"] > 0.7
    steps = [s for s in post.steps if not s.clue.startswith("script_only")]  # Latin alone: a weak clue
    assert [s.clue for s in steps] == ["language pt"] and steps[0].evidence == "e2"
    assert "language pt (e2) -> BR" in post.explain()


def test_clues_multiply_letters_and_words_agree():
    one, both = (
        _post("Søndre").probs,
        fusion.fuse([("e2", c) for c in extract_clues("Søndre").clues if c.kind == "letters"]).probs,
    )
    assert one["NO"] > both["NO"]  # the word (Norwegian) sharpens the letter ø (Danish, Norwegian)
    assert both["NO"] + both["DK"] > 0.8


def test_constraints_remove_countries():
    post = _post("Obrigado", allowed=lambda cc: cc != "BR")
    assert "BR" not in post.probs and post.top()[0] in {"AO", "PT", "MZ"}


def test_a_point_within_a_continent_is_chosen_under_the_whole_posterior():
    post = _post("Sortie")  # French: France, Belgium, Canada, and many African countries
    lat, lon, _ = post.best_point(continent="EU")
    assert get_db().countries[reverse_batch([(lat, lon)])[0].country_code].continent == "EU"
    free = post.best_point()
    # within Europe, the point nearest to all French speakers: the south of France, not Paris
    assert haversine_km(lat, lon, free[0], free[1]) < 1000


def test_min_expected_distance_point_is_the_weighted_discrete_median():
    lat = np.array([0.0, 0.0, 0.0, 10.0])
    lon = np.array([0.0, 5.0, 10.0, 5.0])
    w = np.array([1.0, 0.5, 1.0, 0.0])
    got = min_expected_distance_point(lat, lon, w)
    costs = [float((haversine_km(la, lo, lat, lon) * w / w.sum()).sum()) for la, lo in zip(lat, lon)]
    assert got[2] == pytest.approx(min(costs)) and (got[0], got[1]) == (0.0, 5.0)
    with pytest.raises(ValueError):
        min_expected_distance_point(lat, lon, np.zeros(4))


def test_a_date_format_points_to_the_countries_that_write_it():
    us = _post("EXP 12/31/2026")  # month first
    de = _post("MHD 31.12.2026")  # day first with dots
    assert us.probs["US"] > 10 * fusion.prior()["US"] and de.probs.get("US", 0) < fusion.prior()["US"]
    assert [s.clue for s in us.steps if not s.clue.startswith("script_only")] == ["date 12/31/2026 (MDY)"]
    assert _post("2026-12-31").steps == []  # ISO 8601 is written everywhere
