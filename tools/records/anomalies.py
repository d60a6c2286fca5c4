"""`anomalies`: recent anomalies, optionally of one service, newest first."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from tools._args import ServiceArg, Window, window_ns
from tools._format import fmt_time, name
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.records._describe import anomaly_facts, anomaly_line

__all__ = ["AnomaliesTool"]


class AnomaliesArgs(ToolArgs):
    service: ServiceArg | None = Field(None, description="only this service's anomalies")
    since: Window = Field("24h", description="anomalies open or ended within this long ago")
    state: Literal["any", "open", "resolved"] = "any"
    limit: int = Field(5, ge=1, le=10)


class AnomaliesTool:
    name: ClassVar[str] = "anomalies"
    description: ClassVar[str] = (
        "Recent anomalies (newest first), optionally of one service: key, severity, state, "
        "observed latency vs baseline p99, score, incident id.")
    Args: ClassVar[type[BaseModel]] = AnomaliesArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        since = ctx.now_ns - window_ns(args.since)
        state = None if args.state == "any" else args.state
        found = await ctx.store.list_anomalies(since_ns=since, until_ns=ctx.now_ns,
                                               state=state, service=args.service)
        scope = f" of {name(args.service)}" if args.service else ""
        where = f"since {fmt_time(since)}{scope}"
        data = {"since": fmt_time(since), "service": args.service, "total": len(found),
                "anomalies": [anomaly_facts(a) for a in found[: args.limit]]}
        if not found:
            return ToolResult(self.name, ToolStatus.EMPTY, f"No anomalies {where}.", data,
                              source="store")
        shown = found[: args.limit]
        more = f" (showing the newest {len(shown)})" if len(found) > len(shown) else ""
        summary = (f"{len(found)} anomalies {where}{more}: "
                   + "; ".join(anomaly_line(a) for a in shown) + ".")
        return ToolResult(self.name, ToolStatus.OK, summary, data, source="store")
