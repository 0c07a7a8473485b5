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
import contextlib
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
from geolocate.agent.analyst import (
    Approve,
    BacktrackTo,
    Conclude,
    Constrain,
    Constraint,
    Edit,
    Hint,
    ManualTool,
    Reject,
    utc_now,
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
    LedgerEntry,
    Observation,
    Turn,
    entry_hash,
)
from geolocate.tools.base import ToolContext, release_memory
from geolocate.tools.errors import ToolError, ToolTimeoutError, format_validation_error
from geolocate.tools.image import LoadedImage
from geolocate.tools.media import Case, case_warnings
from geolocate.tools.registry import ToolSet
from geolocate.tools.registry import create as create_tool


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


_LAT_LON = re.compile(r"\s*\(?\s*(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)\s*\)?\s*")
"""'lat, lon' in decimal degrees, optionally in parentheses."""

FALLBACK_RADIUS_KM = {Level.CITY: 25.0, Level.REGION: 200.0, Level.COUNTRY: 750.0, Level.CONTINENT: 2500.0}
"""Radius of a budget-exhausted fallback answer placed at the deepest committed level (acc@ thresholds)."""


def _unknown_level(raw: str) -> Observation:
    return Observation(
        kind="illegal", text=f"unknown level {raw!r}; levels are {', '.join(lv.value for lv in LEVELS)}"
    )


def resolve_level(geography: Geography, chain: dict, level: Level, value: str) -> Resolved:
    """``value`` committed at ``level`` below the levels of ``chain``, resolved by ``geography``
    (a continent, an ISO country, an admin-1 region of the committed country, a city; coordinates as
    'lat, lon' in decimal degrees).

    Raises:
        InconsistentCommitment: the value is unknown there, or coordinates are malformed or out of range.
    """
    g = geography
    if level is Level.CONTINENT:
        return g.continent(value)
    if level is Level.COUNTRY:
        return g.country(value, chain[Level.CONTINENT].code)
    if level is Level.REGION:
        return g.region(value, chain[Level.COUNTRY].code)
    if level is Level.CITY:
        region = chain.get(Level.REGION)
        return g.city(value, chain[Level.COUNTRY].code, region.value if region else None)
    lat, lon = parse_lat_lon(value)
    if (err := g.coordinates_error(lat, lon, chain)) is not None:
        raise InconsistentCommitment(err)
    return Resolved(f"{lat:.6f}, {lon:.6f}", "", lat, lon)


