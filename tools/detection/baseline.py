"""`baseline`: what normal looks like for a span key at a time, as the detector computes it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tools._args import KeyArg, TimeArg, resolve_time
from tools._format import fmt_ms, fmt_pct, fmt_ratio, fmt_time, iso_time, name
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.detection.baselines import (
    Observed,
    baseline_at,
    baseline_config,
    baseline_facts,
    observed_at,
    observed_facts,
)

__all__ = ["BaselineTool"]


class BaselineArgs(ToolArgs):
    key: KeyArg
    at: TimeArg = Field("now", description="the time whose baseline to show")


class BaselineTool:
    name: ClassVar[str] = "baseline"
    description: ClassVar[str] = (
        "Normal latency of a span key at a time: the baseline bucket used (hour_of_week, "
        "hour_of_day or global), p50/p95/p99, sample count, and whether it is warm; and the "
        "observed p50/p95/p99, count and error rate of the hour around that time.")
    Args: ClassVar[type[BaseModel]] = BaselineArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        at = resolve_time(args.at, ctx.now_ns)
        config = baseline_config(ctx.settings)
        kb = await baseline_at(ctx.store, args.key, at, config)
        if kb is None:
            service = args.key.partition(":")[0]
            known = [s.name for s in await ctx.store.list_series("span") if s.service == service]
            hint = ("; keys of that service: " + ", ".join(name(k) for k in known[:6])
                    if known else "; the store has no keys of that service")
            return ToolResult(self.name, ToolStatus.EMPTY, source="store",
                              error=f"no span key {name(args.key)} in the store{hint}",
                              data={"key": args.key, "known_keys": known[:20]})
        b = kb.baseline
        seen = await observed_at(ctx.store, kb.series, at)
        # Baseline fields keep their names; what happened around `at` is apart, as "observed".
        data = {"key": args.key, "at": fmt_time(at), **baseline_facts(b),
                "observed": observed_facts(seen, b),
                "observed_window": {"start": iso_time(seen.start_ns),
                                    "end": iso_time(seen.end_ns)}}
        if not b.count:
            return ToolResult(self.name, ToolStatus.EMPTY, source="store", data=data, summary=(
                f"No history for {name(args.key)} in the {config.window_days} "
                f"days before {fmt_time(at)}: no baseline yet.{_observed_text(seen, data)}"))
        state = "warm" if b.warm else "warming up (not used for alerts yet)"
        summary = (f"Baseline of {name(args.key)} at {fmt_time(at)}: {b.bucket_type.value} "
                   f"bucket {b.bucket_id}, p50 {fmt_ms(b.p50)}, p95 {fmt_ms(b.p95)}, "
                   f"p99 {fmt_ms(b.p99)}, {b.count} samples, {state}."
                   f"{_observed_text(seen, data)}")
        return ToolResult(self.name, ToolStatus.OK, summary, data, source="store")


def _observed_text(seen: Observed, data: dict[str, Any]) -> str:
    o = data["observed"]
    span = f"{iso_time(seen.start_ns)[11:16]}-{iso_time(seen.end_ns)[11:16]}Z"
    if not o["count"]:
        return f" Observed {span}: no samples."
    ratio = f" ({fmt_ratio(o['p50_ratio'])} the baseline p50)" if o.get("p50_ratio") else ""
    return (f" Observed {span}: p50 {fmt_ms(o['p50_ms'])}{ratio}, p95 {fmt_ms(o['p95_ms'])}, "
            f"p99 {fmt_ms(o['p99_ms'])}, {o['count']} samples, errors "
            f"{fmt_pct(o['error_rate_pct'], 1)}.")
