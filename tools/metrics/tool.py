"""`metrics`: CPU, memory, error rate, request rate and p99 of a service around a time.

From Prometheus through one PromQL template per metric when OPSBOT_PROMETHEUS_URL
is set; otherwise from the simulator's metric model, labelled "stand-in" in the
source, the data and the first words of the summary, so nobody mistakes it for
a measurement.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from tools._args import ServiceArg, TimeArg, Window, resolve_time, window_ns
from tools._format import fmt_ms, fmt_num, fmt_pct, fmt_time, iso_time, name, quoted
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.metrics.prometheus import PrometheusClient, PrometheusError
from tools.metrics.promql import METRICS, UNITS, MetricName, check_templates, render
from tools.metrics.standin import MetricStandIn, Series

__all__ = ["MetricsTool", "format_metric", "templates_from_settings"]

_LABELS: dict[MetricName, str] = {
    "cpu_percent": "CPU", "memory_mb": "memory", "error_rate_pct": "error rate",
    "request_rate_rps": "request rate", "p99_ms": "p99",
}
_MAX_POINTS = 60


class MetricsArgs(ToolArgs):
    service: ServiceArg
    at: TimeArg = Field("now", description="the moment of interest, e.g. the alert time")
    window: Window = Field("30m", description="history before `at` to compare with")
    metrics: list[MetricName] | None = Field(None, max_length=5,
                                             description="default: all five")


def format_metric(metric: MetricName, value: float | None) -> str:
    """One value in the unit the evidence uses: '0.5%', '142MB', '18.50 req/s', '4.20ms'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if metric in ("cpu_percent", "error_rate_pct"):
        return fmt_pct(value, 1)
    if metric == "memory_mb":
        return f"{value:.0f}MB"
    if metric == "p99_ms":
        return fmt_ms(value)
    return fmt_num(value, UNITS[metric])


def templates_from_settings(settings: Any) -> dict[MetricName, str]:
    """Defaults overlaid with any `promql_<metric>` settings that are set."""
    given = {m: getattr(settings, f"promql_{m}", None) for m in METRICS}
    return check_templates({m: t for m, t in given.items() if t})


