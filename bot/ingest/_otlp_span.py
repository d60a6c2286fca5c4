"""Building a full `Span` from one protobuf span's bytes: the lazy half of protobuf decoding.

Only exemplar candidates get here. The hot path never parsed attributes, so
their wire format and UTF-8 are checked now: bad UTF-8 becomes U+FFFD, and
attributes that cannot be parsed at all are dropped (the span itself was valid).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from bot.ingest._otlp_schema import LenientSpan, SpanCols
from bot.spans import (
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    Span,
    SpanKind,
    bound_attributes,
)

__all__ = ["ScopeInfo", "any_value", "pb_attributes", "span_from_pb"]

_STATUS_ERROR = 2
_MAX_DEPTH = 8  # nested arrays/kvlists deeper than this are kept as text
_ZERO_SPAN = bytes(8)


@dataclass(slots=True)
class ScopeInfo:
    """What the spans of one ScopeSpans share: service, resource, instrumentation scope."""

    service: str
    resource_pb: bytes  # a serialized Resource: a parsed one would keep its whole request alive
    scope_name: str = ""
    scope_version: str = ""
    _resource: dict[str, Any] | None = field(default=None, repr=False)

    def resource(self) -> dict[str, Any]:
        if self._resource is None:
            resource = Resource.FromString(self.resource_pb)
            self._resource = bound_attributes(pb_attributes(resource.attributes))
        return dict(self._resource)


def _text(value: str | bytes) -> str:
    """Strings from the lenient schema arrive as bytes."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def any_value(value: Any, depth: int = 0) -> Any:
    """An `AnyValue` (official or lenient class) as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind in ("bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    if kind == "bytes_value":  # binary: base64, as OTLP/JSON writes it
        return base64.b64encode(value.bytes_value[:MAX_ATTRIBUTE_VALUE_CHARS]).decode("ascii")
    if kind == "array_value":
        items = islice(value.array_value.values, MAX_ATTRIBUTES)
        if depth >= _MAX_DEPTH:
            return str(value)[:MAX_ATTRIBUTE_VALUE_CHARS]
        return [any_value(v, depth + 1) for v in items]
    if kind == "kvlist_value":
        if depth >= _MAX_DEPTH:
            return str(value)[:MAX_ATTRIBUTE_VALUE_CHARS]
        return dict(pb_attributes(value.kvlist_value.values, depth + 1))
    return None  # unset, or a profiles-only string table index


def pb_attributes(kvs: Iterable[Any], depth: int = 0) -> Iterator[tuple[str, Any]]:
    for kv in islice(kvs, MAX_ATTRIBUTES):
        yield _text(kv.key), any_value(kv.value, depth)


def _parse(raw: bytes) -> Any:
    try:
        return PbSpan.FromString(raw)
    except DecodeError:
        pass
    try:
        return LenientSpan.FromString(raw)  # invalid UTF-8 somewhere in the attributes
    except DecodeError:
        return None


def _from_columns(raw: bytes, scope: ScopeInfo, operation: str) -> Span:
    """The hot path accepted the span, but its attributes are corrupt: keep what it read."""
    c = SpanCols.FromString(raw)
    parent = c.parent_span_id[-1] if c.parent_span_id else b""
    start = c.start_time_unix_nano[-1]
    return Span(
        trace_id=c.trace_id[-1].hex(), span_id=c.span_id[-1].hex(),
        parent_id=parent.hex() if parent and parent != _ZERO_SPAN else None,
        service=scope.service, operation=operation, start_ns=start,
        duration_ns=c.end_time_unix_nano[-1] - start,
        kind=SpanKind(c.kind[-1]) if c.kind else SpanKind.UNSPECIFIED,
        error=bool(c.status.code) and c.status.code[-1] == _STATUS_ERROR,
        attributes={"opsbot.attributes_dropped": "undecodable attributes"},
        resource=scope.resource(),
    )


def span_from_pb(raw: bytes, scope: ScopeInfo, operation: str) -> Span:
    """The full span behind one row; `operation` is the (bounded) name the row was keyed by."""
    pb = _parse(raw)
    if pb is None:
        return _from_columns(raw, scope, operation)
    scope_attrs = [("otel.scope.name", scope.scope_name),
                   ("otel.scope.version", scope.scope_version)]
    attrs = chain(pb_attributes(pb.attributes), [(k, v) for k, v in scope_attrs if v])
    parent = pb.parent_span_id
    return Span(
        trace_id=pb.trace_id.hex(),
        span_id=pb.span_id.hex(),
        parent_id=parent.hex() if parent and parent != _ZERO_SPAN else None,
        service=scope.service,
        operation=operation,
        start_ns=pb.start_time_unix_nano,
        duration_ns=pb.end_time_unix_nano - pb.start_time_unix_nano,
        kind=SpanKind(pb.kind),
        error=pb.status.code == _STATUS_ERROR,
        status_message=_text(pb.status.message)[:MAX_ATTRIBUTE_VALUE_CHARS],
        attributes=bound_attributes(attrs),
        resource=scope.resource(),
    )

