"""Tools that replay recorded outputs: the eval's stand-in for a running opsbot.

Each speaks the `tools.base.Tool` protocol with typed arguments, returns what was
recorded for it, and remembers every call (tests check which tools ran, and with
what). `record_feedback` and `recalculate` record their writes instead of doing them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tools.base import ToolContext, ToolResult, ToolStatus

__all__ = ["ReplayTool", "replay_tools"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnomaliesArgs(_Args):
    service: str | None = None
    key: str | None = None
    since: str = "24h"


class IncidentArgs(_Args):
    incident_id: int | str


class KeyAtArgs(_Args):
    key: str
    at: str | None = None


class SlowTracesArgs(_Args):
    key: str
    window: str = "30m"
    at: str | None = None


class TraceArgs(_Args):
    trace_id: str


class MetricsArgs(_Args):
    service: str
    at: str | None = None
    window: str = "30m"


class SimilarArgs(_Args):
    anomaly_id: int | str | None = None
    text: str | None = None


class ServiceArgs(_Args):
    service: str


class FeedbackArgs(_Args):
    anomaly_id: int | str
    verdict: str
    reason: str = ""


class RecalcArgs(_Args):
    scope: str = "all"


ARGS: dict[str, type[BaseModel]] = {
    "anomalies": AnomaliesArgs, "incident": IncidentArgs, "baseline": KeyAtArgs,
    "slow_traces": SlowTracesArgs, "trace_breakdown": TraceArgs, "metrics": MetricsArgs,
    "similar_incidents": SimilarArgs, "service_graph": ServiceArgs,
    "record_feedback": FeedbackArgs, "recalculate": RecalcArgs}


class ReplayTool:
    """One tool returning a recorded result (or `empty` when nothing was recorded)."""

    description: ClassVar[str] = "replays a recorded tool output"

    def __init__(self, name: str, recorded: dict[str, Any] | None, log: list[dict[str, Any]]
                 ) -> None:
        self.name = name  # type: ignore[misc]
        self.Args = ARGS[name]  # type: ignore[misc]
        self._recorded = recorded
        self._log = log

    async def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        self._log.append({"tool": self.name, "args": args.model_dump(), "user": ctx.user_id})
        if self.name == "record_feedback":
            return self._feedback(args, ctx)
        if self.name == "recalculate" and not ctx.is_admin:
            return ToolResult(self.name, ToolStatus.DENIED, error="recalculate is admin-only")
        r = self._recorded
        if r is None:
            return ToolResult(self.name, ToolStatus.EMPTY, summary="nothing recorded",
                              source="replay")
        return ToolResult(self.name, ToolStatus(r.get("status", "ok")), r.get("summary", ""),
                          dict(r.get("data") or {}), r.get("error"), r.get("source", "replay"))

    def _feedback(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        if ctx.user_id is None:
            return ToolResult(self.name, ToolStatus.DENIED,
                              error="feedback needs an identified Slack user")
        a = args.model_dump()
        return ToolResult(self.name, ToolStatus.OK,
                          f"recorded {a['verdict']} on anomaly {a['anomaly_id']} for user "
                          f"{ctx.user_id}", {"recorded": a}, source="replay")


def replay_tools(recorded: dict[str, dict[str, Any]], log: list[dict[str, Any]] | None = None
                 ) -> dict[str, ReplayTool]:
    """Every tool name, each replaying its recorded output."""
    calls = log if log is not None else []
    return {name: ReplayTool(name, recorded.get(name), calls) for name in ARGS}
