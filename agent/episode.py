"""The Episode: the environment every caller steps (LangGraph agent, evaluation, GRPO rollouts).

One image, the Chain-of-Region state, the evidence log and the budgets. It accepts a policy's
completion text, parses it with the one action grammar (:mod:`geolocate.agent.actions`), checks each action
against the state machine (:mod:`geolocate.agent.stages`) and the geography
(:mod:`geolocate.agent.geography`), runs
tools, and returns observations. Illegal actions, malformed output, tool failures and timeouts are
observations, never exceptions.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import time
from typing import Any

from pydantic import ValidationError

from geolocate.agent.actions import (
    FORMAT_HELP,
    Action,
    Answer,
    Backtrack,
    Commit,
    ParsedTurn,
    ToolCall,
    parse_completion,
)
from geolocate.agent.geography import Geography, InconsistentCommitment, Resolved
from geolocate.agent.stages import (
    LEVELS,
    Level,
    backtrack_error,
    backtrack_removes,
    commit_error,
    next_level,
    parse_level,
)
from geolocate.agent.state import (
    Budget,
    Commitment,
    EpisodeState,
    Evidence,
    FinalAnswer,
    ImageInfo,
    Observation,
    Turn,
)
from geolocate.tools.base import ToolContext
from geolocate.tools.errors import ToolError, ToolTimeoutError, format_validation_error
from geolocate.tools.image import LoadedImage
from geolocate.tools.registry import ToolSet


def run_with_timeout(fn, args: tuple, timeout_s: float):
    """``fn(*args)`` in a daemon thread of its own; its result, or its exception re-raised.

    A call still running after ``timeout_s`` seconds raises ``concurrent.futures.TimeoutError`` and is
    abandoned: it holds no pool slot (later calls start at once) and, being a daemon thread, does not
    keep the process alive at exit. Python cannot kill a thread, so the clients the tools use carry
    their own time-outs too.
    """
    import threading

    future: cf.Future = cf.Future()

    def target():
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            future.set_exception(e)

    threading.Thread(target=target, name="geolocate-tool", daemon=True).start()
    return future.result(timeout=timeout_s)


FALLBACK_RADIUS_KM = {Level.CITY: 25.0, Level.REGION: 200.0, Level.COUNTRY: 750.0, Level.CONTINENT: 2500.0}
"""Radius of a budget-exhausted fallback answer placed at the deepest committed level (acc@ thresholds)."""


class Episode:
    """One geolocation episode over ``image`` with the enabled ``tools``.

    Args:
        image: the decoded photo (:func:`geolocate.tools.image.load_image`).
        tools: the tool mask of this run.
        budget: max policy turns and tool calls.
        geography: consistency checker (GeoNames by default).
        policy: name recorded in the trajectory.
        options: per-run options passed to tools (e.g. ``tool_timeout_s``).
        state: resume from a saved :class:`EpisodeState` (same image).
    """

    def __init__(
        self,
        image: LoadedImage,
        tools: ToolSet,
        budget: Budget | None = None,
        geography: Geography | None = None,
        policy: str = "",
        options: dict[str, Any] | None = None,
        state: EpisodeState | None = None,
    ):
        self.image = image
        self.tools = tools
        self.geography = geography or Geography()
        self.options = dict(options or {})
        self.ctx = ToolContext(image=image, options=self.options)
        if state is not None and state.image.sha256 != image.sha256:
            raise ValueError("saved episode state belongs to another image")
        self.state = state or EpisodeState(
            image=ImageInfo(
                path=image.path,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                format=image.format,
            ),
            tools=tools.names,
            policy=policy,
            budget=budget or Budget(),
        )
        self._t0 = time.perf_counter() - self.state.elapsed_s

    # -- turn protocol ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state.done

    def begin_turn(self, completion: str, policy_s: float = 0.0) -> ParsedTurn:
        """Record a completion and parse it. Parse problems become one ``parse_error`` observation."""
        parsed = parse_completion(completion)
        turn = Turn(
            index=len(self.state.turns),
            completion=completion,
            thought=parsed.thought,
            policy_s=round(policy_s, 4),
        )
        turn.actions = [a.model_dump() for a in parsed.actions]
        self.state.turns.append(turn)
        if parsed.errors:
            valid = f" The {len(parsed.actions)} valid action(s) were still run." if parsed.actions else ""
            self._observe(
                Observation(
                    kind="parse_error",
                    text="Could not parse your output: "
                    + "; ".join(parsed.errors)
                    + "."
                    + valid
                    + " "
                    + FORMAT_HELP,
                )
            )
        return parsed

    def end_turn(self) -> None:
        """Close the turn; when the turn budget is spent, end the episode with a fallback answer."""
        self.state.elapsed_s = round(time.perf_counter() - self._t0, 4)
        if not self.done and len(self.state.turns) >= self.state.budget.max_turns:
            self._finish_fallback(f"turn budget of {self.state.budget.max_turns} exhausted")
        if self.state.turns:
            self.state.turns[-1].chain_after = [
                {"level": lv.value, "value": c.value, "confidence": c.confidence}
                for lv, c in self.state.chain.items()
            ]

    def step(self, completion: str, policy_s: float = 0.0) -> list[Observation]:
        """One full turn: parse ``completion``, apply its actions in order, close the turn.

        Returns the observations of this turn (also stored in the state).
        """
        if self.done:
            return [Observation(kind="illegal", text=f"the episode is over ({self.state.status})")]
        parsed = self.begin_turn(completion, policy_s)
        for action in parsed.actions:
            if self.done:
                break
            self.apply(action)
        self.end_turn()
        return self.state.turns[-1].observations

    # -- actions ------------------------------------------------------------------------------------
    def apply(self, action: Action) -> Observation:
        """Check and carry out one action of the current turn; the observation is recorded and returned."""
        t = time.perf_counter()
        if self.done:
            obs = Observation(kind="illegal", text=f"the episode is over ({self.state.status})")
        elif isinstance(action, ToolCall):
            obs = self._tool(action)
        elif isinstance(action, Commit):
            obs = self._commit(action)
        elif isinstance(action, Backtrack):
            obs = self._backtrack(action)
        elif isinstance(action, Answer):
            obs = self._answer(action)
        else:  # pragma: no cover - the grammar produces only the four kinds
            obs = Observation(kind="illegal", text=f"unknown action {action!r}")
        if self.state.turns:
            self.state.turns[-1].env_s = round(self.state.turns[-1].env_s + time.perf_counter() - t, 4)
        return self._observe(obs)

    def _observe(self, obs: Observation) -> Observation:
        if not self.state.turns:
            self.state.turns.append(Turn(index=0, completion=""))
        self.state.turns[-1].observations.append(obs)
        return obs

    def _tool(self, call: ToolCall) -> Observation:
        b = self.state.budget
        if self.state.tool_calls >= b.max_tool_calls:
            return Observation(
                kind="over_budget",
                text=f"tool-call budget of {b.max_tool_calls} is spent: commit levels or answer now",
            )
        try:
            tool = self.tools.get(call.name)
        except ToolError as e:
            return Observation(kind="illegal", text=str(e))
        eid = f"e{len(self.state.evidence) + 1}"
        turn = len(self.state.turns) - 1
        t = time.perf_counter()
        try:
            args = tool.Input.model_validate(call.arguments)
        except ValidationError as e:
            msg = format_validation_error(e, root="arguments")
            return self._record_failure(
                eid,
                call,
                f"bad arguments for {call.name}: {msg}. Schema: "
                f"{tool.Input.model_json_schema().get('properties', {})}",
                t,
                turn,
            )
        arguments = args.model_dump(mode="json", exclude_defaults=True)
        same = next(
            (e for e in self.state.evidence if e.ok and e.tool == call.name and e.arguments == arguments),
            None,
        )
        if same is not None:
            return Observation(
                kind="repeated_call",
                text=f"{call.name} was already called with these arguments: its result is {same.id} "
                f"({same.summary})",
                evidence_id=same.id,
            )
        timeout = float(self.options.get("tool_timeout_s", tool.timeout_s))
        try:
            out = run_with_timeout(tool.run, (args, self.ctx), timeout)
        except cf.TimeoutError:
            err = ToolTimeoutError(
                f"{call.name} timed out after {timeout:g} s",
                hint="retry with a smaller request, or use other tools",
            )
            return self._record_failure(eid, call, str(err), t, turn)
        except ToolError as e:
            return self._record_failure(eid, call, f"{call.name} failed: {e}", t, turn)
        except Exception as e:  # noqa: BLE001 - a tool bug must not lose the session
            return self._record_failure(
                eid, call, f"{call.name} failed unexpectedly: {type(e).__name__}: {e}", t, turn
            )
        ev = Evidence(
            id=eid,
            tool=call.name,
            arguments=arguments,
            ok=True,
            output=out.model_dump(mode="json"),
            summary=out.summary(),
            elapsed_s=round(time.perf_counter() - t, 4),
            turn=turn,
        )
        ev._typed = out
        self.state.evidence.append(ev)
        for ln in getattr(out, "untrusted_lines", None) or []:
            msg = f"text in the photo reads like an instruction to the agent and was treated as data: {ln!r}"
            if msg not in self.state.warnings:
                self.state.warnings.append(msg)
        return Observation(kind="tool_result", text=f"[{eid}] {call.name}: {ev.summary}", evidence_id=eid)

    def artifact(self, eid: str):
        """The image a tool call produced (a zoom crop), rebuilt from its evidence; None if it made none.

        Rebuilt rather than stored, so an Episode resumed from its saved state shows the same images.
        """
        ev = self.state.evidence_by_id(eid)
        if ev is None or not ev.ok or ev.tool not in self.tools:
            return None
        return self.tools.get(ev.tool).artifact(ev.output, self.ctx)

    def _record_failure(self, eid: str, call: ToolCall, message: str, t: float, turn: int) -> Observation:
        self.state.evidence.append(
            Evidence(
                id=eid,
                tool=call.name,
                arguments=call.arguments,
                ok=False,
                error=message,
                summary=message,
                elapsed_s=round(time.perf_counter() - t, 4),
                turn=turn,
            )
        )
        return Observation(kind="tool_error", text=f"[{eid}] {message}", evidence_id=eid)

    def _commit(self, c: Commit) -> Observation:
        level = parse_level(c.level)
        if level is None:
            return Observation(
                kind="illegal",
                text=f"unknown level {c.level!r}; levels are {', '.join(lv.value for lv in LEVELS)}",
            )
        committed = self.state.committed_levels()
        if (err := commit_error(committed, level)) is not None:
            return Observation(kind="illegal", text=err)
        known = {e.id for e in self.state.evidence if e.ok}
        bad = [e for e in c.evidence if e != "image" and e not in known]
        if bad:
            return Observation(
                kind="illegal",
                text=f"unknown or failed evidence id(s) {bad}; cite successful tool results "
                f"({', '.join(sorted(known, key=lambda x: int(x[1:]))) or 'none yet'}) or 'image'",
            )
        try:
            r = self._resolve(level, c.value)
        except InconsistentCommitment as e:
            return Observation(kind="illegal", text=f"cannot commit {level.value} {c.value!r}: {e}")
        self.state.chain[level] = Commitment(
            level=level,
            value=r.value,
            raw=c.value,
            confidence=c.confidence,
            evidence=list(c.evidence),
            code=r.code,
            lat=r.lat,
            lon=r.lon,
            turn=len(self.state.turns) - 1,
        )
        nxt = next_level(self.state.committed_levels())
        return Observation(
            kind="committed",
            text=f"committed {level.value} = {r.value} (confidence {c.confidence:.2f}); next: "
            f"{nxt.value if nxt else 'answer'}",
        )

    def _resolve(self, level: Level, value: str) -> Resolved:
        g, chain = self.geography, self.state.chain
        if level is Level.CONTINENT:
            return g.continent(value)
        if level is Level.COUNTRY:
            return g.country(value, chain[Level.CONTINENT].code)
        if level is Level.REGION:
            return g.region(value, chain[Level.COUNTRY].code)
        if level is Level.CITY:
            region = chain.get(Level.REGION)
            return g.city(value, chain[Level.COUNTRY].code, region.value if region else None)
        m = re.fullmatch(r"\s*\(?\s*(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)\s*\)?\s*", value)
        if not m:
            raise InconsistentCommitment("coordinates must be 'lat, lon' in decimal degrees")
        lat, lon = float(m.group(1)), float(m.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InconsistentCommitment("latitude must be in [-90, 90] and longitude in [-180, 180]")
        if (err := g.coordinates_error(lat, lon, chain)) is not None:
            raise InconsistentCommitment(err)
        return Resolved(f"{lat:.6f}, {lon:.6f}", "", lat, lon)

    def _backtrack(self, b: Backtrack) -> Observation:
        level = parse_level(b.level)
        if level is None:
            return Observation(
                kind="illegal",
                text=f"unknown level {b.level!r}; levels are {', '.join(lv.value for lv in LEVELS)}",
            )
        committed = self.state.committed_levels()
        if (err := backtrack_error(committed, level)) is not None:
            return Observation(kind="illegal", text=err)
        removed = backtrack_removes(committed, level)
        for lv in removed:
            del self.state.chain[lv]
        return Observation(
            kind="backtracked", text=f"removed {', '.join(lv.value for lv in removed)}; next: {level.value}"
        )

    def _answer(self, a: Answer) -> Observation:
        coords = self.state.chain.get(Level.COORDINATES)
        if coords is not None:
            from geolocate.tools.geo import haversine_km

            if haversine_km(a.lat, a.lon, coords.lat, coords.lon) > max(a.radius_km, 1.0):
                return Observation(
                    kind="illegal",
                    text=f"the answer is outside its own radius of the committed coordinates {coords.value}",
                )
        elif (err := self.geography.coordinates_error(a.lat, a.lon, self.state.chain)) is not None:
            return Observation(kind="illegal", text=f"answer rejected: {err}")
        self.state.answer = FinalAnswer(
            lat=a.lat, lon=a.lon, radius_km=a.radius_km, localizability=a.localizability
        )
        self.state.status = "answered"
        return Observation(
            kind="final",
            text=f"answer recorded: ({a.lat:.5f}, {a.lon:.5f}) +- {a.radius_km:g} km, localizability "
            f"{a.localizability:.2f}",
        )

    def _finish_fallback(self, reason: str) -> None:
        chain = self.state.chain
        deepest = next((lv for lv in reversed(LEVELS) if lv in chain and chain[lv].lat is not None), None)
        if deepest is not None:
            c = chain[deepest]
            radius = FALLBACK_RADIUS_KM.get(deepest, 1.0)
            ans = FinalAnswer(
                lat=c.lat,
                lon=c.lon,
                radius_km=radius,
                localizability=min(0.5, c.confidence),
                source="fallback",
            )
        else:
            lat, lon = self.geography.db.prior_point
            ans = FinalAnswer(lat=lat, lon=lon, radius_km=5000.0, localizability=0.0, source="fallback")
        self.state.answer = ans
        self.state.status = "budget_exhausted"
        self.state.warnings.append(
            f"{reason}: answered from the deepest committed level ({deepest.value if deepest else 'none'})"
        )
        self._observe(Observation(kind="budget", text=f"{reason}; the episode ends with a fallback answer"))
