"""OTLP protobuf requests for tests, built with the official message classes."""

from __future__ import annotations

import os
from typing import Any, cast

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

T0 = 1_700_000_000_000_000_000


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, bytes):
        return KeyValue(key=key, value=AnyValue(bytes_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(name: str = "GET /orders", *, trace_id: bytes | None = None, parent: bytes = b"",
         start: int = T0, duration: int = 5_000_000, kind: int = 2, code: int = 0,
         flags: int = 0, **fields: Any) -> Span:
    s = Span(trace_id=trace_id if trace_id is not None else os.urandom(16),
             span_id=os.urandom(8), parent_span_id=parent, name=name, kind=cast(Any, kind),
             start_time_unix_nano=start, end_time_unix_nano=start + duration, flags=flags)
    if code:
        s.status.code = cast(Any, code)
        s.status.message = "boom" if code == 2 else ""
    for key, value in fields.items():
        setattr(s, key, value)
    return s


def request(*resources: tuple[str | None, list[Span]]) -> ExportTraceServiceRequest:
    """One ResourceSpans per (service name, spans); a None service sets no service.name."""
    req = ExportTraceServiceRequest()
    for service, spans in resources:
        rs = req.resource_spans.add()
        if service is not None:
            rs.resource.attributes.extend([kv("service.name", service), kv("host.name", "h1")])
        scope = rs.scope_spans.add()
        scope.scope.name, scope.scope.version = "tests.lib", "1.0"
        scope.spans.extend(spans)
    return req


def body(*resources: tuple[str | None, list[Span]]) -> bytes:
    return bytes(request(*resources).SerializeToString())


def varint(n: int) -> bytes:
    """Protobuf base-128 varint."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def raw_request(raw_spans: list[bytes]) -> bytes:
    """An ExportTraceServiceRequest body around spans serialized (or hand-encoded) already:
    one ResourceSpans (field 1) with one ScopeSpans (field 2) holding them (field 2)."""
    scope = b"".join(b"\x12" + varint(len(r)) + r for r in raw_spans)
    rs = b"\x12" + varint(len(scope)) + scope
    return b"\x0a" + varint(len(rs)) + rs
