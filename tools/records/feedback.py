"""`record_feedback`: a verdict on an anomaly, on behalf of the Slack user who asked, only."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from bot.store.records import Verdict
from tools._format import name, quoted
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus

__all__ = ["RecordFeedbackTool"]


class RecordFeedbackArgs(ToolArgs):
    anomaly_id: int = Field(ge=1, le=10**12, description="the anomaly's number, e.g. 12")
    verdict: Verdict = Field(description="false_positive (not a real problem) or confirmed")
    reason: str = Field("", max_length=300, description="the user's own words, e.g. "
                                                        "'planned load test'")


class RecordFeedbackTool:
    name: ClassVar[str] = "record_feedback"
    description: ClassVar[str] = (
        "Record the asking user's verdict on an anomaly (false_positive or confirmed) with "
        "their reason. Only when the user said so; it is written under their Slack id.")
    Args: ClassVar[type[BaseModel]] = RecordFeedbackArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        if not ctx.user_id:
            return ToolResult(self.name, ToolStatus.DENIED, error=(
                "feedback is recorded only for an identified Slack user; ask in Slack, or use "
                "the feedback buttons on the alert"))
        anomaly = await ctx.store.get_anomaly(args.anomaly_id)
        if anomaly is None:
            return ToolResult(self.name, ToolStatus.ERROR, source="store", error=(
                f"no anomaly #{args.anomaly_id}; find its number with the anomalies tool"))
        before = (await ctx.store.feedback_for([anomaly.id]))[anomaly.id]
        previous = [f.verdict for f in before if f.user_id == ctx.user_id]
        reason = " ".join(args.reason.split())
        record = await ctx.store.add_feedback(anomaly.id, args.verdict, ctx.user_id, "agent",
                                              ctx.now_ns, reason)
        unchanged = bool(previous) and previous[-1] == args.verdict
        data = {"feedback_id": record.id, "anomaly_id": anomaly.id, "key": anomaly.key,
                "verdict": record.verdict, "user_id": record.user_id, "reason": record.reason,
                "replaced": None if unchanged or not previous else previous[-1],
                "unchanged": unchanged}
        text = (f"Recorded verdict {record.verdict} on anomaly #{anomaly.id} "
                f"({name(anomaly.key)}) for user {quoted(record.user_id, 40)}")
        if record.reason:
            text += f", reason {quoted(record.reason, 120)}"
        if unchanged:
            text += "; the same verdict was already recorded, nothing changed"
        elif previous:
            text += f"; it replaces that user's earlier verdict {previous[-1]}"
        return ToolResult(self.name, ToolStatus.OK, text + ".", data, source="store")
