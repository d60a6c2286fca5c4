"""Jaeger's domain model as protobuf JSON (`model.proto`): base64 ids, RFC 3339
times with nanoseconds, duration strings, `vType`/`vStr`/... tag fields.

Jaeger's own fixtures and gRPC-gateway tools write this shape; it keeps
nanoseconds, which the query API's microsecond JSON has already dropped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.spans import RejectCounter, RejectReason, Span, SpanRejected, bound_attributes
from tools.traces._jaeger_fields import Ref, hex_id, make_span

__all__ = ["domain_spans", "duration_ns", "is_domain_trace", "rfc3339_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)")
_PART = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"([+-]?)((?:{_PART})+)")
_PARTS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
            "m": 60 * 10**9, "h": 3600 * 10**9}
# The tag value field each `vType` uses; jsonpb omits a field holding its default.
_VALUE_FIELD = {"STRING": ("vStr", ""), "BOOL": ("vBool", False), "INT64": ("vInt64", 0),
                "FLOAT64": ("vFloat64", 0.0), "BINARY": ("vBinary", "")}


def is_domain_trace(trace: Mapping[str, Any]) -> bool:
    """A trace in this shape: a `processMap`, or spans keyed `traceId` rather than `traceID`."""
    if "processMap" in trace:
        return True
    first = next((s for s in trace["spans"] if isinstance(s, dict)), None)
    if first is None or "traceID" in first:
        return False
    return "traceId" in first or "spanId" in first


def domain_spans(trace: Mapping[str, Any], rejects: RejectCounter) -> list[Span]:
    """Every valid span of one domain-model trace; the others are counted."""
    processes = _process_map(trace.get("processMap"))
    out: list[Span] = []
    for raw in trace["spans"]:
        try:
            out.append(_span(raw, processes))
        except SpanRejected as exc:
            rejects.add(exc.reason, exc.detail)
    return out


def rfc3339_ns(value: Any) -> int:
    """An RFC 3339 time with up to nine fraction digits as exact Unix nanoseconds."""
    match = _RFC3339.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"time {str(value)[:40]!r} is not RFC 3339")
    zone = "+00:00" if match[3] in "Zz" else match[3]
    try:
        moment = datetime.fromisoformat(match[1].replace("t", "T").replace(" ", "T") + zone)
    except ValueError:
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{value[:40]!r} is not a date") from None
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return seconds * 1_000_000_000 + int((match[2] or "").ljust(9, "0"))


def duration_ns(value: Any) -> int:
    """A Go duration (`5000ns`, `1h2m3.5s`) or protobuf JSON Duration (`0.000005s`) in ns."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise SpanRejected(RejectReason.MISSING_FIELD if value is None else RejectReason.MALFORMED,
                           f"duration {str(value)[:40]!r} is not like 5000ns or 0.000005s")
    total = sum(Decimal(num) * _UNIT_NS[unit] for num, unit in _PARTS.findall(match[2]))
    return int(-total if match[1] == "-" else total)


def _b64_id(value: Any, size: int, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpanRejected(RejectReason.MISSING_FIELD, f"{what} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SpanRejected(RejectReason.BAD_ID, f"{what} {value[:40]!r} is not base64") from None
    return hex_id(raw.hex(), size, what)


def _tags(raw: Any) -> Iterator[tuple[str, Any]]:
    for tag in raw if isinstance(raw, list) else ():
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            continue
        field, default = _VALUE_FIELD.get(str(tag.get("vType") or "STRING").upper(), ("vStr", ""))
        value = tag.get(field, default)
        if field == "vInt64" and isinstance(value, str) and value.lstrip("-").isdecimal():
            value = int(value)  # jsonpb writes int64 as a string
        yield tag["key"], value


def _process(raw: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("serviceName"), str):
        return None
    service = raw["serviceName"]
    return service, bound_attributes([("service.name", service), *_tags(raw.get("tags"))])


def _process_map(raw: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in raw if isinstance(raw, list) else ():
        process = _process(entry.get("process")) if isinstance(entry, dict) else None
        if process is not None:
            out[str(entry.get("processId"))] = process
    return out


def _refs(raw: Any) -> Iterator[Ref]:
    for ref in raw if isinstance(raw, list) else ():
        if not isinstance(ref, dict):
            continue
        try:
            trace_id = _b64_id(ref.get("traceId"), 16, "reference trace id")
            span_id: str | None = _b64_id(ref.get("spanId"), 8, "reference span id")
        except SpanRejected:
            continue  # an unreadable reference costs the parent link, not the span
        yield Ref(str(ref.get("refType") or "CHILD_OF"), trace_id, span_id)


def _span(raw: Any, processes: dict[str, tuple[str, dict[str, Any]]]) -> Span:
    if not isinstance(raw, dict):
        raise SpanRejected(RejectReason.MALFORMED, "span is not an object")
    process = _process(raw.get("process")) or processes.get(str(raw.get("processId")))
    if process is None:
        raise SpanRejected(RejectReason.MISSING_FIELD, "span has no process with a serviceName")
    return make_span(
        trace_id=_b64_id(raw.get("traceId"), 16, "trace id"),
        span_id=_b64_id(raw.get("spanId"), 8, "span id"),
        refs=_refs(raw.get("references")),
        service=process[0],
        resource=process[1],
        operation=raw.get("operationName"),
        start_ns=rfc3339_ns(raw.get("startTime")),
        duration_ns=duration_ns(raw.get("duration")),
        tags=_tags(raw.get("tags")),
    )
