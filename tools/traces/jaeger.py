"""Async client for Jaeger's HTTP query API (`/api/services`, `/api/traces`, ...).

Answers become `Span`s through `jaeger_format`; spans Jaeger returns broken are
counted in `rejects`, and HTTP trouble raises a `TraceBackendError` subclass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from bot.spans import RejectCounter, Span, SpanKind, SpanRejected
from tools.traces._backend import (
    InvalidQueryError,
    JsonGetter,
    RetryPolicy,
    TraceBackendError,
    TraceFormatError,
    TraceNotFoundError,
    check_trace_id,
    check_window,
    go_duration,
)
from tools.traces.jaeger_format import JaegerFormatError, spans_from_jaeger

__all__ = ["JaegerClient", "Operation", "find_traces_params", "operations_from_answer"]


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation Jaeger has seen for a service; kind is UNSPECIFIED on older Jaeger."""

    name: str
    span_kind: SpanKind = SpanKind.UNSPECIFIED


def find_traces_params(service: str, operation: str | None, *, start_ns: int, end_ns: int,
                       limit: int, min_duration_ns: int | None = None,
                       tags: Mapping[str, str] | None = None) -> dict[str, str | int]:
    """`/api/traces` query parameters: times in microseconds, `minDuration` as a Go duration."""
    if not service:
        raise InvalidQueryError("Jaeger searches need a service name; list them with services()")
    check_window(start_ns, end_ns, limit)
    params: dict[str, str | int] = {"service": service, "start": start_ns // 1000,
                                    "end": -(-end_ns // 1000), "limit": limit}
    if operation:
        params["operation"] = operation
    if min_duration_ns:
        params["minDuration"] = go_duration(min_duration_ns)
    if tags:
        params["tags"] = json.dumps(dict(tags), separators=(",", ":"))
    return params


def operations_from_answer(data: Any) -> list[Operation]:
    """Both shapes: `[{"name", "spanKind"}]` (Jaeger >= 1.14) and `["name"]` (older)."""
    if not isinstance(data, list):
        raise JaegerFormatError(f"operations: expected a list, got {type(data).__name__}")
    out: list[Operation] = []
    for item in data:
        if isinstance(item, str) and item:
            out.append(Operation(item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            out.append(Operation(item["name"], _kind(item.get("spanKind"))))
    return out


def _kind(value: Any) -> SpanKind:
    try:
        return SpanKind.parse(value) if value else SpanKind.UNSPECIFIED
    except SpanRejected:
        return SpanKind.UNSPECIFIED


class JaegerClient:
    """Jaeger's query service (default port 16686), e.g. `JaegerClient("http://jaeger:16686")`."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, retries: int = 2,
                 backoff_s: float = 0.2, rejects: RejectCounter | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.rejects = rejects if rejects is not None else RejectCounter()
        self._http = JsonGetter("Jaeger", base_url, timeout_s=timeout_s,
                                retry=RetryPolicy(retries, backoff_s), transport=transport)

    async def __aenter__(self) -> JaegerClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def services(self) -> list[str]:
        data = await self._data("/api/services")
        if not isinstance(data, list):
            raise TraceFormatError(f"Jaeger /api/services: expected a list, got {data!r:.80}")
        return [s for s in data if isinstance(s, str)]

    async def operations(self, service: str) -> list[Operation]:
        data = await self._data(f"/api/services/{quote(service, safe='')}/operations")
        try:
            return operations_from_answer(data)
        except JaegerFormatError as exc:
            raise TraceFormatError(f"Jaeger operations of {service!r}: {exc}") from None

    async def find_traces(self, service: str, operation: str | None = None, *, start_ns: int,
                          end_ns: int, limit: int = 20, min_duration_ns: int | None = None,
                          tags: Mapping[str, str] | None = None) -> list[Span]:
        """Spans of up to `limit` traces of `service` in [start, end], all traces flattened."""
        params = find_traces_params(service, operation, start_ns=start_ns, end_ns=end_ns,
                                    limit=limit, min_duration_ns=min_duration_ns, tags=tags)
        return self._spans(await self._get("/api/traces", params), "/api/traces")

    async def get_trace(self, trace_id: str) -> list[Span]:
        trace_id = check_trace_id(trace_id)
        try:
            body = await self._get(f"/api/traces/{trace_id}")
        except TraceNotFoundError as exc:
            raise TraceNotFoundError(
                f"trace {trace_id} is not in Jaeger ({exc.url}): it may be past retention, "
                "unsampled, or from another environment", url=exc.url, status=exc.status) from None
        return self._spans(body, f"/api/traces/{trace_id}")

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body = await self._http.get(path, params)
        if not isinstance(body, dict):
            raise TraceFormatError(f"Jaeger {path}: expected an object, got {type(body).__name__}")
        if body.get("errors") and not body.get("data"):
            raise TraceBackendError(f"Jaeger {path} answered with errors: {body['errors']!r:.300}")
        return body

    async def _data(self, path: str) -> Any:
        return (await self._get(path)).get("data") or []

    def _spans(self, body: dict[str, Any], path: str) -> list[Span]:
        if not body.get("data"):
            return []
        try:
            return spans_from_jaeger(body, self.rejects)
        except JaegerFormatError as exc:
            raise TraceFormatError(f"Jaeger {path}: {exc}") from None
