"""Episode state: pydantic models for the chain, the evidence log, turns, budgets and the answer.

The whole :class:`EpisodeState` is the trajectory written by ``geolocate locate --json`` (schema
:data:`TRAJECTORY_SCHEMA`): every turn's raw model output, parsed actions, observations and timings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from geolocate.agent.stages import LEVELS, Level

TRAJECTORY_SCHEMA = "geolocate.trajectory/1"


class ImageInfo(BaseModel):
    path: str
    sha256: str
    width: int
    height: int
    format: str


class Budget(BaseModel):
    """Loop budgets: policy turns and tool calls per episode."""

    max_turns: int = Field(12, ge=1)
    max_tool_calls: int = Field(16, ge=0)


class Commitment(BaseModel):
    """A committed Chain-of-Region level.

    ``value`` is the canonical name (GeoNames), ``raw`` what the policy wrote; ``code`` is the
    continent code, ISO 3166-1 alpha-2, admin-1 name or GeoNames id; (lat, lon) a representative
    point in WGS84 degrees when known.
    """

    level: Level
    value: str
    raw: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str]
    code: str | None = None
    lat: float | None = None
    lon: float | None = None
    turn: int


ANALYST_KINDS = ("hint", "constraint", "review", "conclusion")
REGION_TOOLS = ("sun", "timezone")
"""Tools whose result is a feasible region (GeoJSON ``region``) that later commits must respect."""
"""``Evidence.tool`` of an analyst's move (ids ``a1``, ``a2``...); tools' evidence has ids ``e1``..."""


class Evidence(BaseModel):
    """One tool call and its result, or one analyst move; ``id`` is what commitments cite.

    Tool calls have ids ``e1``, ``e2``...; analyst moves (``tool`` in :data:`ANALYST_KINDS`) have
    ``a1``, ``a2``... ``author`` and ``utc`` (ISO 8601) are set for what an analyst did, including a
    tool run by hand (then the id is an ``e`` id, as if the planner had called it); they are left out
    of the trajectory when unset, so a one-shot run's trajectory is unchanged.
    """

    id: str
    tool: str
    arguments: dict[str, Any]
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    summary: str
    elapsed_s: float
    turn: int
    author: str | None = Field(None, exclude_if=lambda v: v is None)
    utc: str | None = Field(None, exclude_if=lambda v: v is None)

    @property
    def is_analyst_move(self) -> bool:
        return self.tool in ANALYST_KINDS

    _typed: Any = PrivateAttr(None)

    def typed(self):
        """The result as the tool's own output model (``OcrOutput``, ``GazetteerOutput``...); None
        for a failed call or a tool that is not installed here."""
        if not self.ok or self.output is None:
            return None
        if self._typed is None:
            from geolocate.tools.errors import ToolError
            from geolocate.tools.registry import output_model

            try:
                self._typed = output_model(self.tool).model_validate(self.output)
            except ToolError:
                return None
        return self._typed


ObservationKind = Literal[
    "analyst",
    "over_budget",
    "repeated_call",
    "tool_result",
    "tool_error",
    "committed",
    "backtracked",
    "illegal",
    "parse_error",
    "budget",
    "final",
]


class Observation(BaseModel):
    """What the environment answers to an action; ``text`` is shown to the policy."""

    kind: ObservationKind
    text: str
    evidence_id: str | None = None


class Turn(BaseModel):
    """One policy turn: its raw completion, the parsed actions and the observations they produced."""

    index: int
    completion: str
    thought: str | None = None
    actions: list[dict[str, Any]] = []
    observations: list[Observation] = []
    policy_s: float = 0.0
    env_s: float = 0.0
    usage: dict[str, int | str] | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="model tokens of the turn (prompt_tokens, completion_tokens) and the server's "
        "finish_reason, when the planner has them",
    )
    chain_after: list[dict[str, Any]] = Field(
        default_factory=list, description="the chain at the end of the turn: level, value, confidence"
    )


GENESIS = "0" * 64
"""The ``prev`` of the first ledger entry."""


class LedgerEntry(BaseModel):
    """One link of the evidence hash chain: an evidence entry (tool call with arguments and output,
    analyst move with author and UTC time), a commitment, a backtrack, an answer or a reopening.

    ``sha256`` is the SHA-256 of the canonical JSON (RFC 8785 JCS) of ``{"seq", "kind", "ref",
    "content", "prev"}`` (:func:`entry_hash`); ``prev`` is the previous entry's ``sha256``
    (:data:`GENESIS` for the first), so changing any entry changes every hash after it. ``content``
    is kept here for commitments, backtracks and answers; for evidence it is the evidence entry
    itself (``EpisodeState.evidence``), never copied.
    """

    seq: int = Field(ge=0)
    kind: Literal["evidence", "commit", "backtrack", "answer", "reopen"]
    ref: str
    content: dict[str, Any] | None = Field(None, exclude_if=lambda v: v is None)
    prev: str
    sha256: str


def entry_hash(seq: int, kind: str, ref: str, content: dict[str, Any], prev: str) -> str:
    """The SHA-256 (hex) of an entry's canonical JSON (RFC 8785, ``rfc8785``).

    >>> entry_hash(0, "answer", "answer", {"lat": 1.5}, GENESIS)[:16]
    '0681bab2dfe71ee5'
    """
    import hashlib

    import rfc8785

    doc = {"seq": seq, "kind": kind, "ref": ref, "content": content, "prev": prev}
    return hashlib.sha256(rfc8785.dumps(doc)).hexdigest()


class FinalAnswer(BaseModel):
    """The episode's prediction. ``source``: 'answer' (the policy answered) or 'fallback' (budget ran
    out; the deepest committed level's point is used)."""

    lat: float = Field(description="WGS84 degrees")
    lon: float = Field(description="WGS84 degrees")
    radius_km: float = Field(gt=0)
    localizability: float = Field(ge=0.0, le=1.0, description="how locatable the photo is, 0..1 (GLOBE)")
    source: Literal["answer", "fallback"] = "answer"


