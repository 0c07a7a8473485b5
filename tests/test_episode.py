"""The Episode: legal and illegal transitions, consistency with GeoNames, budgets, tool failures."""

from __future__ import annotations

import time

import pytest

from geolocate.agent.actions import Answer, Backtrack, Commit, ToolCall, render_turn
from geolocate.agent.episode import Episode
from geolocate.agent.graph import run_episode
from geolocate.agent.stages import Level
from geolocate.agent.state import Budget
from geolocate.tools.base import Tool, ToolInput, ToolOutput
from geolocate.tools.image import load_image
from geolocate.tools.registry import ToolSet, create


class SlowInput(ToolInput):
    seconds: float = 5.0


class SlowOutput(ToolOutput):
    done: bool


class SlowTool(Tool):
    name = "slow"
    description = "sleeps"
    Input = SlowInput
    Output = SlowOutput
    timeout_s = 0.2

    def run(self, args, ctx):
        time.sleep(args.seconds)
        return SlowOutput(done=True)


class BrokenTool(Tool):
    name = "broken"
    description = "raises"
    Input = SlowInput
    Output = SlowOutput

    def run(self, args, ctx):
        raise RuntimeError("disk on fire")


@pytest.fixture(scope="module")
def image(plain_photo):
    return load_image(plain_photo)


def new_episode(image, tools=("geocode", "gazetteer"), **kw) -> Episode:
    return Episode(image, ToolSet([create(t) for t in tools]), **kw)


def turn(*actions, thought="t") -> str:
    return render_turn(thought, list(actions))


def kinds(obs):
    return [o.kind for o in obs]


def test_full_legal_chain_then_answer(image):
    ep = new_episode(image)
    obs = ep.step(turn(ToolCall(name="gazetteer", arguments={"query": "Kalamunda", "country": "AU"})))
    assert kinds(obs) == ["tool_result"] and "Kalamunda" in obs[0].text
    obs = ep.step(
        turn(
            Commit(level="continent", value="Oceania", confidence=0.9, evidence=["image"]),
            Commit(level="country", value="Australia", confidence=0.9, evidence=["e1"]),
            Commit(level="region", value="western australia", confidence=0.8, evidence=["e1"]),
            Commit(level="city", value="Kalamunda", confidence=0.7, evidence=["e1"]),
        )
    )
    assert kinds(obs) == ["committed"] * 4
    assert ep.state.chain[Level.COUNTRY].code == "AU"
    assert ep.state.chain[Level.REGION].value == "Western Australia"
    obs = ep.step(turn(Answer(lat=-31.98, lon=116.02, radius_km=5, localizability=0.7)))
    assert kinds(obs) == ["final"] and ep.done and ep.state.status == "answered"


def test_levels_must_come_in_order(image):
    ep = new_episode(image)
    obs = ep.step(turn(Commit(level="city", value="Perth", confidence=0.5, evidence=["image"])))
    assert kinds(obs) == ["illegal"]
    assert "commit 'continent' first" in obs[0].text
    assert ep.state.chain == {}


def test_country_must_lie_in_committed_continent(image):
    ep = new_episode(image)
    ep.step(turn(Commit(level="continent", value="Asia", confidence=0.5, evidence=["image"])))
    obs = ep.step(turn(Commit(level="country", value="FR", confidence=0.5, evidence=["image"])))
    assert kinds(obs) == ["illegal"]
    assert "France is in Europe, not in the committed continent Asia" in obs[0].text
    # Russia is accepted in either continent.
    obs = ep.step(turn(Commit(level="country", value="Russia", confidence=0.5, evidence=["image"])))
    assert kinds(obs) == ["committed"]


def test_region_and_city_must_lie_in_the_levels_above(image):
    ep = new_episode(image)
    ep.step(
        turn(
            Commit(level="continent", value="EU", confidence=0.5, evidence=["image"]),
            Commit(level="country", value="NO", confidence=0.5, evidence=["image"]),
        )
    )
    obs = ep.step(turn(Commit(level="region", value="Bavaria", confidence=0.5, evidence=["image"])))
    assert kinds(obs) == ["illegal"] and "no admin-1 region 'Bavaria' in Norway" in obs[0].text
    obs = ep.step(turn(Commit(level="region", value="Oslo", confidence=0.5, evidence=["image"])))
    assert kinds(obs) == ["committed"]
    obs = ep.step(turn(Commit(level="city", value="Bergen", confidence=0.5, evidence=["image"])))
    assert (
        kinds(obs) == ["illegal"]
        and "no place 'Bergen' in Oslo, NO" in obs[0].text
        and "Hordaland, NO" in obs[0].text
    )