def _facts(metric: MetricName, ts: np.ndarray, vals: np.ndarray, at_s: float) -> dict[str, Any]:
    ok = np.isfinite(vals)
    ts, vals = ts[ok], vals[ok]
    before = vals[ts <= at_s]
    at_idx = np.flatnonzero(ts <= at_s)
    at_value = float(vals[at_idx[-1]]) if at_idx.size else float(vals[0])
    step = max(1, ts.size // _MAX_POINTS)
    return {
        "unit": UNITS[metric], "at": round(at_value, 4),
        "mean_before": round(float(before.mean()), 4) if before.size else None,
        "min": round(float(vals.min()), 4), "max": round(float(vals.max()), 4),
        "points": [[iso_time(int(t * 1e9)), round(float(v), 4)]
                   for t, v in zip(ts[::step], vals[::step], strict=True)],
    }


class MetricsTool:
    name: ClassVar[str] = "metrics"
    description: ClassVar[str] = (
        "CPU %, memory MB, error rate %, request rate and p99 latency of a service at a time, "
        "with the mean and range over the window before it. From Prometheus, or stand-in "
        "simulated values when none is configured.")
    Args: ClassVar[type[BaseModel]] = MetricsArgs

    def __init__(self, templates: Mapping[MetricName, str] | Mapping[str, str] | None = None,
                 standin: MetricStandIn | None = None) -> None:
        self.templates = check_templates(templates or {})
        self._standin = standin

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        at = resolve_time(args.at, ctx.now_ns)
        start, end = at - window_ns(args.window), min(at + window_ns(args.window) // 2,
                                                      max(ctx.now_ns, at))
        wanted: list[MetricName] = list(dict.fromkeys(args.metrics or METRICS))
        client = ctx.clients.get("prometheus")
        url = getattr(ctx.settings, "prometheus_url", None)
        if client is None and not url:
            return await self._standin_result(args.service, wanted, start, end, at, ctx)
        owned = client is None
        client = client or PrometheusClient(str(url), timeout_s=float(
            getattr(ctx.settings, "prometheus_timeout_s", 5.0)))
        try:
            return await self._prometheus_result(client, args.service, wanted, start, end, at)
        finally:
            if owned:
                await client.aclose()

    async def _prometheus_result(self, client: PrometheusClient, service: str,
                                 wanted: list[MetricName], start: int, end: int, at: int
                                 ) -> ToolResult:
        step = max(15.0, round((end - start) / 1e9 / _MAX_POINTS))
        queries = {m: render(self.templates[m], service) for m in wanted}
        answers = await asyncio.gather(
            *(client.query_range(q, start / 1e9, end / 1e9, step) for q in queries.values()),
            return_exceptions=True)
        series: dict[MetricName, Series] = {}
        errors: dict[str, str] = {}
        warnings: list[str] = []
        for metric, answer in zip(wanted, answers, strict=True):
            if isinstance(answer, PrometheusError):
                errors[metric] = str(answer)
            elif isinstance(answer, BaseException):
                raise answer
            elif answer.series:
                warnings += answer.warnings
                first = answer.series[0]  # templates aggregate to one series per service
                series[metric] = (first.ts_s, first.values)
            else:
                warnings += answer.warnings
        return self._result(service, wanted, series, start, end, at, "prometheus",
                            step, errors, warnings, queries)

    async def _standin_result(self, service: str, wanted: list[MetricName], start: int,
                              end: int, at: int, ctx: ToolContext) -> ToolResult:
        if self._standin is None:
            self._standin = MetricStandIn.from_settings(ctx.settings)
        standin = self._standin
        found = await asyncio.to_thread(standin.series, service, start, end)
        if not found:
            return ToolResult(self.name, ToolStatus.EMPTY, source="stand-in", error=(
                f"no Prometheus is configured (OPSBOT_PROMETHEUS_URL), and the simulator's "
                f"stand-in has no service {name(service)}; it knows "
                + ", ".join(standin.services)))
        series = {m: found[m] for m in wanted if m in found}
        return self._result(service, wanted, series, start, end, at, "stand-in", 60.0, {}, [],
                            {})

    def _result(self, service: str, wanted: list[MetricName], series: dict[MetricName, Series],
                start: int, end: int, at: int, source: str, step: float,
                errors: dict[str, str], warnings: list[str], queries: dict[MetricName, str]
                ) -> ToolResult:
        facts = {m: _facts(m, ts, v, at / 1e9) for m, (ts, v) in series.items()
                 if np.isfinite(v).any()}
        data: dict[str, Any] = {
            "service": service, "source": source, "at": iso_time(at), "start": iso_time(start),
            "end": iso_time(end), "step_s": step, "metrics": facts, "errors": errors,
            "warnings": warnings[:5], "queries": queries,
            "missing": [m for m in wanted if m not in facts and m not in errors]}
        if not facts:
            status = ToolStatus.ERROR if errors else ToolStatus.EMPTY
            why = "; ".join(f"{m}: {e}" for m, e in errors.items()) or (
                f"no {source} data for service {name(service)} between {fmt_time(start)} and "
                f"{fmt_time(end)}; check that the PromQL templates' service label matches")
            return ToolResult(self.name, status, data=data, error=why[:500], source=source)
        return ToolResult(self.name, ToolStatus.OK, _summary(data, wanted, at), data,
                          source=source)


def _summary(data: dict[str, Any], wanted: list[MetricName], at: int) -> str:
    label = ("STAND-IN values from the simulator (no Prometheus configured), not measured: "
             if data["source"] == "stand-in" else "")
    parts = []
    for metric in wanted:
        f = data["metrics"].get(metric)
        if f is None:
            why = "query failed" if metric in data["errors"] else "no data"
            parts.append(f"{_LABELS[metric]} n/a ({why})")
            continue
        text = f"{_LABELS[metric]} {format_metric(metric, f['at'])}"
        if f["mean_before"] is not None:
            text += (f" (before: mean {format_metric(metric, f['mean_before'])}, "
                     f"max {format_metric(metric, f['max'])})")
        parts.append(text)
    head = f"{label}{name(data['service'])} at {fmt_time(at)} ({data['source']}): "
    tail = f" Warnings: {quoted('; '.join(data['warnings']), 80)}." if data["warnings"] else ""
    return head + "; ".join(parts) + "." + tail

