"""`recalculate`: recompute severity thresholds now; admin-only, and only after confirmation.

The work is the detection engine's (`DetectionEngine.recalc`, normally nightly
at `recalc_hour_utc`). The tool finds it in `ToolContext.clients["engine"]` or
takes a recalculation function in its constructor; without either it says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus

__all__ = ["Recalculation", "RecalculateTool"]

# (scope, now_ns) -> number of keys whose thresholds were recomputed
Recalculation = Callable[[str, int], Awaitable[int]]


class RecalculateArgs(ToolArgs):
    scope: Literal["thresholds"] = Field(
        "thresholds", description="what to recompute: every key's severity thresholds")


class RecalculateTool:
    name: ClassVar[str] = "recalculate"
    description: ClassVar[str] = (
        "Admin only: recompute every key's severity thresholds from its score history now, "
        "instead of at the nightly run. Asks the user to confirm first.")
    Args: ClassVar[type[BaseModel]] = RecalculateArgs

    def __init__(self, recalculation: Recalculation | None = None) -> None:
        self._recalculation = recalculation

    def _find(self, ctx: ToolContext) -> Recalculation | None:
        if self._recalculation is not None:
            return self._recalculation
        engine = ctx.clients.get("engine")
        recalc = getattr(engine, "recalc", None)
        if recalc is None:
            return None

        async def run_engine(scope: str, now_ns: int) -> int:
            return int(await recalc(now_ns))

        return run_engine

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        if not ctx.is_admin:
            return ToolResult(self.name, ToolStatus.DENIED, error=(
                "only opsbot admins (OPSBOT_SLACK_ADMINS) may recalculate thresholds"))
        plan = ("recompute the severity thresholds of every key from its score histograms "
                "and use them for new alerts at once")
        if not ctx.confirmed:
            return ToolResult(self.name, ToolStatus.OK, data={
                "needs_confirmation": True, "scope": args.scope, "plan": plan},
                summary=f"Needs confirmation: this would {plan}. Nothing was changed yet.")
        recalculation = self._find(ctx)
        if recalculation is None:
            return ToolResult(self.name, ToolStatus.UNAVAILABLE, error=(
                "no detection engine is running in this process, so there is nothing to "
                "recalculate; run it in the opsbot service (opsbot run)"))
        keys = await recalculation(args.scope, ctx.now_ns)
        return ToolResult(self.name, ToolStatus.OK, data={
            "needs_confirmation": False, "scope": args.scope, "keys": keys},
            summary=f"Recalculated the severity thresholds of {keys} keys.", source="engine")
