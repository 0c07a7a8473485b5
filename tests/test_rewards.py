"""Reward holes closed (issue 15): stalling never beats an honest answer, cues are grounded only in
what the tools read off the photo, format needs reasoning, non-applicable rewards do not shrink a
total, and GLOBE's own answer format parses and scores. Episodes are real (the Episode on a real
photo with scripted completions); the labels are the photo's own."""

from __future__ import annotations

import pytest

from geolocate.agent.actions import Answer, Commit, ToolCall, parse_completion, render_turn
from geolocate.agent.episode import Episode
from geolocate.agent.state import Budget
from geolocate.policy_training.rewards import (
    DEFAULT_WEIGHTS,
    REWARDS,
    claimed_cues,
    cue_grounding,
    format,
    globe_answer,
    renormalised,
    reward_functions,
)
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet, create
from tests.conftest import render_sign

# The plain photo: OSV-5M 1105240373293389, Maida Vale, Western Australia.
LABEL = {"lat": -31.954, "lon": 116.017, "continent": "OC", "country": "AU", "region": "Western Australia",
         "city": "Maida Vale"}  # fmt: skip


def _episode(photo, turns: list[str], tools=("ocr", "gazetteer", "geocode"), max_turns=12) -> dict:
    ep = Episode(load_image(photo), ToolSet([create(t) for t in tools]), budget=Budget(max_turns=max_turns))
    for t in turns:
        if ep.state.done:
            break
        ep.step(t)
    while not ep.state.done:  # the budget ends it: stall with tool calls
        ep.step(render_turn("Still thinking.", [ToolCall(name="gazetteer", arguments={"query": "x"})]))
    return ep.state.dump()


def _totals(trajs: list[dict]) -> list[float]:
    funcs, weights = reward_functions()
    n = len(trajs)
    cols = {k: [LABEL[k]] * n for k in LABEL}
    values = [f(["p"] * n, ["c"] * n, trajectory=trajs, **cols) for f in renormalised(funcs, weights)]
    return [sum(w * (v[i] or 0.0) for v, w in zip(values, weights, strict=True)) for i in range(n)]


def test_stalling_never_beats_an_honest_answer(plain_photo):
    """Both commit Australia. The honest episode answers 800 km off with low localizability; the
    staller never answers and the budget's fallback lands at the committed country's point."""
    commit = render_turn(
        "The road and the bush look Australian.",
        [Commit(level="continent", value="Oceania", confidence=0.6, evidence=["image"]),
         Commit(level="country", value="AU", confidence=0.6, evidence=["image"])],
    )  # fmt: skip
    honest = _episode(
        plain_photo,
        [commit, render_turn("A guess.", [Answer(lat=-34.9, lon=123.0, radius_km=500, localizability=0.1)])],
    )
    stall = _episode(plain_photo, [commit], max_turns=4)
    assert honest["answer"]["source"] == "answer" and stall["answer"]["source"] == "fallback"
    h, s = _totals([honest, stall])
    assert h > s


def test_cues_are_grounded_only_in_what_the_tools_read_off_the_photo(plain_photo, tmp_path):
    claim = 'The sign says "Kalamunda".'
    looked_up = _episode(
        plain_photo,
        [render_turn(claim, [ToolCall(name="gazetteer", arguments={"query": "Kalamunda"})]),
         render_turn("Answer.", [Answer(lat=-31.97, lon=116.06, radius_km=20, localizability=0.5)])],
    )  # fmt: skip
    sign = render_sign(plain_photo, ["KALAMUNDA"], tmp_path / "s.jpg")
    read = _episode(
        sign,
        [render_turn(claim, [ToolCall(name="ocr")]),
         render_turn("Answer.", [Answer(lat=-31.97, lon=116.06, radius_km=20, localizability=0.5)])],
    )  # fmt: skip
    assert cue_grounding(None, None, [looked_up, read]) == [0.0, 1.0]
    assert claimed_cues(["the driver's side, l'Église and the bus's roof"]) == []
    assert claimed_cues(["« Sortie » and “Ausfahrt”"]) == ["Sortie", "Ausfahrt"]


def test_format_needs_the_reasoning_block(plain_photo):
    bare = '<answer>{"lat": -31.9, "lon": 116.0, "radius_km": 50, "localizability": 0.3}</answer>'
    reasoned = "<think>Australian bush.</think>" + bare
    assert format(None, None, [_episode(plain_photo, [bare]), _episode(plain_photo, [reasoned])]) == [
        0.0,
        1.0,
    ]


def test_rewards_that_do_not_apply_do_not_shrink_the_total():
    """All applicable rewards at 1: the total is the full weight whether or not cue_grounding and
    entity_recall apply."""
    funcs = [lambda p, c, **k: [1.0, 1.0], lambda p, c, **k: [1.0, None], lambda p, c, **k: [None, None]]
    weights = [1.0, 0.25, 0.5]
    wrapped = renormalised(funcs, weights)
    vals = [f(["a", "b"], ["x", "y"]) for f in wrapped]
    totals = [sum(w * (v[i] or 0.0) for v, w in zip(vals, weights, strict=True)) for i in range(2)]
    assert totals == pytest.approx([1.75, 1.75])
    assert set(DEFAULT_WEIGHTS) == set(REWARDS)


def test_globe_literal_answer_parses_and_scores(plain_photo):
    """GLOBE-Qwen2.5VL-7B's literal output: <answer>country: ...\\ncity: ...</answer>."""
    text = (
        "<think>Eucalyptus, wide verge, red soil.</think>\n<answer>country: Australia\ncity: Perth</answer>"
    )
    parsed = parse_completion(text)
    assert parsed.errors == [] and parsed.actions[0].kind == "answer"
    traj = _episode(plain_photo, [text])
    assert traj["answer"]["source"] == "answer"
    assert globe_answer(None, None, [traj], country=["AU"], city=["Perth"]) == [1.0]
    assert globe_answer(None, None, [traj], country=["AU"], city=["Kalamunda"]) == [0.2]
    assert globe_answer(None, None, [traj], country=["NZ"], city=["Perth"]) == [0.0]