def test_answer_must_be_near_the_committed_city(image):
    ep = new_episode(image)
    ep.step(
        turn(
            Commit(level="continent", value="Europe", confidence=0.5, evidence=["image"]),
            Commit(level="country", value="LI", confidence=0.5, evidence=["image"]),
            Commit(level="region", value="Vaduz", confidence=0.5, evidence=["image"]),
            Commit(level="city", value="Vaduz", confidence=0.5, evidence=["image"]),
        )
    )
    obs = ep.step(turn(Answer(lat=48.8566, lon=2.3522, radius_km=5, localizability=0.5)))
    assert kinds(obs) == ["illegal"] and "km from the committed city Vaduz" in obs[0].text
    assert not ep.done
    obs = ep.step(turn(Answer(lat=47.14, lon=9.52, radius_km=5, localizability=0.5)))
    assert kinds(obs) == ["final"]


def test_backtrack_removes_the_level_and_those_below(image):
    ep = new_episode(image)
    ep.step(
        turn(
            Commit(level="continent", value="Europe", confidence=0.5, evidence=["image"]),
            Commit(level="country", value="NO", confidence=0.5, evidence=["image"]),
        )
    )
    obs = ep.step(turn(Backtrack(level="region")))
    assert kinds(obs) == ["illegal"] and "not committed" in obs[0].text
    obs = ep.step(
        turn(
            Backtrack(level="continent"),
            Commit(level="continent", value="Asia", confidence=0.5, evidence=["image"]),
        )
    )
    assert kinds(obs) == ["backtracked", "committed"]
    assert list(ep.state.chain) == [Level.CONTINENT]


def test_evidence_ids_must_exist_and_be_successful(image):
    ep = new_episode(image)
    obs = ep.step(turn(Commit(level="continent", value="Europe", confidence=0.5, evidence=["e7"])))
    assert kinds(obs) == ["illegal"] and "unknown or failed evidence id(s) ['e7']" in obs[0].text


def test_unknown_tool_bad_arguments_failures_and_timeouts_are_observations(image):
    ep = Episode(image, ToolSet([create("gazetteer"), SlowTool(), BrokenTool()]))
    obs = ep.step(
        turn(
            ToolCall(name="teleport", arguments={}),
            ToolCall(name="gazetteer", arguments={"qurey": "Oslo"}),
            ToolCall(name="slow", arguments={"seconds": 3}),
            ToolCall(name="broken", arguments={}),
            ToolCall(name="gazetteer", arguments={"query": "Oslo"}),
        )
    )
    assert kinds(obs) == ["illegal", "tool_error", "tool_error", "tool_error", "tool_result"]
    assert "available tools: gazetteer, slow, broken" in obs[0].text
    assert "bad arguments for gazetteer" in obs[1].text and "query" in obs[1].text
    assert "timed out after 0.2 s" in obs[2].text
    assert "RuntimeError: disk on fire" in obs[3].text
    assert [e.ok for e in ep.state.evidence] == [False, False, False, True]
    assert not ep.done


def test_parse_errors_are_observations_and_valid_actions_still_run(image):
    ep = new_episode(image)
    obs = ep.step("<think>hmm</think><tool_call>{broken json</tool_call>")
    assert kinds(obs) == ["parse_error"] and "invalid JSON" in obs[0].text and "Expected:" in obs[0].text
    obs = ep.step(
        '<tool_call>{"name": "gazetteer", "arguments": {"query": '
        '"Oslo"}}</tool_call><tool_call>[1]</tool_call>'
    )
    assert kinds(obs) == ["parse_error", "tool_result"]


def test_turn_budget_ends_with_fallback_at_deepest_level(image):
    ep = new_episode(image, budget=Budget(max_turns=3, max_tool_calls=5))
    ep.step(
        turn(
            Commit(level="continent", value="Europe", confidence=0.6, evidence=["image"]),
            Commit(level="country", value="Norway", confidence=0.6, evidence=["image"]),
        )
    )
    ep.step("no idea")
    obs = ep.step("still no idea")
    assert kinds(obs) == ["parse_error", "budget"]
    assert ep.state.status == "budget_exhausted" and ep.done
    a = ep.state.answer
    assert a.source == "fallback" and a.radius_km == 750.0
    assert (a.lat, a.lon) == (ep.state.chain[Level.COUNTRY].lat, ep.state.chain[Level.COUNTRY].lon)
    assert kinds(ep.step(turn(ToolCall(name="gazetteer", arguments={"query": "x"})))) == ["illegal"]