def parse_lat_lon(value: str) -> tuple[float, float]:
    """(lat, lon) from 'lat, lon' in decimal degrees.

    >>> parse_lat_lon("59.91, 10.75")
    (59.91, 10.75)

    Raises:
        InconsistentCommitment: not two numbers, or out of range.
    """
    m = _LAT_LON.fullmatch(value or "")
    if not m:
        raise InconsistentCommitment("coordinates must be 'lat, lon' in decimal degrees")
    lat, lon = float(m.group(1)), float(m.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InconsistentCommitment("latitude must be in [-90, 90] and longitude in [-180, 180]")
    return lat, lon


def move_error(
    state: EpisodeState, pending: dict | None, move, geography: Geography | None = None
) -> str | None:
    """Why the analyst's ``move`` cannot be applied to ``state`` (paused with ``pending``), or None.

    Checked before anything is recorded, so a move that fails changes nothing: a backtrack to a level
    that is not committed, an edit whose value the geography cannot resolve at the pending level (or
    an answer edit that is not 'lat, lon'), a tool that does not exist or arguments its schema
    refuses. Blank hints and reasons and non-finite numbers are refused by the move models
    themselves (:mod:`geolocate.agent.analyst`).
    """
    from geolocate.tools.errors import UnknownToolError

    if isinstance(move, BacktrackTo):
        level = parse_level(move.level)
        if level is None:
            return f"unknown level {move.level!r}; levels are {', '.join(lv.value for lv in LEVELS)}"
        return backtrack_error(state.committed_levels(), level)
    if isinstance(move, ManualTool):
        try:
            tool = create_tool(move.name)
        except (UnknownToolError, ToolError) as e:
            return str(e)
        try:
            tool.Input.model_validate(move.arguments)
        except ValidationError as e:
            return f"bad arguments for {move.name}: {format_validation_error(e, root='arguments')}"
        return None
    if isinstance(move, Edit) and pending and pending.get("kind") == "review":
        level = pending.get("level")
        if level == "answer":
            try:
                parse_lat_lon(move.value)
            except InconsistentCommitment as e:
                return f"cannot set the answer to {move.value!r}: {e}"
            return None
        lv = parse_level(str(level))
        if lv is None:
            return None
        try:
            resolve_level(geography or Geography(), state.chain, lv, move.value)
        except (InconsistentCommitment, KeyError) as e:
            return f"cannot set {lv.value} = {move.value!r}: {e}"
    return None


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
        image: LoadedImage | Case,
        tools: ToolSet,
        budget: Budget | None = None,
        geography: Geography | None = None,
        policy: str = "",
        options: dict[str, Any] | None = None,
        state: EpisodeState | None = None,
    ):
        case = image if isinstance(image, Case) else None
        if case is not None:
            image = case.primary
        self.case = case
        self.image = image
        self.tools = tools
        self.geography = geography or Geography()
        self.options = dict(options or {})
        self.ctx = ToolContext(image=image, options=self.options, case=case)
        media = case.describe() if case is not None and not case.single_photo else []
        if state is not None and state.image.sha256 != image.sha256:
            raise ValueError("saved episode state belongs to another image")
        if state is not None and [m["sha256"] for m in state.media] != [m["sha256"] for m in media]:
            raise ValueError("saved episode state belongs to another case of media")
        self.state = state or EpisodeState(
            image=ImageInfo(
                path=image.path,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                format=image.format,
            ),
            media=media,
            tools=tools.names,
            policy=policy,
            budget=budget or Budget(),
            warnings=[f"image: {n}" for n in image.notes] + (case_warnings(case) if case else []),
        )
        self._t0 = time.perf_counter() - self.state.elapsed_s

    # -- turn protocol ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state.done

    def begin_turn(
        self, completion: str, policy_s: float = 0.0, usage: dict[str, int] | None = None
    ) -> ParsedTurn:
        """Record a completion and parse it. Parse problems become one ``parse_error`` observation."""
        parsed = parse_completion(completion)
        turn = Turn(
            index=len(self.state.turns),
            completion=completion,
            thought=parsed.thought,
            policy_s=round(policy_s, 4),
            usage=usage,
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

    def _ledger(self, kind: str, ref: str, content: dict[str, Any] | None = None) -> None:
        """Append an entry to the evidence hash chain (:class:`~geolocate.agent.state.LedgerEntry`):
        ``kind`` evidence (the entry ``ref`` of the evidence log), commit, backtrack, answer or reopen."""
        seq, prev = len(self.state.ledger), self.state.chain_head()
        body = self.state.evidence_by_id(ref).model_dump(mode="json") if kind == "evidence" else content or {}
        self.state.ledger.append(
            LedgerEntry(
                seq=seq,
                kind=kind,
                ref=ref,
                content=None if kind == "evidence" else body,
                prev=prev,
                sha256=entry_hash(seq, kind, ref, body, prev),
            )
        )

    def _add_evidence(self, ev: Evidence) -> Evidence:
        """Append ``ev`` to the evidence log and to the hash chain."""
        self.state.evidence.append(ev)
        self._ledger("evidence", ev.id)
        return ev

    def _observe(self, obs: Observation) -> Observation:
        if not self.state.turns:
            self.state.turns.append(Turn(index=0, completion=""))
        self.state.turns[-1].observations.append(obs)
        return obs

    def _tool(self, call: ToolCall, author: str | None = None) -> Observation:
        """Run a tool call. ``author`` set: an analyst runs it by hand (any registered tool, outside
        the planner's tool mask and budget), recorded with the author and the UTC time."""
        b = self.state.budget
        if author is None and self.state.tool_calls >= b.max_tool_calls:
            return Observation(
                kind="over_budget",
                text=f"tool-call budget of {b.max_tool_calls} is spent: commit levels or answer now",
            )
        try:
            tool = (
                self.tools.get(call.name)
                if author is None or call.name in self.tools
                else create_tool(call.name)
            )
        except ToolError as e:
            return Observation(kind="illegal", text=str(e))
        eid = self.state.next_evidence_id()
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
        if tool.per_image and self.case is not None:  # the time-out is per image the tool looks at
            with contextlib.suppress(ToolError):
                timeout *= max(1, len(self.ctx.images(getattr(args, "media", None))))
        try:
            try:
                out = run_with_timeout(tool.run, (args, self.ctx), timeout)
            finally:
                release_memory()  # the call's thread arena: its freed pages go back to the system
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
            author=author,
            utc=utc_now() if author else None,
            arguments=arguments,
            ok=True,
            output=out.model_dump(mode="json"),
            summary=out.summary(),
            elapsed_s=round(time.perf_counter() - t, 4),
            turn=turn,
        )
        ev._typed = out
        self._add_evidence(ev)
        for ln in getattr(out, "untrusted_lines", None) or []:
            msg = f"text in the photo reads like an instruction to the agent and was treated as data: {ln!r}"
            if msg not in self.state.warnings:
                self.state.warnings.append(msg)
        if call.name == "exif":
            for w in getattr(out, "warnings", None) or []:
                if f"metadata: {w}" not in self.state.warnings:
                    self.state.warnings.append(f"metadata: {w}")
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
        self._add_evidence(
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
            return _unknown_level(c.level)
        committed = self.state.committed_levels()
        if (err := commit_error(committed, level)) is not None:
            return Observation(kind="illegal", text=err)
        known = {e.id for e in self.state.evidence if e.ok}
        bad = [e for e in c.evidence if e != "image" and e not in known]
        if bad:
            return Observation(
                kind="illegal",
                text=f"unknown or failed evidence id(s) {bad}; cite successful tool results "
                f"({', '.join(sorted(known, key=lambda x: (x[0], int(x[1:])))) or 'none yet'}) or 'image'",
            )
        try:
            r = self._resolve(level, c.value)
        except InconsistentCommitment as e:
            return Observation(kind="illegal", text=f"cannot commit {level.value} {c.value!r}: {e}")
        if (why := self._constraint_error(level.value, c.value, r)) is not None:
            return Observation(kind="illegal", text=f"cannot commit {level.value} {c.value!r}: {why}")
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
        self._ledger("commit", level.value, self.state.chain[level].model_dump(mode="json"))
        nxt = next_level(self.state.committed_levels())
        return Observation(
            kind="committed",
            text=f"committed {level.value} = {r.value} (confidence {c.confidence:.2f}); next: "
            f"{nxt.value if nxt else 'answer'}",
        )

    def _resolve(self, level: Level, value: str) -> Resolved:
        return resolve_level(self.geography, self.state.chain, level, value)

    def _backtrack(self, b: Backtrack) -> Observation:
        level = parse_level(b.level)
        if level is None:
            return _unknown_level(b.level)
        committed = self.state.committed_levels()
        if (err := backtrack_error(committed, level)) is not None:
            return Observation(kind="illegal", text=err)
        removed = backtrack_removes(committed, level)
        for lv in removed:
            del self.state.chain[lv]
        self._ledger("backtrack", level.value, {"removed": [lv.value for lv in removed], "reason": b.reason})
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
        if why := self._constraint_error(
            "answer", f"{a.lat:.5f}, {a.lon:.5f}", Resolved("", "", a.lat, a.lon)
        ):
            return Observation(kind="illegal", text=f"answer rejected: {why}")
        self.state.answer = FinalAnswer(
            lat=a.lat, lon=a.lon, radius_km=a.radius_km, localizability=a.localizability
        )
        self.state.status = "answered"
        self._ledger("answer", "answer", self.state.answer.model_dump(mode="json"))
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
        self._ledger("answer", "answer", ans.model_dump(mode="json"))
        self.state.warnings.append(
            f"{reason}: answered from the deepest committed level ({deepest.value if deepest else 'none'})"
        )
        self._observe(Observation(kind="budget", text=f"{reason}; the episode ends with a fallback answer"))

    # -- the analyst: constraints, review decisions, moves --------------------------------------------
    def _constraint_error(self, level: str, value: str, r: Resolved) -> str | None:
        """Why the constraints (the analyst's, and the regions of the sun and time-zone tools) rule out
        committing ``level`` = ``value`` (resolved as ``r``), or None. ``level`` is a Chain-of-Region
        level or ``answer``."""
        constraints = self.state.constraints()
        if not constraints:
            return None
        country = r.code if level == Level.COUNTRY.value else None
        if level in ("coordinates", "answer") and any(
            c.kind in ("country", "not_country") for c in constraints
        ):
            from geolocate.tools.geocode import reverse_batch

            country = reverse_batch([(r.lat, r.lon)])[0].country_code or None
        for c in constraints:
            if c.rules_out(level, value, r.code) or c.rules_out(level, r.value, r.code):
                return f"the analyst ruled it out ({c.describe()})"
            who = (
                "evidence"
                if c.kind == "region" and c.source and c.source.startswith("the ")
                else "the analyst"
            )
            if country is not None and not c.allows_country(country):
                return f"{who} says {c.describe()}"
            point_level = level in ("city", "coordinates", "answer")
            if point_level and r.lat is not None and not c.allows_point(r.lat, r.lon):
                return f"outside a constraint of {who}: {c.describe()}"
        return None

    def _analyst_evidence(self, kind: str, author: str, output: dict, summary: str) -> Evidence:
        ev = Evidence(
            id=self.state.next_evidence_id(analyst=True),
            tool=kind,
            arguments={},
            ok=True,
            output=output,
            summary=summary,
            elapsed_s=0.0,
            turn=max(0, len(self.state.turns) - 1),
            author=author,
            utc=utc_now(),
        )
        return self._add_evidence(ev)

    def reopen(self, reason: str) -> None:
        """Let the planner go on after an answer (the analyst added something): the answer is set
        aside and, when the turn budget is spent, four more turns are granted."""
        if not self.done:
            return
        self.state.status = "running"
        self.state.answer = None
        self._ledger("reopen", "answer", {"reason": reason})
        if len(self.state.turns) >= self.state.budget.max_turns:
            self.state.budget = self.state.budget.model_copy(update={"max_turns": len(self.state.turns) + 4})
        self._observe(Observation(kind="analyst", text=f"the analyst reopened the investigation: {reason}"))

    def review(self, action: Commit | Answer, decision: Approve | Reject | Edit) -> Commit | Answer | None:
        """Apply the analyst's decision on a pending commitment or answer; returns the action to carry
        out (the approved or edited one), or None when it was rejected. The decision is evidence (an
        ``a`` id): an edit is cited by the edited commitment, a rejection becomes a constraint, so the
        rejected value is never accepted again."""
        level = "answer" if isinstance(action, Answer) else action.level
        value = f"{action.lat:.5f}, {action.lon:.5f}" if isinstance(action, Answer) else action.value
        out: dict[str, Any] = {"decision": decision.kind, "level": level, "proposed": value}
        if isinstance(decision, Approve):
            ev = self._analyst_evidence("review", decision.author, out, f"approved {level} = {value}")
            self._observe(
                Observation(kind="analyst", text=f"[{ev.id}] the analyst approved {level} = {value}")
            )
            return action
        if isinstance(decision, Reject):
            code = None
            if level != "answer":
                try:
                    code = self._resolve(parse_level(level), value).code or None
                except (InconsistentCommitment, KeyError):
                    code = None
            c = Constraint(kind="not_value", level=level, value=code or value)
            out |= {"reason": decision.reason, "constraint": c.model_dump(mode="json")}
            ev = self._analyst_evidence(
                "review", decision.author, out, f"rejected {level} = {value}: {decision.reason}"
            )
            self._observe(
                Observation(
                    kind="analyst",
                    text=f"[{ev.id}] the analyst rejected {level} = {value}: {decision.reason}. "
                    "Do not propose it again.",
                )
            )
            return None
        out |= {"value": decision.value}
        if level == Level.COUNTRY.value:
            out["constraint"] = Constraint(kind="country", country=decision.value).model_dump(mode="json")
        ev = self._analyst_evidence(
            "review", decision.author, out, f"edited {level}: {value} -> {decision.value}"
        )
        self._observe(
            Observation(
                kind="analyst", text=f"[{ev.id}] the analyst set {level} = {decision.value} (was {value})"
            )
        )
        if isinstance(action, Answer):
            m = _LAT_LON.fullmatch(decision.value)
            if not m:
                return None
            return action.model_copy(update={"lat": float(m.group(1)), "lon": float(m.group(2))})
        return action.model_copy(
            update={"value": decision.value, "confidence": decision.confidence, "evidence": [ev.id]}
        )

    def apply_move(self, move: Hint | Constrain | ManualTool | BacktrackTo | Conclude) -> Observation:
        """Apply an analyst move that is not a review decision; the observation is what the planner
        reads next (analyst notes are labelled as such, never mixed with text read from the photo).

        A hint, a constraint or a backtrack on a finished episode reopens it; a new constraint that a
        committed level breaks backtracks that level (and those below it).
        """
        if isinstance(move, Hint):
            ev = self._analyst_evidence("hint", move.author, {"text": move.text}, move.text[:200])
            self.reopen(f"hint {ev.id}")
            return self._observe(
                Observation(kind="analyst", text=f"[{ev.id}] analyst note: {move.text}", evidence_id=ev.id)
            )
        if isinstance(move, Constrain):
            c = move.constraint
            ev = self._analyst_evidence(
                "constraint", move.author, {"constraint": c.model_dump(mode="json")}, c.describe()
            )
            self.reopen(f"constraint {ev.id}")
            obs = self._observe(
                Observation(
                    kind="analyst", text=f"[{ev.id}] analyst constraint: {c.describe()}", evidence_id=ev.id
                )
            )
            self._enforce_constraints()
            return obs
        if isinstance(move, ManualTool):
            return self._observe(
                self._tool(ToolCall(name=move.name, arguments=move.arguments), author=move.author)
            )
        if isinstance(move, BacktrackTo):
            if (why := move_error(self.state, None, move, self.geography)) is not None:
                return self._observe(Observation(kind="illegal", text=why))
            self._analyst_evidence(
                "review",
                move.author,
                {"decision": "backtrack", "level": move.level},
                f"backtrack to {move.level}",
            )
            self.reopen(f"backtrack to {move.level}")
            return self._observe(self._backtrack(Backtrack(level=move.level, reason="analyst")))
        ev = self._analyst_evidence("conclusion", move.author, {"note": move.note}, move.note or "concluded")
        return self._observe(
            Observation(kind="analyst", text=f"[{ev.id}] the analyst concluded the investigation")
        )

    def _enforce_constraints(self) -> None:
        """Backtrack the highest committed level that the constraints now rule out (and all below)."""
        for lv in self.state.committed_levels():
            c = self.state.chain[lv]
            if (
                self._constraint_error(lv.value, c.raw, Resolved(c.value, c.code or "", c.lat, c.lon))
                is not None
            ):
                self._observe(self._backtrack(Backtrack(level=lv.value, reason="analyst constraint")))
                return
