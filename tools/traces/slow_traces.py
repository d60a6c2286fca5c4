"""`slow_traces`: the slowest traces of a span key in a window, each with what dominated it.

The store keeps the slowest few traces per key and hour (exemplars); when it
has none for the window and Jaeger or Tempo is configured, the backend is
searched instead. Each trace comes with its critical step, so the agent can
pick one to break down.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from bot.spans import Span
from tools._args import KeyArg, TimeArg, Window, resolve_time, window_ns
from tools._format import fmt_ms, fmt_pct, fmt_time, iso_time, name
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.detection.baselines import baseline_at, baseline_config
from tools.traces.breakdown import step_label
from tools.traces.critical_path import critical_spans
from tools.traces.source import Backends, backends, focus_span, trace_link

__all__ = ["SlowTracesTool"]

_SEARCH_TRACES = 20  # traces asked of a backend; it does not sort by duration, we do


class SlowTracesArgs(ToolArgs):
    key: KeyArg
    window: Window = Field("1h", description="how far back from `at`")
    at: TimeArg = Field("now", description="end of the window")
    limit: int = Field(3, ge=1, le=5)
    source: Literal["auto", "store", "jaeger", "tempo"] = Field(
        "auto", description="auto: the store, then Jaeger/Tempo if the store has none")


class SlowTracesTool:
    name: ClassVar[str] = "slow_traces"
    description: ClassVar[str] = (
        "The slowest traces of a span key ('service:operation') in a time window, each with "
        "its duration and the child span that dominated it. Use before trace_breakdown.")
    Args: ClassVar[type[BaseModel]] = SlowTracesArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        end = resolve_time(args.at, ctx.now_ns)
        start = end - window_ns(args.window)
        traces: list[list[Span]] = []
        source = ""
        if args.source in ("auto", "store"):
            traces, source = await _from_store(ctx, args.key, start, end, args.limit), "store"
        if not traces and args.source != "store":
            async with backends(ctx) as b:
                found, backend = await _from_backend(b, args, start, end)
            if backend:
                traces, source = found, backend
            elif args.source in ("jaeger", "tempo"):
                return ToolResult(self.name, ToolStatus.UNAVAILABLE, error=(
                    f"{args.source} is not configured (set OPSBOT_{args.source.upper()}_URL)"))
        facts = [_trace_facts(spans, args.key, ctx) for spans in traces]
        rows = sorted((r for r in facts if r), key=lambda r: -r["duration_ms"])[: args.limit]
        where = f"{args.window} to {fmt_time(end)}"
        if not rows:
            return ToolResult(self.name, ToolStatus.EMPTY, summary=(
                f"No traces of {name(args.key)} in the {where} ({source or 'no source'})."),
                data={"key": args.key, "traces": []}, source=source or "store")
        kb = await baseline_at(ctx.store, args.key, end, baseline_config(ctx.settings))
        p99 = round(kb.baseline.p99, 2) if kb and kb.baseline.count else None
        data = {"key": args.key, "start": iso_time(start), "end": iso_time(end),
                "baseline_p99_ms": p99, "traces": rows}
        return ToolResult(self.name, ToolStatus.OK, _summary(args.key, where, source, rows, p99),
                          data, source=source)


async def _from_store(ctx: ToolContext, key: str, start: int, end: int, limit: int
                      ) -> list[list[Span]]:
    series = await ctx.store.get_series(key)
    if series is None:
        return []
    found = await ctx.store.slowest_exemplars(series.id, start, end, limit)
    traces = [await ctx.store.get_trace(e.trace_id) for e in found]
    return [t for t in traces if t]


async def _from_backend(b: Backends, args: Any, start: int, end: int
                        ) -> tuple[list[list[Span]], str]:
    service, _, operation = args.key.partition(":")
    if b.jaeger is not None and args.source in ("auto", "jaeger"):
        spans = await b.jaeger.find_traces(service, operation, start_ns=start, end_ns=end,
                                           limit=_SEARCH_TRACES)
        grouped: dict[str, list[Span]] = {}
        for s in spans:
            grouped.setdefault(s.trace_id, []).append(s)
        return list(grouped.values()), "jaeger"
    if b.tempo is not None and args.source in ("auto", "tempo"):
        found = await b.tempo.search(service, operation, start_ns=start, end_ns=end,
                                     limit=_SEARCH_TRACES)
        slowest = sorted(found, key=lambda t: -t.duration_ms)[: args.limit]
        return [await b.tempo.get_trace(t.trace_id) for t in slowest], "tempo"
    return [], ""


def _trace_facts(spans: list[Span], key: str, ctx: ToolContext) -> dict[str, Any] | None:
    focus = focus_span(spans, key)
    if focus is None:
        return None
    steps = [s for s in critical_spans(spans, focus) if s.span.span_id != focus.span_id]
    top = max(steps, key=lambda s: s.self_ns, default=None)
    own = focus.duration_ns - sum(s.self_ns for s in steps)
    dominant = None
    if top is not None and top.self_ns > own:
        dominant = {"key": top.span.key, "label": step_label(top.span, focus),
                    "duration_ms": round(top.span.duration_ms, 2),
                    "share_pct": round(100 * top.self_ns / max(focus.duration_ns, 1), 1)}
    return {"trace_id": focus.trace_id, "span_id": focus.span_id,
            "duration_ms": round(focus.duration_ms, 2), "start": iso_time(focus.start_ns),
            "spans": len(spans), "error": focus.error, "dominant": dominant,
            "link": trace_link(ctx.settings, focus.trace_id)}


def _summary(key: str, where: str, source: str, rows: list[dict[str, Any]],
             p99: float | None) -> str:
    parts = []
    for i, r in enumerate(rows, 1):
        text = (f"{i}) {r['trace_id']} {fmt_ms(r['duration_ms'])} at {r['start'][11:19]}Z, "
                f"{r['spans']} spans")
        d = r["dominant"]
        text += (f", mostly {d['label']} {fmt_ms(d['duration_ms'])} ({fmt_pct(d['share_pct'])})"
                 if d else ", mostly its own work")
        parts.append(text + (", error" if r["error"] else ""))
    tail = f" Baseline p99 {fmt_ms(p99)}." if p99 is not None else ""
    return (f"Slowest {len(rows)} traces of {name(key)}, {where} ({source}): "
            + "; ".join(parts) + "." + tail)
