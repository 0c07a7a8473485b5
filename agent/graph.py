"""LangGraph wiring of the agent: assess -> plan -> (act | commit | answer | review) -> ... -> END.

The graph only wires; the Episode (:mod:`geolocate.agent.episode`) checks and carries out actions,
the policy writes turns. The policy, tools, photo and geography are injected through the run context
(:class:`AgentContext`); everything else is graph state, so a checkpointer can save and resume it.

Routing is one pure function of the state (:func:`route`), used after every node: the next node
follows from the episode's status and the head of the turn's pending actions. That is what lets an
investigator session (:mod:`geolocate.agent.session`) fork from any checkpoint with
``update_state``. Each node carries out one action, so every tool call is its own checkpoint.

Two nodes exist for sessions and are never reached in a one-shot run: ``review`` pauses with
``interrupt()`` before a commitment or answer at a level the analyst asked to review, and ``idle``
pauses after the answer, where the analyst may add a hint or a constraint (the planner then goes
on) or conclude.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from geolocate.agent.actions import Action, Answer, Backtrack, Commit, ToolCall
from geolocate.agent.analyst import DECISIONS, MOVE, Conclude
from geolocate.agent.episode import Episode
from geolocate.agent.geography import Geography
from geolocate.agent.policies.base import Policy
from geolocate.agent.stages import parse_level
from geolocate.agent.state import Budget, EpisodeState, Observation
from geolocate.tools.geonames import get_db
from geolocate.tools.image import LoadedImage
from geolocate.tools.media import Case
from geolocate.tools.registry import ToolSet

MIN_SIDE_PX = 64
"""Photos smaller than this on a side are flagged as barely usable."""


class AgentState(TypedDict):
    """Graph state. ``episode`` and ``pending`` (the rest of the current turn's actions) are always
    set; the session keys are absent in one-shot runs."""

    episode: EpisodeState
    pending: list[Action]
    review: NotRequired[list[str]]
    """Levels (and ``answer``) that wait for the analyst's approval; empty: run through."""
    approved: NotRequired[bool]
    """The head of ``pending`` was approved or edited by the analyst."""
    pause_at_end: NotRequired[bool]
    """Pause after the answer for the analyst (sessions) instead of ending."""
    concluded: NotRequired[bool]
    session: NotRequired[Any]
    """The session's settings (:class:`geolocate.agent.session.SessionInfo`), kept in its checkpoints."""


@dataclass
class AgentContext:
    """Run-scoped resources injected into every node (not checkpointed)."""

    image: LoadedImage | Case
    tools: ToolSet
    policy: Policy
    geography: Geography = field(default_factory=Geography)
    options: dict[str, Any] = field(default_factory=dict)


Node = Literal["plan", "act", "commit", "answer", "review", "idle", "__end__"]


def _episode(state: AgentState, ctx: AgentContext) -> Episode:
    return Episode(ctx.image, ctx.tools, geography=ctx.geography, options=ctx.options, state=state["episode"])


def needs_review(action: Action, review: list[str]) -> bool:
    """Whether ``action`` waits for the analyst: a commit at a reviewed level, or a reviewed answer.

    >>> needs_review(Answer(lat=0, lon=0, radius_km=1, localizability=0.5), ["answer"])
    True
    """
    if isinstance(action, Answer):
        return "answer" in review
    if isinstance(action, Commit):
        level = parse_level(action.level)
        return level is not None and level.value in review
    return False


def route(state: AgentState) -> Node:
    """The next node, from the state alone."""
    ep = state["episode"]
    if ep.done:
        return "idle" if state.get("pause_at_end") and not state.get("concluded") else END
    pending = state.get("pending") or []
    if not pending:
        return "plan"
    head = pending[0]
    if needs_review(head, state.get("review") or []) and not state.get("approved"):
        return "review"
    if isinstance(head, ToolCall):
        return "act"
    if isinstance(head, (Commit, Backtrack)):
        return "commit"
    return "answer"


def assess(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Check that the photo is usable at all and note what limits it."""
    ep = _episode(state, runtime.context)
    img = ep.image
    if min(img.width, img.height) < MIN_SIDE_PX:
        ep.state.warnings.append(f"the photo is only {img.width}x{img.height} px: little can be read from it")
    return {"episode": ep.state, "pending": []}


def plan(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Ask the policy for the next turn and parse it."""
    ctx = runtime.context
    ep = _episode(state, ctx)
    t = time.perf_counter()
    try:
        completion = ctx.policy.act(ep)
    except Exception as e:  # noqa: BLE001 - a policy failure is recorded, the session survives
        ep.state.warnings.append(f"policy {ctx.policy.name} failed: {type(e).__name__}: {e}")
        completion = ""
    usage = getattr(ctx.policy, "last_usage", None) if completion else None
    if usage and usage.get("finish_reason") == "length":
        ep.state.warnings.append(
            f"turn {len(ep.state.turns)} was cut at the model's token limit (finish_reason length)"
        )
    parsed = ep.begin_turn(completion, policy_s=time.perf_counter() - t, usage=usage)
    pending = list(parsed.actions)
    if not pending:
        ep.end_turn()
    return {"episode": ep.state, "pending": pending, "approved": False}


def _step(state: AgentState, ctx: AgentContext, action: Action | None = None) -> dict:
    """Carry out the head of the pending actions (or ``action`` in its place); close the turn when
    none are left or the episode ended."""
    ep = _episode(state, ctx)
    pending = list(state["pending"])
    head = pending.pop(0)
    if not ep.done:
        ep.apply(action or head)
    if ep.done or not pending:
        pending = []
        ep.end_turn()
    return {"episode": ep.state, "pending": pending, "approved": False}


def act(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Run the turn's next tool call."""
    return _step(state, runtime.context)


def commit(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Apply the turn's next commit or backtrack to the Chain of Region."""
    return _step(state, runtime.context)


def answer(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Check and record the final answer (a rejected answer sends the policy back to plan)."""
    return _step(state, runtime.context)


def review_request(state: AgentState) -> dict:
    """What the analyst is asked at a review point (the ``interrupt`` value): the pending
    commitment or answer, and the evidence it cites."""
    ep, head = state["episode"], state["pending"][0]
    cited = head.evidence if isinstance(head, Commit) else []
    evidence = [e.model_dump(mode="json") for e in ep.evidence if e.id in cited]
    level = "answer" if isinstance(head, Answer) else head.level
    return {"kind": "review", "level": level, "action": head.model_dump(mode="json"), "evidence": evidence}


def review(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Pause for the analyst's decision on the pending commitment or answer.

    Approve or edit: carry it out (as edited). Reject: drop the rest of the turn, so the planner
    proposes again without the rejected value. Any other move (hint, constraint, manual tool) is new
    evidence: it is applied, the pending proposal is dropped and the planner proposes again with it
    (pausing at the next review point).
    """
    move = MOVE.validate_python(interrupt(review_request(state)))
    ctx = runtime.context
    if move.kind not in DECISIONS:  # new evidence: the planner proposes again with it
        ep = _episode(state, ctx)
        ep.apply_move(move)
        ep.end_turn()
        return {"episode": ep.state, "pending": [], "approved": False}
    ep = _episode(state, ctx)
    pending = list(state["pending"])
    decided = ep.review(pending[0], move)
    if decided is None:
        ep.end_turn()
        return {"episode": ep.state, "pending": [], "approved": False}
    return {"episode": ep.state, "pending": [decided, *pending[1:]], "approved": True}


def idle(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """After the answer: pause for the analyst. A hint, constraint or backtrack reopens the
    investigation (the planner goes on); a manual tool call adds evidence; conclude ends it."""
    ep0 = state["episode"]
    move = MOVE.validate_python(interrupt({"kind": "done", "status": ep0.status}))
    ep = _episode(state, runtime.context)
    if move.kind in DECISIONS:
        ep._observe(Observation(kind="analyst", text=f"nothing is pending review: {move.kind} ignored"))
        return {"episode": ep.state}
    ep.apply_move(move)
    return {"episode": ep.state, "pending": [], "concluded": isinstance(move, Conclude)}


_NODES = {
    "assess": assess,
    "plan": plan,
    "act": act,
    "commit": commit,
    "answer": answer,
    "review": review,
    "idle": idle,
}


def build_graph(checkpointer=None):
    """Compile the agent graph; sessions pass a LangGraph checkpointer (SQLite or Postgres)."""
    g = StateGraph(AgentState, context_schema=AgentContext)
    for name, fn in _NODES.items():
        g.add_node(name, fn)
        g.add_conditional_edges(name, route, [n for n in _NODES if n != "assess"] + [END])
    g.add_edge(START, "assess")
    return g.compile(checkpointer=checkpointer)


_GRAPH = None


def get_graph():
    """The compiled graph without a checkpointer (one-shot runs, evaluation), built once."""
    global _GRAPH
    if _GRAPH is None:
        _GRAPH = build_graph()
    return _GRAPH


def recursion_limit(budget: Budget) -> int:
    """Graph steps an episode may take: a plan and up to (tool calls + 6) actions per turn, with room
    for review pauses."""
    return (budget.max_turns + 4) * (budget.max_tool_calls + 12) + 50


def prepare_indexes() -> None:
    """Open the GeoNames, word-frequency and Hunspell indexes (built on the very first run, under locks shared
    by all processes) before an episode runs, so that their build never counts against a tool's
    time-out: every entry point (``locate``, sessions new and resumed, the workbench) calls it."""
    from geolocate.tools.words import ensure_hunspell_index, ensure_index

    get_db()
    ensure_index()
    ensure_hunspell_index()


def stream_episode(
    image: LoadedImage | Case,
    tools: ToolSet,
    policy: Policy,
    budget: Budget | None = None,
    geography: Geography | None = None,
    options: dict[str, Any] | None = None,
) -> Iterator[tuple[str, EpisodeState]]:
    """Run one episode through the graph, yielding (node name, episode state) after every node.

    The GeoNames and word-frequency indexes are opened (built on the very first run, under locks
    shared by all processes) before the episode starts, so their build never counts against a tool's
    time-out."""
    prepare_indexes()
    geography = geography or Geography()
    ep = Episode(image, tools, budget=budget, geography=geography, policy=policy.name, options=options)
    ctx = AgentContext(
        image=image, tools=tools, policy=policy, geography=geography, options=dict(options or {})
    )
    config = {"recursion_limit": recursion_limit(ep.state.budget)}
    inputs = {"episode": ep.state, "pending": []}
    for update in get_graph().stream(inputs, context=ctx, stream_mode="updates", config=config):
        for node, value in update.items():
            if value and "episode" in value:
                yield node, value["episode"]


def run_episode(
    image: LoadedImage | Case,
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


__all__ = ["AgentContext", "AgentState", "build_graph", "route", "run_episode", "stream_episode"]