def test_tool_call_budget(image):
    ep = new_episode(image, budget=Budget(max_turns=5, max_tool_calls=1))
    obs = ep.step(
        turn(
            ToolCall(name="gazetteer", arguments={"query": "Oslo"}),
            ToolCall(name="gazetteer", arguments={"query": "Bergen"}),
        )
    )
    assert kinds(obs) == ["tool_result", "over_budget"] and "tool-call budget of 1 is spent" in obs[1].text


def test_a_repeated_call_is_not_run_again_and_points_to_the_earlier_result(image):
    ep = new_episode(image)
    q = ToolCall(name="gazetteer", arguments={"query": "Vaduz"})
    ep.step(turn(q))
    obs = ep.step(turn(q))
    assert kinds(obs) == ["repeated_call"] and obs[0].evidence_id == "e1" and len(ep.state.evidence) == 1


def test_tool_outputs_are_typed_models_also_after_a_round_trip(image):
    from geolocate.agent.state import EpisodeState
    from geolocate.tools.gazetteer import GazetteerOutput

    ep = new_episode(image)
    ep.step(turn(ToolCall(name="gazetteer", arguments={"query": "Vaduz"})))
    out = ep.state.evidence[0].typed()
    assert isinstance(out, GazetteerOutput) and out.matches[0].country_code == "LI"
    again = EpisodeState.model_validate(ep.state.dump()).evidence[0].typed()
    assert isinstance(again, GazetteerOutput) and again == out


def test_hung_tool_calls_do_not_starve_later_ones(image):
    """Five calls that hang (each past its 0.2 s time-out) then a quick one: each hung call ends at its
    own time-out, and the quick call still runs at once (no shared pool left full of hung threads)."""
    ep = Episode(
        image, ToolSet([SlowTool(), create("gazetteer")]), budget=Budget(max_turns=10, max_tool_calls=10)
    )
    t0 = time.perf_counter()
    for i in range(5):
        obs = ep.step(turn(ToolCall(name="slow", arguments={"seconds": 30 + i})))
        assert kinds(obs) == ["tool_error"] and "timed out after 0.2 s" in obs[0].text
    assert time.perf_counter() - t0 < 5 * 0.2 + 2.0
    obs = ep.step(turn(ToolCall(name="gazetteer", arguments={"query": "Vaduz"})))
    assert kinds(obs) == ["tool_result"]


class Scripted:
    """A policy that replays given completions (as a model would write them)."""

    name = "scripted"

    def __init__(self, completions):
        self.completions = list(completions)

    def act(self, ep):
        return self.completions[len(ep.state.turns)] if len(ep.state.turns) < len(self.completions) else "..."


def test_graph_runs_scripted_policy_through_every_node(image):
    script = [
        turn(ToolCall(name="gazetteer", arguments={"query": "Hornepayne"})),
        turn(
            Commit(level="continent", value="North America", confidence=0.8, evidence=["e1"]),
            Commit(level="country", value="CA", confidence=0.8, evidence=["e1"]),
        ),
        "garbage",
        turn(Answer(lat=49.21, lon=-84.77, radius_km=10, localizability=0.8)),
    ]
    nodes = []
    state = run_episode(
        image, ToolSet([create("gazetteer")]), Scripted(script), on_step=lambda n, s: nodes.append(n)
    )
    assert state.status == "answered"
    assert [t.completion for t in state.turns] == script
    assert {"assess", "plan", "act", "commit", "answer"} <= set(nodes)
    assert state.turns[2].observations[0].kind == "parse_error"
    assert state.answer.lat == 49.21


def test_graph_ends_cleanly_when_policy_never_answers(image):
    state = run_episode(image, ToolSet([create("gazetteer")]), Scripted([]), budget=Budget(max_turns=4))
    assert state.status == "budget_exhausted" and len(state.turns) == 4
    assert state.answer is not None and state.answer.localizability == 0.0


def test_policy_exception_is_recorded_not_raised(image):
    class Crashing:
        name = "crashing"

        def act(self, ep):
            raise MemoryError("CUDA out of memory")

    state = run_episode(image, ToolSet([]), Crashing(), budget=Budget(max_turns=2))
    assert state.status == "budget_exhausted"
    assert any("CUDA out of memory" in w for w in state.warnings)
