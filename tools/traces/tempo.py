"""Async client for Grafana Tempo's HTTP API: trace search and trace by id.

Search answers become `TraceSummary`s; a trace comes back as OTLP JSON in any of
Tempo's shapes (`batches`, `resourceSpans`, or v2's `{"trace": ...}`) and is
decoded by the shared OTLP/JSON decoder into `Span`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx

from bot.ingest.otlp import OtlpDecodeError, spans_from_otlp_json
from bot.spans import RejectCounter, RejectReason, Span, SpanRejected
from tools.traces._backend import (
    JsonGetter,
    RetryPolicy,
    TraceFormatError,
    TraceNotFoundError,
    check_trace_id,
    check_window,
    go_duration,
)
from tools.traces._jaeger_fields import hex_id, to_int

__all__ = ["TempoClient", "TraceSummary", "search_params", "summaries_from_search", "traceql"]

QueryLanguage = Literal["traceql", "tags"]


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One search hit: enough to pick a trace before fetching all its spans."""

    trace_id: str
    root_service: str
    root_operation: str
    start_ns: int
    duration_ms: float


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def traceql(service: str | None, operation: str | None, min_duration_ns: int | None) -> str:
    """A TraceQL selector: `{ resource.service.name = "x" && name = "y" && duration >= 1ms }`."""
    terms = []
    if service:
        terms.append(f"resource.service.name = {_quote(service)}")
    if operation:
        terms.append(f"name = {_quote(operation)}")
    if min_duration_ns:
        terms.append(f"duration >= {go_duration(min_duration_ns)}")
    return "{ " + " && ".join(terms) + " }" if terms else "{}"


def _logfmt(key: str, value: str) -> str:
    plain = value and not any(c in value for c in ' ="\\')
    return f"{key}={value}" if plain else f"{key}={_quote(value)}"


def search_params(service: str | None, operation: str | None, *, start_ns: int, end_ns: int,
                  limit: int, min_duration_ns: int | None = None,
                  language: QueryLanguage = "traceql") -> dict[str, str | int]:
    """`/api/search` parameters; Tempo takes start and end in whole Unix seconds."""
    check_window(start_ns, end_ns, limit)
    params: dict[str, str | int] = {"start": start_ns // 10**9, "end": -(-end_ns // 10**9),
                                    "limit": limit}
    if language == "traceql":
        params["q"] = traceql(service, operation, min_duration_ns)
        return params
    tags = [_logfmt(k, v) for k, v in (("service.name", service), ("name", operation)) if v]
    if tags:
        params["tags"] = " ".join(tags)
    if min_duration_ns:
        params["minDuration"] = go_duration(min_duration_ns)
    return params


def summaries_from_search(body: Any, rejects: RejectCounter) -> list[TraceSummary]:
    """The `traces` of a search answer; entries without a usable id or start are counted."""
    traces = body.get("traces") if isinstance(body, dict) else None
    if traces is None:
        if isinstance(body, dict):
            return []  # Tempo omits `traces` when nothing matched
        raise TraceFormatError(f"Tempo search: expected an object with traces, got {body!r:.80}")
    out: list[TraceSummary] = []
    for item in traces if isinstance(traces, list) else ():
        try:
            out.append(_summary(item))
        except SpanRejected as exc:
            rejects.add(exc.reason, f"search result: {exc.detail}")
    return out


def _summary(item: Any) -> TraceSummary:
    if not isinstance(item, dict):
        raise SpanRejected(RejectReason.MALFORMED, "search result is not an object")
    duration = item.get("durationMs") or 0  # protobuf JSON omits a zero (sub-millisecond) value
    if isinstance(duration, bool) or not isinstance(duration, (int, float, str)):
        raise SpanRejected(RejectReason.MALFORMED, f"durationMs {duration!r:.40}")
    try:
        duration_ms = float(duration)
    except ValueError:
        raise SpanRejected(RejectReason.MALFORMED, f"durationMs {duration!r:.40}") from None
    return TraceSummary(
        trace_id=hex_id(item.get("traceID"), 16, "traceID"),  # Tempo drops leading zeros
        root_service=str(item.get("rootServiceName") or ""),
        root_operation=str(item.get("rootTraceName") or ""),
        start_ns=to_int(item.get("startTimeUnixNano"), "startTimeUnixNano"),
        duration_ms=duration_ms,
    )


class TempoClient:
    """Tempo's query frontend (HTTP port 3200), e.g. `TempoClient("http://tempo:3200")`."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, retries: int = 2,
                 backoff_s: float = 0.2, language: QueryLanguage = "traceql",
                 v2_trace_api: bool = False, rejects: RejectCounter | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.rejects = rejects if rejects is not None else RejectCounter()
        self.language: QueryLanguage = language
        self._trace_path = "/api/v2/traces/" if v2_trace_api else "/api/traces/"
        self._http = JsonGetter("Tempo", base_url, timeout_s=timeout_s,
                                retry=RetryPolicy(retries, backoff_s), transport=transport)

    async def __aenter__(self) -> TempoClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def search(self, service: str | None = None, operation: str | None = None, *,
                     start_ns: int, end_ns: int, limit: int = 20,
                     min_duration_ns: int | None = None) -> list[TraceSummary]:
        params = search_params(service, operation, start_ns=start_ns, end_ns=end_ns, limit=limit,
                               min_duration_ns=min_duration_ns, language=self.language)
        return summaries_from_search(await self._http.get("/api/search", params), self.rejects)

    async def get_trace(self, trace_id: str) -> list[Span]:
        trace_id = check_trace_id(trace_id)
        path = self._trace_path + trace_id
        try:
            body = await self._http.get(path)
        except TraceNotFoundError as exc:
            raise TraceNotFoundError(
                f"trace {trace_id} is not in Tempo ({exc.url}): it may be past retention, "
                "not yet flushed, or from another tenant", url=exc.url, status=exc.status) from None
        if not isinstance(body, dict):
            raise TraceFormatError(f"Tempo {path}: expected an object, got {type(body).__name__}")
        try:
            return spans_from_otlp_json(body, self.rejects)
        except OtlpDecodeError as exc:
            raise TraceFormatError(f"Tempo {path}: not an OTLP JSON trace: {exc}") from None

