"""LangGraph wiring of the agent: nodes assess -> plan -> (act | commit | answer) -> plan ... -> END.

The graph only wires; the Episode (:mod:`geolocate.agent.episode`) checks and carries out actions, the policy
writes turns. Both, with the tool set, are injected through the run context. Node signatures say
where each node may go (``Command[Literal[...]]``); loop budgets live in the episode state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from geolocate.agent.actions import Action, Answer, Backtrack, Commit, ToolCall
from geolocate.agent.episode import Episode
from geolocate.agent.geography import Geography
from geolocate.agent.policies.base import Policy
from geolocate.agent.state import Budget, EpisodeState, Observation
from geolocate.tools.image import LoadedImage
from geolocate.tools.registry import ToolSet

MIN_SIDE_PX = 64
"""Photos smaller than this on a side are flagged as barely usable."""


class AgentState(TypedDict):
    episode: EpisodeState
    pending: list[Action]


@dataclass
class AgentContext:
    """Run-scoped resources injected into every node."""

    image: LoadedImage
    tools: ToolSet
    policy: Policy
    geography: Geography = field(default_factory=Geography)
    options: dict[str, Any] = field(default_factory=dict)


Node = Literal["plan", "act", "commit", "answer", "__end__"]


def _episode(state: AgentState, ctx: AgentContext) -> Episode:
    return Episode(ctx.image, ctx.tools, geography=ctx.geography, options=ctx.options, state=state["episode"])


def _route(ep: Episode, pending: list[Action]) -> Node:
    """Node for the next pending action; at the end of a turn, close it and plan again (or stop)."""
    if not ep.done and pending:
        a = pending[0]
        if isinstance(a, ToolCall):
            return "act"
        if isinstance(a, (Commit, Backtrack)):
            return "commit"
        return "answer"
    ep.end_turn()
    return END if ep.done else "plan"


def assess(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["plan"]]:
    """Check that the photo is usable at all and note what limits it."""
    ep = _episode(state, runtime.context)
    img = runtime.context.image
    if min(img.width, img.height) < MIN_SIDE_PX:
        ep.state.warnings.append(f"the photo is only {img.width}x{img.height} px: little can be read from it")
    return Command(goto="plan", update={"episode": ep.state, "pending": []})


def plan(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Node]:
    """Ask the policy for the next turn and parse it."""
    ctx = runtime.context
    ep = _episode(state, ctx)
    if ep.done:
        return Command(goto=END, update={"episode": ep.state, "pending": []})
    t = time.perf_counter()
    try:
        completion = ctx.policy.act(ep)
    except Exception as e:  # noqa: BLE001 - a policy failure is recorded, the session survives
        ep.state.warnings.append(f"policy {ctx.policy.name} failed: {type(e).__name__}: {e}")
        completion = ""
    parsed = ep.begin_turn(completion, policy_s=time.perf_counter() - t)
    pending = list(parsed.actions)
    return Command(goto=_route(ep, pending), update={"episode": ep.state, "pending": pending})


def _consume(state: AgentState, ctx: AgentContext, kinds: tuple[type, ...]) -> Command[Node]:
    ep = _episode(state, ctx)
    pending = list(state["pending"])
    while pending and isinstance(pending[0], kinds) and not ep.done:
        ep.apply(pending.pop(0))
    if ep.done:
        pending = []
    return Command(goto=_route(ep, pending), update={"episode": ep.state, "pending": pending})


def act(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Node]:
    """Run the turn's consecutive tool calls."""
    return _consume(state, runtime.context, (ToolCall,))


def commit(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Node]:
    """Apply the turn's consecutive commit and backtrack actions to the Chain of Region."""
    return _consume(state, runtime.context, (Commit, Backtrack))


def answer(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Node]:
    """Check and record the final answer (a rejected answer sends the policy back to plan)."""
    return _consume(state, runtime.context, (Answer,))


def build_graph():
    """Compile the agent graph (no checkpointer; sessions add one)."""
    g = StateGraph(AgentState, context_schema=AgentContext)
    g.add_node("assess", assess)
    g.add_node("plan", plan)
    g.add_node("act", act)
    g.add_node("commit", commit)
    g.add_node("answer", answer)
    g.add_edge(START, "assess")
    return g.compile()


_GRAPH = None


def get_graph():
    global _GRAPH
    if _GRAPH is None:
        _GRAPH = build_graph()
    return _GRAPH


def stream_episode(
    image: LoadedImage,
    tools: ToolSet,
    policy: Policy,
    budget: Budget | None = None,
    geography: Geography | None = None,
    options: dict[str, Any] | None = None,
) -> Iterator[tuple[str, EpisodeState]]:
    """Run one episode through the graph, yielding (node name, episode state) after every node."""
    geography = geography or Geography()
    ep = Episode(image, tools, budget=budget, geography=geography, policy=policy.name, options=options)
    ctx = AgentContext(
        image=image, tools=tools, policy=policy, geography=geography, options=dict(options or {})
    )
    limit = 6 * ep.state.budget.max_turns + 10
    for update in get_graph().stream(
        {"episode": ep.state, "pending": []},
        context=ctx,
        stream_mode="updates",
        config={"recursion_limit": limit},
    ):
        for node, value in update.items():
            yield node, value["episode"]


def run_episode(
    image: LoadedImage,
    tools: ToolSet,
    policy: Policy,
    budget: Budget | None = None,
    geography: Geography | None = None,
    options: dict[str, Any] | None = None,
    on_step: Callable[[str, EpisodeState], None] | None = None,
) -> EpisodeState:
    """Run one episode to the end and return its final state (the trajectory)."""
    state = None
    for node, state in stream_episode(image, tools, policy, budget, geography, options):
        if on_step is not None:
            on_step(node, state)
    assert state is not None
    return state


__all__ = ["AgentContext", "AgentState", "build_graph", "run_episode", "stream_episode", "Observation"]
