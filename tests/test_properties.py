"""Property tests (hypothesis): whatever text or numbers reach the command line's argument parsers,
the OSM feature grammar and an investigator session's moves, only the documented errors come out,
and a move that fails changes nothing.

Photo: OSV-5M sample (Mapillary, CC-BY-SA 4.0), with an OSLO sign painted on it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.conftest import OSV, render_sign

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
NUMBERISH = st.one_of(TEXT, FLOATS.map(repr), st.integers().map(str), st.just("nan"), st.just("-inf"))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


# -- the command line's argument parsers --------------------------------------------------------------
@FAST
@given(NUMBERISH)
def test_number_parsers_raise_only_argparse_errors(text):
    from geolocate.agent.cli_common import finite_float, nonnegative_int, positive_float, positive_int
    from geolocate.agent.web.cli import port

    for parse in (positive_float, finite_float, positive_int, nonnegative_int, port):
        try:
            v = parse(text)
        except argparse.ArgumentTypeError as e:
            assert str(e) and "\n" not in str(e)
            continue
        assert v == v and abs(v) != float("inf")  # never NaN or infinite


@FAST
@given(st.lists(NUMBERISH, max_size=5).map(",".join), st.integers(1, 4))
def test_coordinate_lists_are_finite_or_an_error(text, n):
    from geolocate.agent.cli_common import numbers

    try:
        xs = numbers(text, n, "--bbox")
    except ValueError as e:
        assert "--bbox" in str(e)
        return
    assert len(xs) == n and all(x == x and abs(x) != float("inf") for x in xs)


@FAST
@given(TEXT)
def test_server_addresses_tool_masks_and_review_levels_raise_only_value_errors(text):
    from geolocate.agent.analyst import parse_review_levels
    from geolocate.agent.options import check_url
    from geolocate.tools.geocode import check_host_port
    from geolocate.tools.registry import ToolSet

    for f in (check_host_port, check_url, parse_review_levels, ToolSet.parse_spec):
        try:
            f(text)
        except ValueError as e:  # UnknownToolError and UnknownNameError are ValueErrors
            assert str(e)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    flags=st.lists(
        st.sampled_from(["--max-turns", "--max-tool-calls", "--tool-timeout", "--tools", "--nominatim",
                         "--overpass", "--policy", "--json", "--bogus", "x"]),
        max_size=4,
    ),
    values=st.lists(NUMBERISH, max_size=4),
)  # fmt: skip
def test_locate_flags_end_in_a_clean_exit_code(flags, values, capsys):
    """Random flags and values for ``locate`` on a missing photo: exit 2 with one-line errors only (one
    per missing photo or bad argument), never a traceback (nothing runs: the photos are missing or the
    arguments are refused first)."""
    from geolocate.agent.cli import main

    capsys.readouterr()  # the fixture is shared by every example: start from nothing
    argv = ["locate", "/nonexistent/photo.jpg"]
    for f, v in zip(flags, values + [""] * len(flags)):
        argv += [f, v] if f.startswith("--") else [v]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "internal error" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error:") for ln in lines)  # one line per bad photo or argument


# -- the OSM feature grammar ----------------------------------------------------------------------------
GRAMMAR = st.text(st.sampled_from(list('amenity=caf|,~!<>"\\ ()^$.*+?name:lanes012_-')), max_size=50)


@FAST
@given(st.one_of(GRAMMAR, TEXT))
def test_the_osm_short_form_raises_only_value_errors(text):
    from geolocate.tools.osm.query import feature_from_text, parse_tag_spec

    for f in (parse_tag_spec, lambda t: feature_from_text("a", t)):
        try:
            f(text)
        except ValueError as e:  # pydantic's ValidationError is one
            assert str(e)


JSONISH = st.recursive(
    st.none() | st.booleans() | FLOATS | st.integers() | TEXT,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=20,
)


@FAST
@given(st.fixed_dictionaries({}, optional={"features": JSONISH, "scope": JSONISH, "relations": JSONISH,
                                           "limit": JSONISH, "offset": JSONISH}))  # fmt: skip
def test_feature_queries_from_any_json_raise_only_validation_errors(doc):
    from geolocate.tools.osm.query import FeatureQuery

    try:
        FeatureQuery.model_validate(doc)
    except ValidationError:
        pass


# -- session moves ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paused(tmp_path_factory):
    """A session paused at the review of its country (an OSLO sign), in a store to copy per example."""
    from geolocate.agent.session import SessionStore

    d = tmp_path_factory.mktemp("props")
    photo = render_sign(OSV / "images" / "1105240373293389.jpg", ["OSLO"], d / "oslo.jpg")
    with SessionStore(str(d / "s.sqlite")) as s:
        sid = s.create(photo, review=["country"]).info.id
    return d / "s.sqlite", sid


def _dump(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return repr(con.execute("SELECT * FROM checkpoints ORDER BY checkpoint_id").fetchall()) + repr(
            con.execute("SELECT * FROM writes ORDER BY checkpoint_id, task_id, idx").fetchall()
        )
    finally:
        con.close()


MOVES = st.one_of(
    st.fixed_dictionaries({"kind": st.just("edit"), "value": TEXT, "confidence": FLOATS}),
    st.fixed_dictionaries({"kind": st.just("reject"), "reason": TEXT}),
    st.fixed_dictionaries({"kind": st.just("hint"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "kind": st.just("backtrack"),
            "level": st.one_of(
                TEXT, st.sampled_from(["continent", "country", "region", "city", "coordinates", "answer"])
            ),
        }
    ),  # fmt: skip
    st.fixed_dictionaries(
        {
            "kind": st.just("tool"),
            "name": st.one_of(TEXT, st.sampled_from(["gazetteer", "geocode", "sun", "zoom"])),
            "arguments": st.dictionaries(
                st.sampled_from(["query", "lat", "lon", "op", "x"]), st.one_of(FLOATS, TEXT), max_size=3
            ),
        }
    ),  # fmt: skip
    st.fixed_dictionaries(
        {
            "kind": st.just("constrain"),
            "constraint": st.fixed_dictionaries(
                {"kind": st.sampled_from(["circle", "bbox", "country", "not_country", "region", "nonsense"])},
                optional={
                    "lat": FLOATS,
                    "lon": FLOATS,
                    "radius_km": FLOATS,
                    "country": TEXT,
                    "bbox": st.lists(FLOATS, min_size=0, max_size=5),
                },
            ),
        }
    ),  # fmt: skip
    JSONISH.filter(lambda x: not isinstance(x, dict) or "kind" not in x),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(MOVES)
def test_a_session_move_is_applied_or_refused_without_a_trace(paused, tmp_path_factory, move):
    """Any move with any strings and floats: applied, or refused with SessionError or a validation
    error, never another exception; a refused move leaves every checkpoint as it was."""
    from geolocate.agent.session import SessionError, SessionStore

    src, sid = paused
    d = tmp_path_factory.mktemp("move")
    path = d / "s.sqlite"
    shutil.copy(src, path)
    before = _dump(path)
    with SessionStore(str(path)) as s:
        try:
            s.check_move(sid, move)  # the web page's check: the same verdict as move() without running
        except (SessionError, ValidationError, ValueError):
            refused = True
        else:
            refused = False
        if refused:
            with pytest.raises((SessionError, ValidationError, ValueError)):
                s.move(sid, move)
            assert _dump(path) == before, f"a refused move changed the store: {json.dumps(move, default=str)}"
        elif move.get("kind") in ("hint", "constrain", "backtrack", "reject") and not isinstance(move, list):
            s.move(sid, move)  # accepted moves run (a sample: the others are checked above)
