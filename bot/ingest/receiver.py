"""The OTLP/HTTP trace receiver: `POST /v1/traces` into any `SpanSink`.

Status codes follow the OTLP/HTTP spec, so exporters do the right thing:
200 (with `partial_success` when some spans were rejected), 400 for payloads
that cannot be decoded, 413 for bodies over the limit (before or after gzip),
415 for unsupported content types or encodings, and 503 with Retry-After when
the sink fails, which exporters retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from bot.ingest._otlp_http import (
    BodyError,
    Encoding,
    encoding_of,
    error_response,
    export_response,
    read_body,
)
from bot.ingest.otlp import OtlpDecodeError, decode_traces_json, decode_traces_pb
from bot.spans import RejectCounter, SpanBatch

__all__ = ["ReceiverMetrics", "SpanSink", "otlp_routes"]

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
_THREAD_DECODE_BYTES = 1 << 20  # decode bigger bodies off the event loop


class SpanSink(Protocol):
    """Where decoded spans go (the ingest pipeline). Raising means: not stored, retry later."""

    async def ingest(self, batch: SpanBatch) -> None: ...


@dataclass(frozen=True)
class ReceiverMetrics:
    spans_received: Counter
    spans_rejected: Counter
    requests: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ReceiverMetrics:
        return cls(
            Counter("opsbot_otlp_spans_received", "Spans in decoded and stored OTLP requests, "
                    "accepted or rejected", registry=registry),
            Counter("opsbot_otlp_spans_rejected", "Spans rejected by the OTLP receiver",
                    ["reason"], registry=registry),
            Counter("opsbot_otlp_requests", "OTLP export requests by HTTP status", ["code"],
                    registry=registry),
        )


def otlp_routes(sink: SpanSink, rejects: RejectCounter, max_body_bytes: int, *,
                registry: CollectorRegistry | None = None,
                retry_after_s: int = 5) -> list[Route]:
    """Routes for `POST /v1/traces`. Metrics go on `registry` (a private one when None)."""
    receiver = _Receiver(sink, rejects, max_body_bytes, retry_after_s,
                         ReceiverMetrics.register(registry or CollectorRegistry()))
    return [Route(TRACES_PATH, receiver.export, methods=["POST"])]


_DECODERS: dict[Encoding, Callable[[bytes, RejectCounter], SpanBatch]] = {
    Encoding.PROTOBUF: decode_traces_pb,
    Encoding.JSON: decode_traces_json,
}


@dataclass
class _Receiver:
    sink: SpanSink
    rejects: RejectCounter
    max_body_bytes: int
    retry_after_s: int
    metrics: ReceiverMetrics

    async def export(self, request: Request) -> Response:
        response = await self._export(request)
        self.metrics.requests.labels(code=str(response.status_code)).inc()
        return response

    async def _export(self, request: Request) -> Response:
        encoding = encoding_of(request.headers.get("content-type"))
        if encoding is None:
            return error_response(415, f"Content-Type must be {Encoding.PROTOBUF.value} or "
                                  f"{Encoding.JSON.value}", Encoding.JSON)
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"),
                                   request.headers.get("content-encoding"), self.max_body_bytes)
        except BodyError as exc:
            return error_response(exc.status, str(exc), encoding)
        except ClientDisconnect:
            return error_response(400, "client disconnected mid-body", encoding)
        found = RejectCounter()  # this request's rejections, for its partial_success
        try:
            batch = await self._decode(encoding, body, found)
        except OtlpDecodeError as exc:
            found.add(exc.reason, str(exc))
            self._count_rejects(found)
            return error_response(400, str(exc), encoding)
        try:
            if len(batch):
                await self.sink.ingest(batch)
        except Exception:  # any sink failure: tell the exporter to retry, count nothing yet
            log.exception("span sink failed; answering 503 so the exporter retries")
            return error_response(503, "span store unavailable, retry later", encoding,
                                  {"Retry-After": str(self.retry_after_s)})
        self.metrics.spans_received.inc(len(batch) + found.total())
        self._count_rejects(found)
        return export_response(encoding, found.total(), _describe(found))

    async def _decode(self, encoding: Encoding, body: bytes, found: RejectCounter) -> SpanBatch:
        decode = _DECODERS[encoding]
        if len(body) > _THREAD_DECODE_BYTES:
            return await run_in_threadpool(decode, body, found)
        return decode(body, found)

    def _count_rejects(self, found: RejectCounter) -> None:
        for reason, n in found.counts.items():
            self.rejects.add(reason, found.last_detail.get(reason, ""), n)
            self.metrics.spans_rejected.labels(reason=reason.value).inc(n)


def _describe(found: RejectCounter) -> str:
    if not found.total():
        return ""
    parts = [f"{n} {reason.value} ({found.last_detail.get(reason, '')})"
             for reason, n in sorted(found.counts.items())]
    return f"{found.total()} spans rejected: " + "; ".join(parts)
