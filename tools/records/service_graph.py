"""`service_graph`: who a service calls and who calls it, with their current anomaly state.

The graph is the detection engine's persisted `CallGraph` when there is one;
otherwise it is built here from the parent/child spans of the exemplar traces
the store kept in the last day (labelled as such: it sees only slow traces).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from bot.store.records import AnomalyRecord
from detectors import CallGraph, GroupingConfig
from tools._args import ServiceArg
from tools._format import name
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus

__all__ = ["ServiceGraphTool", "graph_from_exemplars", "stored_graph"]

_TRACES_PER_KEY = 3
_MAX_TRACES = 300


class ServiceGraphArgs(ToolArgs):
    service: ServiceArg
    hours: int = Field(24, ge=1, le=168, description="exemplar traces this far back, when "
                                                     "the engine's graph is not stored")


async def stored_graph(store: Any) -> CallGraph | None:
    """The engine's call graph from its saved state, if the store and engine provide it."""
    load = getattr(store, "load_detection_state", None)
    if load is None:
        return None
    try:
        from bot.detection._persist import STATE_NAME
    except ImportError:
        return None
    saved = await load(STATE_NAME)
    if saved is None or "graph" not in saved.data:
        return None
    return CallGraph.from_dict(saved.data["graph"], GroupingConfig())


async def graph_from_exemplars(store: Any, since_ns: int, until_ns: int) -> tuple[CallGraph, int]:
    """Caller -> callee services over the exemplar traces in the window; (graph, traces)."""
    graph = CallGraph(GroupingConfig())
    seen: set[str] = set()
    for series in await store.list_series("span"):
        for ex in await store.slowest_exemplars(series.id, since_ns, until_ns, _TRACES_PER_KEY):
            if ex.trace_id in seen or len(seen) >= _MAX_TRACES:
                continue
            seen.add(ex.trace_id)
            spans = await store.get_trace(ex.trace_id)
            graph.add_spans([s.service for s in spans], [s.span_id for s in spans],
                            [s.parent_id for s in spans])
    return graph, len(seen)


def _state(service: str, open_by_service: dict[str, list[AnomalyRecord]]) -> dict[str, Any]:
    found = open_by_service.get(service, [])
    worst = min((a.peak_severity for a in found), default=None)
    return {"open_anomalies": len(found), "worst": f"SEV{worst}" if worst else None,
            "keys": sorted({a.key for a in found})[:5]}


def _peer_text(service: str, calls: int, state: dict[str, Any]) -> str:
    health = (f"{state['open_anomalies']} open anomalies, worst {state['worst']}"
              if state["open_anomalies"] else "no open anomalies")
    return f"{name(service)} ({calls} calls, {health})"


class ServiceGraphTool:
    name: ClassVar[str] = "service_graph"
    description: ClassVar[str] = (
        "Callers and callees of a service in the call graph, with call counts and each one's "
        "open anomalies, to see whether a slowdown comes from downstream.")
    Args: ClassVar[type[BaseModel]] = ServiceGraphArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        graph = await stored_graph(ctx.store)
        origin = "detection engine call graph"
        if graph is None:
            graph, traces = await graph_from_exemplars(
                ctx.store, ctx.now_ns - args.hours * 3_600 * 10**9, ctx.now_ns)
            origin = f"{traces} exemplar traces of the last {args.hours}h"
        callees = {b: n for (a, b), n in graph.edges.items() if a == args.service}
        callers = {a: n for (a, b), n in graph.edges.items() if b == args.service}
        open_now = await ctx.store.list_anomalies(state="open")
        by_service: dict[str, list[AnomalyRecord]] = {}
        for a in open_now:
            by_service.setdefault(a.service, []).append(a)
        data = {"service": args.service, "graph": origin,
                "self": _state(args.service, by_service),
                "callers": [{"service": s, "calls": n, **_state(s, by_service)}
                            for s, n in sorted(callers.items(), key=lambda kv: -kv[1])],
                "callees": [{"service": s, "calls": n, **_state(s, by_service)}
                            for s, n in sorted(callees.items(), key=lambda kv: -kv[1])]}
        if not callers and not callees:
            return ToolResult(self.name, ToolStatus.EMPTY, data=data, source="store", summary=(
                f"{name(args.service)} has no callers or callees in the {origin}."))
        me = data["self"]
        own = (f"{me['open_anomalies']} open anomalies, worst {me['worst']}"
               if me["open_anomalies"] else "no open anomalies")
        calls = ", ".join(_peer_text(p["service"], p["calls"], p) for p in data["callees"][:5])
        called = ", ".join(_peer_text(p["service"], p["calls"], p) for p in data["callers"][:5])
        summary = (f"{name(args.service)} ({own}), from the {origin}. Calls: {calls or 'none'}. "
                   f"Called by: {called or 'none'}.")
        return ToolResult(self.name, ToolStatus.OK, summary, data, source="store")
