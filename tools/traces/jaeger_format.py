"""Jaeger JSON <-> `Span`, both directions, with no IO.

Reading accepts the query API envelope `{"data": [trace, ...]}`, a bare trace,
the UI's `{"data": trace}` wrapper, a list of traces, and the protobuf-JSON
domain model (see `_jaeger_domain`). Broken spans and traces are counted in a
`RejectCounter`, never raised. Writing produces the trace shape Jaeger's own
OTLP->Jaeger converter and UI model produce (tags, `span.kind`, `p1`, `p2`...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bot.spans import (
    MAX_ATTRIBUTE_VALUE_CHARS,
    RejectCounter,
    RejectReason,
    Span,
    SpanKind,
    SpanRejected,
    bound_attributes,
)
from tools.traces._jaeger_domain import domain_spans, is_domain_trace
from tools.traces._jaeger_fields import (
    ERROR_TAG,
    KIND_TAG,
    RESERVED_TAGS,
    STATUS_CODE_TAG,
    STATUS_MESSAGE_TAG,
    Ref,
    hex_id,
    make_span,
    to_int,
)

__all__ = [
    "JaegerFormatError",
    "is_jaeger_document",
    "jaeger_envelope",
    "jaeger_trace",
    "jaeger_traces",
    "spans_from_jaeger",
]

# Jaeger's converter puts the instrumentation scope first (older versions say "library").
_SCOPE_TAGS = ("otel.scope.name", "otel.scope.version", "otel.library.name", "otel.library.version")
_JS_SAFE_INT = 2**53 - 1  # Jaeger's UI model writes larger int64 tags as strings
_ENVELOPE_KEYS = ("total", "limit", "offset", "errors")


class JaegerFormatError(ValueError):
    """The document is not Jaeger trace JSON, or spans cannot form one Jaeger trace."""


def is_jaeger_document(obj: Any) -> bool:
    """Whether `obj` has one of the Jaeger trace shapes `spans_from_jaeger` reads."""
    return _traces_of(obj) is not None


def spans_from_jaeger(obj: Any, rejects: RejectCounter) -> list[Span]:
    """Every valid span of a Jaeger JSON document; broken spans and traces are counted."""
    traces = _traces_of(obj)
    if traces is None:
        raise JaegerFormatError(
            'not Jaeger trace JSON: expected {"data": [trace, ...]}, {"data": trace}, '
            'a trace {"traceID", "spans", "processes"} or a list of traces')
    spans: list[Span] = []
    for trace in traces:
        spans += _trace_spans(trace, rejects)
    return spans


def _is_trace(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("spans"), list)


def _traces_of(obj: Any) -> list[Any] | None:
    if isinstance(obj, list):
        return obj if obj and _is_trace(obj[0]) else None
    if not isinstance(obj, dict):
        return None
    if _is_trace(obj):
        return [obj]
    data = obj.get("data")
    if _is_trace(data):
        return [data]
    if isinstance(data, list) and (any(_is_trace(t) for t in data) or
                                   (not data and any(k in obj for k in _ENVELOPE_KEYS))):
        return data
    if data is None and obj.get("errors"):
        return []  # an error envelope: no traces, and nothing malformed
    return None


def _trace_spans(trace: Any, rejects: RejectCounter) -> list[Span]:
    if not _is_trace(trace):
        rejects.add(RejectReason.MALFORMED, "a Jaeger trace must be an object with a spans list")
        return []
    if is_domain_trace(trace):
        return domain_spans(trace, rejects)
    processes = _processes(trace.get("processes"))
    out: list[Span] = []
    for raw in trace["spans"]:
        try:
            out.append(_span(raw, processes, trace.get("traceID")))
        except SpanRejected as exc:
            rejects.add(exc.reason, exc.detail)
    return out


@dataclass(frozen=True, slots=True)
class _Process:
    service: str
    resource: dict[str, Any]


def _process(raw: Any) -> _Process | None:
    if not isinstance(raw, dict):
        return None
    service = raw.get("serviceName")
    if not isinstance(service, str) or not service:
        return None
    tags = [("service.name", service), *_tag_pairs(raw.get("tags"))]
    return _Process(service, bound_attributes(tags))


def _processes(raw: Any) -> dict[str, _Process]:
    if not isinstance(raw, dict):
        return {}
    parsed = {str(pid): _process(p) for pid, p in raw.items()}
    return {pid: p for pid, p in parsed.items() if p is not None}


def _tag_pairs(tags: Any) -> Iterator[tuple[str, Any]]:
    if not isinstance(tags, list):
        return
    for tag in tags:
        if isinstance(tag, dict) and isinstance(tag.get("key"), str):
            value = _tag_value(str(tag.get("type") or "string").lower(), tag.get("value"))
            if value is not None:
                yield tag["key"], value


def _tag_value(kind: str, value: Any) -> Any:
    """A tag value as its declared type; a value that does not fit its type stays as given."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))[:MAX_ATTRIBUTE_VALUE_CHARS]
    if kind == "bool" and isinstance(value, str):
        return value.strip().lower() == "true"
    try:
        if kind == "int64" and not isinstance(value, bool):
            return int(value)
        if kind == "float64" and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        pass
    return value


