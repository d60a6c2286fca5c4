"""The graph's typed state and the dependencies its nodes are given.

Per-turn fields are reset by the input of each turn; `subject` and `turns` persist
in the thread's checkpoint, which is what makes "and what about yesterday?" work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from agent.subject import Intent, Subject

__all__ = ["AgentDeps", "AgentState", "Outcome", "keep_last_turns", "turn_input"]

Outcome = Literal["pending", "analyst", "verified", "regenerated", "fallback_unverified",
                  "fallback_model_error", "action"]
MAX_TURNS = 10


def keep_last_turns(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reducer: the thread's memory keeps its last MAX_TURNS turns."""
    return (list(old or []) + list(new or []))[-MAX_TURNS:]


class AgentState(TypedDict, total=False):
    question: str
    ask: dict[str, Any]  # user_id, channel, thread_ts, anomaly_id, incident_id, is_admin, ...
    now_ns: int
    subject: Subject | None
    intent: Intent
    model_tools: list[str]  # read-only tools the model asked for (closed set)
    planned: list[dict[str, Any]]  # this round's calls: {"tool", "args"}
    seen_calls: list[str]
    calls: list[dict[str, Any]]  # every call made: tool, args, status, elapsed_s, evidence id
    evidence: list[dict[str, Any]]  # EvidenceItem dicts
    rounds: int
    steps: int
    draft: str
    attempts: int
    violation: str  # for logs and --json: may quote numbers
    violation_reason: str  # for the user-facing note: words only
    verification: dict[str, Any]
    outcome: Outcome
    answer: dict[str, Any]
    text: str
    model_calls: list[dict[str, Any]]  # prompt, completion tokens, seconds (for the bench)
    turns: Annotated[list[dict[str, Any]], keep_last_turns]


def turn_input(question: str, ask: Mapping[str, Any], now_ns: int) -> AgentState:
    """A new turn: the question, and every per-turn field reset."""
    return AgentState(question=question, ask=dict(ask), now_ns=now_ns, planned=[], seen_calls=[],
                      calls=[], evidence=[], rounds=0, steps=0, draft="", attempts=0,
                      violation="", violation_reason="", verification={}, outcome="pending",
                      answer={}, text="", model_tools=[], model_calls=[])


Progress = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class AgentDeps:
    """Everything the nodes use, passed in (the model is never created inside the graph)."""

    tools: Mapping[str, Any]  # name -> tools.base.Tool
    context: Callable[[Mapping[str, Any], int], Any]  # (ask, now_ns) -> tools.base.ToolContext
    known_keys: Callable[[], Awaitable[list[str]]]
    model: Any = None  # langchain_core BaseChatModel, or None for the evidence-only analyst
    tool_timeout_s: float = 10.0
    model_timeout_s: float = 60.0
    max_tokens: int = 384
    pack_tokens: int = 1500  # evidence pack budget; smaller for small local models (prompt time)
    max_steps: int = 24
