"""Tools that replay recorded outputs: the eval's stand-in for a running opsbot.

Each speaks the `tools.base.Tool` protocol with typed arguments, returns what was
recorded for it, and remembers every call (tests check which tools ran, and with
what). `record_feedback` and `recalculate` record their writes instead of doing them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from tools.base import ToolContext, ToolResult, ToolStatus

__all__ = ["ReplayTool", "replay_tools"]


def _real_args() -> dict[str, type[BaseModel]]:
    """Each real tool's argument model: replayed calls are validated exactly as live ones."""
    from tools.detection.baseline import BaselineTool
    from tools.detection.recalculate import RecalculateTool
    from tools.metrics.tool import MetricsTool
    from tools.records.anomalies import AnomaliesTool
    from tools.records.feedback import RecordFeedbackTool
    from tools.records.incident import IncidentTool
    from tools.records.service_graph import ServiceGraphTool
    from tools.records.similar import SimilarIncidentsTool
    from tools.traces.breakdown import TraceBreakdownTool
    from tools.traces.slow_traces import SlowTracesTool

    classes = (SlowTracesTool, TraceBreakdownTool, BaselineTool, MetricsTool, AnomaliesTool,
               IncidentTool, ServiceGraphTool, SimilarIncidentsTool, RecordFeedbackTool,
               RecalculateTool)
    return {c.name: c.Args for c in classes}


ARGS: dict[str, type[BaseModel]] = _real_args()


class ReplayTool:
    """One tool returning a recorded result (or `empty` when nothing was recorded)."""

    description: ClassVar[str] = "replays a recorded tool output"

    def __init__(self, name: str, recorded: dict[str, Any] | None, log: list[dict[str, Any]]
                 ) -> None:
        self.name = name
        self.Args = ARGS[name]
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
