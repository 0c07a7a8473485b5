"""A custom planner: look at the sky first, then plan as the built-in heuristic planner does."""

from __future__ import annotations

from geolocate.agent.actions import ToolCall, render_turn
from geolocate.agent.policies.heuristic import HeuristicPolicy


class SkyFirstPlanner:
    """Calls the ``sky`` tool once (when enabled), then hands every later turn to the heuristic planner.

    A policy is anything with a ``name`` and ``act(episode) -> completion text`` in the action grammar.
    """

    name = "sky_first"

    def __init__(self) -> None:
        self.inner = HeuristicPolicy()

    def act(self, episode) -> str:
        if "sky" in episode.tools and not any(e.tool == "sky" for e in episode.state.evidence):
            return render_turn("First, how open is the scene?", [ToolCall(name="sky")])
        return self.inner.act(episode)
