"""Realistic OTLP protobuf export requests for the ingestion benchmark, in a rotating pool.

A pool of serialized `ExportTraceServiceRequest`s is built once; every round
rewrites trace ids and timestamps in place (at byte offsets found at build time),
so each round carries new traces later in time without holding millions of spans.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

__all__ = ["PayloadPool"]

_SERVICES = {
    "frontend": ["GET /", "GET /product/{id}", "POST /cart", "POST /checkout", "GET /cart"],
    "checkout": ["PlaceOrder", "prepareOrderItemsAndShippingQuoteFromCart"],
    "cart": ["GetCart", "AddItem", "EmptyCart", "HGET", "HSET"],
    "payment": ["Charge", "POST /v1/charges"],
    "shipping": ["GetQuote", "ShipOrder"],
    "currency": ["Convert", "GetSupportedCurrencies"],
    "catalog": ["GetProduct", "ListProducts", "SearchProducts", "SELECT products"],
    "ads": ["GetAds", "SELECT ads"],
}
_TIME_TAGS = (b"\x39", b"\x41")  # Span.start_time_unix_nano (7) and end_time_unix_nano (8), fixed64


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource(service: str, rng: random.Random) -> ResourceSpans:
    rs = ResourceSpans(schema_url="https://opentelemetry.io/schemas/1.21.0")
    pod = f"{service}-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}"
    rs.resource.attributes.extend([
        _kv("service.name", service), _kv("service.version", "1.8.2"),
        _kv("telemetry.sdk.language", "python"), _kv("telemetry.sdk.name", "opentelemetry"),
        _kv("telemetry.sdk.version", "1.27.0"), _kv("host.name", pod),
        _kv("k8s.pod.name", pod), _kv("k8s.namespace.name", "shop"),
        _kv("process.pid", rng.randrange(1, 65535)),
    ])
    scope = rs.scope_spans.add()
    scope.scope.name = f"opentelemetry.instrumentation.{service}"
    scope.scope.version = "0.48b0"
    return rs


def _fill_span(span: Span, op: str, rng: random.Random, start: int, parent: bytes) -> None:
    span.span_id = rng.randbytes(8)
    span.parent_span_id = parent
    span.name = op
    span.kind = rng.choice((Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_CLIENT)) if parent \
        else Span.SPAN_KIND_SERVER
    span.flags = 0x100 | (0x200 if parent else 0)
    span.start_time_unix_nano = start
    span.end_time_unix_nano = start + int(rng.lognormvariate(15.5, 0.6))  # ~5 ms median
    span.attributes.extend([
        _kv("http.request.method", "GET"), _kv("url.path", f"/{op.lower()}/{rng.randrange(1000)}"),
        _kv("http.route", op), _kv("http.response.status_code", 200),
        _kv("server.address", "10.0.3.17"), _kv("server.port", 8080),
        _kv("network.protocol.version", "1.1"),
        _kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
    ])
    if rng.random() < 0.02:
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = "upstream connect error"
        event = span.events.add(name="exception", time_unix_nano=start + 1000)
        event.attributes.extend([_kv("exception.type", "TimeoutError"),
                                 _kv("exception.message", "deadline exceeded")])


def _request(n_spans: int, t0: int, window_ns: int,
             rng: random.Random) -> ExportTraceServiceRequest:
    """n_spans spans in traces of 2-12 spans across services, as a collector would batch them."""
    by_service = {name: _resource(name, rng) for name in _SERVICES}
    made = 0
    while made < n_spans:
        trace_id = rng.randbytes(16)
        parent, start = b"", t0 + rng.randrange(window_ns)
        for _ in range(min(rng.randint(2, 12), n_spans - made)):
            service = rng.choice(list(_SERVICES))
            span = by_service[service].scope_spans[0].spans.add(trace_id=trace_id)
            _fill_span(span, rng.choice(_SERVICES[service]), rng, start, parent)
            parent, start = span.span_id, start + rng.randrange(10_000, 500_000)
            made += 1
    request = ExportTraceServiceRequest()
    request.resource_spans.extend(by_service.values())
    return request


def _offsets(body: bytes, request: ExportTraceServiceRequest) -> tuple[list[int], list[int]]:
    """Byte offsets of every trace id and every start/end time in the serialized body."""
    ids: list[int] = []
    times: list[int] = []
    pos = 0
    for rs in request.resource_spans:
        for span in rs.scope_spans[0].spans:
            pos = body.index(b"\x0a\x10" + span.trace_id, pos) + 2
            ids.append(pos)
            for tag, value in zip(_TIME_TAGS, (span.start_time_unix_nano, span.end_time_unix_nano),
                                  strict=True):
                pos = body.index(tag + struct.pack("<Q", value), pos) + 1
                times.append(pos)
    return ids, times


@dataclass
class _Template:
    body: bytes
    id_offsets: list[int]
    time_offsets: list[int]
    n_spans: int


class PayloadPool:
    """`pool_size` distinct requests of `spans_per_request` spans, replayed round after round.

    Each request covers `request_ns` of simulated time (1 s: a service doing 1k spans/s),
    so a run moves through hours at a realistic pace for the exemplar logic.
    """

    def __init__(self, spans_per_request: int = 1000, pool_size: int = 16, seed: int = 7,
                 t0_ns: int = 1_700_000_000 * 10**9, request_ns: int = 1_000_000_000) -> None:
        rng = random.Random(seed)
        self.round_ns = pool_size * request_ns
        self._templates = []
        for k in range(pool_size):
            request = _request(spans_per_request, t0_ns + k * request_ns, request_ns, rng)
            body = request.SerializeToString()
            ids, times = _offsets(body, request)
            self._templates.append(_Template(body, ids, times, spans_per_request))

    def payloads(self, n_spans: int) -> Iterator[tuple[bytes, int]]:
        """(body, spans in it) until n_spans spans were produced; round r shifts ids and times."""
        produced, r = 0, 0
        while produced < n_spans:
            for t in self._templates:
                if produced >= n_spans:
                    return
                yield (t.body if r == 0 else self._shifted(t, r)), t.n_spans
                produced += t.n_spans
            r += 1

    def _shifted(self, t: _Template, r: int) -> bytes:
        buf = bytearray(t.body)
        tag = struct.pack(">I", r)
        for off in t.id_offsets:
            buf[off : off + 4] = tag
        shift = r * self.round_ns
        for off in t.time_offsets:
            (value,) = struct.unpack_from("<Q", buf, off)
            struct.pack_into("<Q", buf, off, value + shift)
        return bytes(buf)