def _refs(raw: Any) -> Iterator[Ref]:
    for ref in raw if isinstance(raw, list) else ():
        if isinstance(ref, dict):
            yield Ref(str(ref.get("refType") or "CHILD_OF"),
                      _id_or_none(ref.get("traceID"), 16), _id_or_none(ref.get("spanID"), 8))


def _id_or_none(value: Any, size: int) -> str | None:
    try:
        return hex_id(value, size, "reference id")
    except SpanRejected:
        return None  # an unreadable reference costs the parent link, not the span


def _span(raw: Any, processes: dict[str, _Process], default_trace: Any) -> Span:
    if not isinstance(raw, dict):
        raise SpanRejected(RejectReason.MALFORMED, "span is not an object")
    trace_id = hex_id(raw.get("traceID") or default_trace, 16, "trace id")
    process = processes.get(str(raw.get("processID"))) or _process(raw.get("process"))
    if process is None:
        raise SpanRejected(RejectReason.MISSING_FIELD,
                           f"process {raw.get('processID')!r} is not in the trace's processes")
    refs = list(_refs(raw.get("references")))
    if raw.get("parentSpanID"):  # the deprecated field of old Jaeger JSON: a CHILD_OF
        refs.append(Ref("CHILD_OF", trace_id, _id_or_none(raw["parentSpanID"], 8)))
    return make_span(
        trace_id=trace_id,
        span_id=hex_id(raw.get("spanID"), 8, "span id"),
        refs=refs,
        service=process.service,
        resource=process.resource,
        operation=raw.get("operationName"),
        start_ns=to_int(raw.get("startTime"), "startTime") * 1000,
        duration_ns=to_int(raw.get("duration"), "duration") * 1000,
        tags=_tag_pairs(raw.get("tags")),
    )


def jaeger_envelope(spans: Iterable[Span]) -> dict[str, Any]:
    """The query API's `/api/traces` answer for these spans."""
    return {"data": jaeger_traces(spans), "total": 0, "limit": 0, "offset": 0, "errors": None}


def jaeger_traces(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """One Jaeger trace per trace id, in order of first appearance; spans keep their order."""
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    return [jaeger_trace(group) for group in by_trace.values()]


def jaeger_trace(spans: Sequence[Span]) -> dict[str, Any]:
    """Spans of one trace as Jaeger's trace JSON, identical processes shared as p1, p2, ..."""
    if not spans:
        raise JaegerFormatError("a Jaeger trace needs at least one span")
    trace_ids = {s.trace_id for s in spans}
    if len(trace_ids) > 1:
        raise JaegerFormatError(f"spans of {len(trace_ids)} traces given: use jaeger_traces()")
    ids: dict[str, str] = {}
    processes: dict[str, dict[str, Any]] = {}
    out = []
    for span in spans:
        process = {"serviceName": span.service,
                   "tags": [_tag(k, v) for k, v in span.resource.items()
                            if k != "service.name" and v is not None]}
        pid = ids.setdefault(json.dumps(process, sort_keys=True), f"p{len(ids) + 1}")
        processes[pid] = process
        out.append(_span_json(span, pid))
    return {"traceID": _trace_id(spans[0].trace_id), "spans": out, "processes": processes,
            "warnings": None}


def _trace_id(trace_id: str) -> str:
    """Jaeger prints a trace id whose high 64 bits are zero as 16 hex chars."""
    return trace_id[16:] if trace_id.startswith("0" * 16) else trace_id


def _span_json(span: Span, pid: str) -> dict[str, Any]:
    trace_id = _trace_id(span.trace_id)
    refs = ([{"refType": "CHILD_OF", "traceID": trace_id, "spanID": span.parent_id}]
            if span.parent_id else [])
    return {
        "traceID": trace_id,
        "spanID": span.span_id,
        "operationName": span.operation,
        "references": refs,
        "startTime": span.start_ns // 1000,
        "duration": span.duration_ns // 1000,
        "tags": [_tag(k, v) for k, v in _tag_items(span) if v is not None],
        "logs": [],
        "processID": pid,
        "warnings": None,
    }


def _tag_items(span: Span) -> list[tuple[str, Any]]:
    """Scope tags, attributes, then kind, status and error: the converter's order."""
    attrs = span.attributes
    scope = [k for k in _SCOPE_TAGS if k in attrs]
    items = [(k, attrs[k]) for k in scope]
    items += [(k, v) for k, v in attrs.items() if k not in scope and k not in RESERVED_TAGS]
    if span.kind is not SpanKind.UNSPECIFIED:
        items.append((KIND_TAG, span.kind.name.lower()))
    if span.error:
        items += [(STATUS_CODE_TAG, "ERROR"), (ERROR_TAG, True)]
    elif str(attrs.get(STATUS_CODE_TAG, "")).upper() == "OK":
        items.append((STATUS_CODE_TAG, "OK"))
    if span.status_message:
        items.append((STATUS_MESSAGE_TAG, span.status_message))
    return items


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64",
                "value": value if abs(value) <= _JS_SAFE_INT else str(value)}
    if isinstance(value, float):
        finite = math.isfinite(value)
        return {"key": key, "type": "float64", "value": value if finite else str(value)}
    if isinstance(value, (list, dict)):
        return {"key": key, "type": "string", "value": json.dumps(value, separators=(",", ":"))}
    return {"key": key, "type": "string", "value": str(value)}
