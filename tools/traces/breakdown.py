"""`trace_breakdown`: a trace's critical path, each step's share of its parent, and its baseline.

"tcp.connect 264.00ms = 92% of pg-pool.connect; baseline p99 2.00ms (132.0x)":
the step that dominates, how much of its caller's time it took, and how far it
is from its own normal, so the agent can name the child that made a span slow.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from bot.spans import Span
from tools._args import KeyArg, TraceIdArg
from tools._format import fmt_ms, fmt_pct, fmt_ratio, iso_time, name, quoted
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.detection.baselines import baseline_at, baseline_config, baseline_facts
from tools.traces.critical_path import CriticalSpan, critical_spans, pick_root
from tools.traces.source import fetch_trace, focus_span, trace_link

__all__ = ["TraceBreakdownTool", "step_label"]

_ATTRS_SHOWN = 3


class TraceBreakdownArgs(ToolArgs):
    trace_id: TraceIdArg
    key: KeyArg | None = Field(None, description="break down this span key's slowest span "
                                                 "in the trace instead of the root")
    top: int = Field(4, ge=1, le=6, description="critical-path steps to report")


def step_label(span: Span, relative_to: Span | None) -> str:
    """The operation alone inside the caller's service, 'service:operation' across services."""
    if relative_to is not None and relative_to.service == span.service:
        return name(span.operation)
    return name(span.key)


class TraceBreakdownTool:
    name: ClassVar[str] = "trace_breakdown"
    description: ClassVar[str] = (
        "Critical path of one trace: which child spans made it slow, each one's share of its "
        "parent's time and its own baseline p99. Give the trace_id from slow_traces or an "
        "alert; optionally the span key to focus on.")
    Args: ClassVar[type[BaseModel]] = TraceBreakdownArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        spans, source = await fetch_trace(ctx, args.trace_id)
        if not spans:
            return ToolResult(self.name, ToolStatus.EMPTY, error=(
                f"trace {args.trace_id} is in neither the store nor a trace backend; only the "
                "slowest traces per key and hour are kept, so pick one from slow_traces"))
        focus = focus_span(spans, args.key) if args.key else pick_root(spans)
        if focus is None:
            return ToolResult(self.name, ToolStatus.EMPTY, source=source, error=(
                f"trace {args.trace_id} has no span of {name(args.key)}; its keys are "
                + ", ".join(sorted({name(s.key) for s in spans})[:8])))
        steps = critical_spans(spans, focus)
        config = baseline_config(ctx.settings)
        facts = [await _step_facts(ctx, s, focus, config) for s in steps]
        top = sorted(facts, key=lambda f: -f["self_ms"])[: args.top]
        data = {"trace_id": spans[0].trace_id, "source": source, "span_count": len(spans),
                "focus": {"key": focus.key, "span_id": focus.span_id,
                          "duration_ms": round(focus.duration_ms, 2),
                          "start": iso_time(focus.start_ns)},
                "path": facts, "top": [f["span_id"] for f in top],
                "link": trace_link(ctx.settings, spans[0].trace_id)}
        summary = _summary(data, top, focus, steps)
        return ToolResult(self.name, ToolStatus.OK, summary, data, source=source)


async def _step_facts(ctx: ToolContext, step: CriticalSpan, focus: Span, config: Any
                      ) -> dict[str, Any]:
    span, parent = step.span, step.parent
    facts: dict[str, Any] = {
        "span_id": span.span_id, "key": span.key, "depth": step.depth,
        "label": step_label(span, parent or focus),
        "duration_ms": round(span.duration_ms, 2), "self_ms": round(step.self_ns / 1e6, 2),
        "path_ms": round(step.path_ns / 1e6, 2),
        "share_of_focus_pct": round(100 * step.self_ns / max(focus.duration_ns, 1), 1),
        "parent_key": parent.key if parent else None,
        "share_of_parent_pct": (round(100 * span.duration_ns / parent.duration_ns, 1)
                                if parent and parent.duration_ns else None),
        "error": span.error, "status_message": span.status_message[:200],
        "attributes": {str(k)[:60]: str(v)[:60] for k, v in
                       list(span.attributes.items())[:_ATTRS_SHOWN]},
        "baseline": None, "ratio_to_p99": None,
    }
    kb = await baseline_at(ctx.store, span.key, span.start_ns, config)
    if kb is not None and kb.baseline.count:
        b = kb.baseline
        facts["baseline"] = baseline_facts(b)
        if b.p99 > 0:
            facts["ratio_to_p99"] = round(span.duration_ms / b.p99, 1)
    return facts


def _baseline_text(f: dict[str, Any]) -> str:
    b = f["baseline"]
    if b is None:
        return ""
    warm = "" if b["warm"] else ", warming up"
    ratio = f", {fmt_ratio(f['ratio_to_p99'])}" if f["ratio_to_p99"] is not None else ""
    return f", baseline p99 {fmt_ms(b['p99_ms'])} ({b['bucket']}{warm}{ratio})"


def _step_text(f: dict[str, Any], focus: Span, parent_label: str | None) -> str:
    if f["span_id"] == focus.span_id:
        return f"{f['label']} own work {fmt_ms(f['self_ms'])} ({fmt_pct(f['share_of_focus_pct'])})"
    share = f["share_of_parent_pct"]
    of = f" = {fmt_pct(share)} of {parent_label}" if share is not None else ""
    text = f"{f['label']} {fmt_ms(f['duration_ms'])}{of}{_baseline_text(f)}"
    if f["error"]:
        text += f", error {quoted(f['status_message'] or 'status', 60)}"
    return text


def _summary(data: dict[str, Any], top: list[dict[str, Any]], focus: Span,
             steps: list[CriticalSpan]) -> str:
    labels = {s.span.span_id: step_label(s.span, s.parent or focus) for s in steps}
    parents = {s.span.span_id: (s.parent.span_id if s.parent else None) for s in steps}
    own = next((f for f in data["path"] if f["span_id"] == focus.span_id), None)
    head = (f"Trace {data['trace_id']} ({data['source']}, {data['span_count']} spans): "
            f"{name(focus.key)} {fmt_ms(focus.duration_ms)}{_baseline_text(own) if own else ''}"
            f", critical path {len(steps)} spans. ")
    parts = [_step_text(f, focus, labels.get(parents[f["span_id"]] or "")) for f in top]
    first = top[0] if top else None
    if first and first["attributes"]:
        attrs = ", ".join(f"{name(k, 40)}={quoted(v, 40)}" for k, v in first["attributes"].items())
        parts.append(f"{first['label']} attributes (data): {attrs}")
    return head + "; ".join(parts) + "."
