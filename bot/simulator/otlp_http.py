"""OTLP/HTTP protobuf sink: encode spans as `ExportTraceServiceRequest` and POST them.

Retries with exponential backoff on 429, 5xx and connection errors (honouring
Retry-After); any other status fails at once with an `OtlpExportError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from bot.simulator.columns import SpanColumns, SpanStatus
from bot.simulator.errors import OtlpExportError
from bot.simulator.otlp_json import SCOPE_NAME, SCOPE_VERSION, STATUS_CODE_ERROR

__all__ = ["ExportResult", "OtlpHttpEmitter", "RetryPolicy", "encode_otlp_protobuf", "otlp_request"]

CONTENT_TYPE = "application/x-protobuf"


def _key_value(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def _id_bytes(*parts: np.ndarray) -> list[bytes]:
    """Big-endian bytes of each row (8 per part), as OTLP protobuf ids."""
    buf = np.empty((len(parts[0]), len(parts)), dtype=">u8")
    for j, part in enumerate(parts):
        buf[:, j] = part
    raw, width = buf.tobytes(), 8 * len(parts)
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def encode_otlp_protobuf(spans: SpanColumns) -> bytes:
    """The serialized `otlp_request`: the body of an OTLP/HTTP protobuf POST."""
    return bytes(otlp_request(spans).SerializeToString())


def otlp_request(spans: SpanColumns) -> ExportTraceServiceRequest:
    """The spans as an `ExportTraceServiceRequest`; one ResourceSpans per service."""
    table = spans.table
    request = ExportTraceServiceRequest()
    scopes: dict[str, Any] = {}
    trace_ids = _id_bytes(spans.trace_hi, spans.trace_lo)
    span_ids, parent_ids = _id_bytes(spans.span_id), _id_bytes(spans.parent_id)
    starts, durs = spans.start_ns.tolist(), spans.duration_ns.tolist()
    rows, statuses = spans.trace_row.tolist(), spans.status.tolist()
    parents = spans.parent_id.tolist()
    for i, k in enumerate(spans.key_idx.tolist()):
        service = table.services[k]
        scope = scopes.get(service)
        if scope is None:
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(
                _key_value(key, v) for key, v in table.resource(service).items())
            scope = scopes[service] = resource_spans.scope_spans.add()
            scope.scope.name, scope.scope.version = SCOPE_NAME, SCOPE_VERSION
        span = scope.spans.add(trace_id=trace_ids[rows[i]], span_id=span_ids[i],
                               name=table.names[k], kind=int(table.kinds[k]),
                               start_time_unix_nano=starts[i],
                               end_time_unix_nano=starts[i] + durs[i])
        if parents[i]:
            span.parent_span_id = parent_ids[i]
        span.attributes.extend(_key_value(key, v) for key, v in table.attributes[k].items())
        if statuses[i]:
            span.status.code = STATUS_CODE_ERROR
            span.status.message = SpanStatus(statuses[i]).message
    return request


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    initial_backoff_s: float = 0.5
    multiplier: float = 2.0
    max_backoff_s: float = 10.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = self.initial_backoff_s * self.multiplier ** (attempt - 1)
        hinted = _retry_after_s(retry_after)
        return min(max(backoff, hinted or 0.0), self.max_backoff_s)


def _retry_after_s(header: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None
    return max(when - time.time(), 0.0)  # the edge may read the clock; the generator never does


@dataclass(frozen=True, slots=True)
class ExportResult:
    spans: int
    rejected: int  # from the collector's partial_success, 0 when none
    attempts: int
    message: str = ""


class OtlpHttpEmitter:
    """POSTs spans to an OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces)."""

    def __init__(self, url: str, *, client: httpx.AsyncClient | None = None,
                 retry: RetryPolicy | None = None, timeout_s: float = 10.0,
                 headers: dict[str, str] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.url = url
        self.retry = retry or RetryPolicy()
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._headers = {"Content-Type": CONTENT_TYPE, **(headers or {})}
        self._sleep = sleep

    async def __aenter__(self) -> OtlpHttpEmitter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def send(self, spans: SpanColumns) -> ExportResult:
        """Encode and post one chunk; an empty chunk is not sent."""
        if len(spans) == 0:
            return ExportResult(0, 0, 0)
        return await self.post(encode_otlp_protobuf(spans), len(spans))

    async def post(self, body: bytes, span_count: int) -> ExportResult:
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            retry_after = None
            try:
                response = await self._client.post(self.url, content=body, headers=self._headers)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return _result(response, span_count, attempt)
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise OtlpExportError(
                        f"{self.url} refused the spans ({last}); check the URL ends in "
                        "/v1/traces and the endpoint accepts OTLP protobuf",
                        response.status_code)
                retry_after = response.headers.get("Retry-After")
            if attempt < self.retry.attempts:
                await self._sleep(self.retry.delay(attempt, retry_after))
        raise OtlpExportError(f"gave up on {self.url} after {self.retry.attempts} attempts "
                              f"(last: {last}); is the collector running and reachable?")


def _result(response: httpx.Response, span_count: int, attempts: int) -> ExportResult:
    reply = ExportTraceServiceResponse()
    if response.content and response.headers.get("content-type", "").startswith(CONTENT_TYPE):
        try:
            reply.ParseFromString(response.content)
        except DecodeError:
            return ExportResult(span_count, 0, attempts, "unreadable response body")
    partial = reply.partial_success
    return ExportResult(span_count, int(partial.rejected_spans), attempts, partial.error_message)