class EpisodeState(BaseModel):
    """Everything about one episode; serialisable, so sessions can be checkpointed and resumed."""

    schema_: str = Field(TRAJECTORY_SCHEMA, alias="schema")
    image: ImageInfo
    media: list[dict[str, Any]] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="a case of several media (photos, videos): each medium's id, path, kind, SHA-256 and, "
        "for a video, its keyframes (id, timestamp_s, sha256 of the pixels) and container metadata; "
        "``image`` is then the case's first image",
    )
    tools: list[str]
    policy: str = ""
    budget: Budget = Budget()
    chain: dict[Level, Commitment] = {}
    evidence: list[Evidence] = []
    turns: list[Turn] = []
    answer: FinalAnswer | None = None
    status: Literal["running", "answered", "budget_exhausted"] = "running"
    warnings: list[str] = []
    elapsed_s: float = 0.0
    ledger: list[LedgerEntry] = Field(
        default_factory=list,
        description="the evidence hash chain: evidence entries, commitments, backtracks, answers, in order",
    )

    model_config = {"populate_by_name": True}

    def ledger_content(self, entry: LedgerEntry) -> dict[str, Any]:
        """What ``entry`` hashes: its own content, or (evidence) the evidence entry it names.

        Raises:
            KeyError: the evidence entry is not in this state.
        """
        if entry.kind != "evidence":
            return entry.content or {}
        ev = self.evidence_by_id(entry.ref)
        if ev is None:
            raise KeyError(entry.ref)
        return ev.model_dump(mode="json")

    def chain_head(self) -> str:
        """The ``sha256`` of the last ledger entry (:data:`GENESIS` when empty)."""
        return self.ledger[-1].sha256 if self.ledger else GENESIS

    @property
    def tool_calls(self) -> int:
        """Tool calls the planner made (what the tool-call budget counts; analyst moves do not)."""
        return sum(1 for e in self.evidence if e.author is None)

    def next_evidence_id(self, analyst: bool = False) -> str:
        """``e<n>`` for the next tool result, ``a<n>`` for the next analyst move."""
        prefix = "a" if analyst else "e"
        return f"{prefix}{sum(1 for e in self.evidence if e.id[0] == prefix) + 1}"

    def constraints(self):
        """The constraints in force (:class:`~geolocate.agent.analyst.Constraint`), in order: the
        analyst's, and the feasible regions of the tools in :data:`REGION_TOOLS` (the sun's band, the
        time zones of the clock's offset) that ran without error."""
        from geolocate.agent.analyst import Constraint

        out = []
        for e in self.evidence:
            if e.tool in ("constraint", "review") and e.output and e.output.get("constraint"):
                out.append(Constraint.model_validate(e.output["constraint"]))
            elif (
                e.tool in REGION_TOOLS and e.ok and e.output and e.output.get("region", {}).get("coordinates")
            ):
                out.append(
                    Constraint(
                        kind="region", geometry=e.output["region"], source=f"the {e.tool} tool ({e.id})"
                    )
                )
        return out

    @property
    def done(self) -> bool:
        return self.status != "running"

    def committed_levels(self) -> list[Level]:
        return [lv for lv in LEVELS if lv in self.chain]

    def evidence_by_id(self, eid: str) -> Evidence | None:
        return next((e for e in self.evidence if e.id == eid), None)

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict of the trajectory (schema :data:`TRAJECTORY_SCHEMA`)."""
        return self.model_dump(mode="json", by_alias=True)
