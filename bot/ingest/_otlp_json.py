"""OTLP/JSON traces: the spec's rules, not protobuf's generic JSON mapping.

Ids are hex (protobuf's mapping would read base64; base64 ids of the right size,
as old Tempo wrote them, are accepted too), enums are ints or names, 64-bit ints
are strings or numbers, keys are camelCase (snake_case accepted). Tempo's
`{"batches": [...]}` and `{"trace": {...}}` wrappers are unwrapped. Invalid UTF-8
in the body becomes lone surrogates: spans whose name or service.name holds one
are rejected as `invalid_utf8`, other strings are repaired.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from bot.ingest._otlp_common import UNKNOWN_SERVICE, OtlpDecodeError
from bot.spans import (
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    RejectCounter,
    RejectReason,
    Span,
    SpanBatch,
    SpanKind,
    SpanRejected,
    bound_attributes,
)

__all__ = ["decode_traces_json", "spans_from_otlp_json"]

_MAX_DEPTH = 8
_STATUS = {"UNSET": False, "OK": False, "ERROR": True, 0: False, 1: False, 2: True}


def decode_traces_json(body: bytes | str | Mapping[str, Any], rejects: RejectCounter) -> SpanBatch:
    """An OTLP/JSON export (or Tempo trace) as a batch; raises OtlpDecodeError when unreadable."""
    return SpanBatch.from_spans(spans_from_otlp_json(_load(body), rejects))


def _load(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    # Invalid UTF-8 survives as lone surrogates, so one bad byte costs one span, not the body.
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", "surrogateescape")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OtlpDecodeError(RejectReason.MALFORMED, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise OtlpDecodeError(RejectReason.MALFORMED, "JSON nested too deeply") from None
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        raise OtlpDecodeError(RejectReason.MALFORMED,
                              f"expected a JSON object with resourceSpans, got {kind}")
    return obj


def _get(obj: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = obj.get(name)
        if value is not None:
            return value
    return None


def _list(obj: Mapping[str, Any], *names: str) -> list[Any]:
    value = _get(obj, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        kind = type(value).__name__
        raise SpanRejected(RejectReason.MALFORMED, f"{names[0]} is {kind}, not a list")
    return value


def _resource_spans(obj: Mapping[str, Any]) -> list[Any]:
    inner = obj.get("trace")
    if isinstance(inner, dict):
        obj = inner
    try:
        return _list(obj, "resourceSpans", "resource_spans", "batches")
    except SpanRejected as exc:
        raise OtlpDecodeError(RejectReason.MALFORMED, str(exc)) from None


def spans_from_otlp_json(obj: Mapping[str, Any], rejects: RejectCounter) -> list[Span]:
    """Every valid span of an OTLP/JSON `TracesData` object; the others are counted."""
    spans: list[Span] = []
    for rs in _resource_spans(obj):
        try:
            spans += _resource_batch(rs, rejects)
        except SpanRejected as exc:  # the container itself is broken; its spans are uncountable
            rejects.add(exc.reason, exc.detail)
    return spans


def _resource_batch(rs: Any, rejects: RejectCounter) -> list[Span]:
    if not isinstance(rs, dict):
        raise SpanRejected(RejectReason.MALFORMED, "resourceSpans entry is not an object")
    resource_attrs = _list(_get(rs, "resource") or {}, "attributes")
    resource = bound_attributes(_attributes(resource_attrs))
    service = str(resource.get("service.name") or UNKNOWN_SERVICE)
    scopes = _list(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans",
                   "instrumentation_library_spans")
    if not _is_text(_raw_service_name(resource_attrs)):
        n = sum(len(s.get("spans") or ()) for s in scopes if isinstance(s, dict))
        if n:
            rejects.add(RejectReason.BAD_UTF8, "service.name is not valid UTF-8", n)
        return []
    out: list[Span] = []
    for ss in scopes:
        if not isinstance(ss, dict):
            raise SpanRejected(RejectReason.MALFORMED, "scopeSpans entry is not an object")
        scope = _get(ss, "scope", "instrumentationLibrary", "instrumentation_library") or {}
        for raw in _list(ss, "spans"):
            try:
                out.append(_span(raw, service, resource, scope))
            except SpanRejected as exc:
                rejects.add(exc.reason, exc.detail)
    return out


def _raw_service_name(kvs: list[Any]) -> str:
    """service.name before `_clean` repaired it: a service is keyed by it, so it must be valid."""
    for kv in kvs:
        if isinstance(kv, dict) and kv.get("key") == "service.name":
            value = kv.get("value")
            name = _get(value, "stringValue", "string_value") if isinstance(value, dict) else None
            return name if isinstance(name, str) else ""
    return ""


def _span(raw: Any, service: str, resource: dict[str, Any], scope: Any) -> Span:
    if not isinstance(raw, dict):
        raise SpanRejected(RejectReason.MALFORMED, "span is not an object")
    name = _get(raw, "name")
    if not name or not isinstance(name, str):
        raise SpanRejected(RejectReason.MISSING_FIELD, "span name is missing")
    if not _is_text(name):
        raise SpanRejected(RejectReason.BAD_UTF8, "span name is not valid UTF-8")
    parent = _get(raw, "parentSpanId", "parent_span_id")
    start = _nanos(_get(raw, "startTimeUnixNano", "start_time_unix_nano"), "start")
    end = _nanos(_get(raw, "endTimeUnixNano", "end_time_unix_nano"), "end")
    status = _get(raw, "status") or {}
    attrs = [*_attributes(_list(raw, "attributes"))]
    if isinstance(scope, dict) and scope.get("name"):
        attrs += [("otel.scope.name", scope["name"]), ("otel.scope.version", scope.get("version"))]
    return Span(
        trace_id=_hex_id(_get(raw, "traceId", "trace_id"), 16, "trace id"),
        span_id=_hex_id(_get(raw, "spanId", "span_id"), 8, "span id"),
        parent_id=_hex_id(parent, 8, "parent span id") if parent else None,
        service=service,
        operation=name,
        start_ns=start,
        duration_ns=end - start,
        kind=SpanKind.parse(raw.get("kind", 0)),
        error=_status_error(status),
        status_message=_clean(str(status.get("message") or ""))[:MAX_ATTRIBUTE_VALUE_CHARS],
        attributes=bound_attributes((k, v) for k, v in attrs if v is not None),
        resource=dict(resource),
    ).validate()


def _hex_id(value: Any, size: int, what: str) -> str:
    if not value:
        raise SpanRejected(RejectReason.MISSING_FIELD, f"{what} is missing")
    if not isinstance(value, str):
        raise SpanRejected(RejectReason.BAD_ID, f"{what} is {type(value).__name__}, not hex")
    try:
        if len(value) == 2 * size:
            raw = bytes.fromhex(value)
        else:  # base64, as protobuf's generic JSON mapping (and old Tempo) writes ids
            raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != size or raw == bytes(size):
        raise SpanRejected(RejectReason.BAD_ID, f"{what} {value[:40]!r} is not {size} hex bytes")
    return raw.hex()


def _nanos(value: Any, what: str) -> int:
    """A 64-bit time: int, float or string; NaN, infinities and negatives are rejected."""
    if value is None or value == 0 or value == "0":
        raise SpanRejected(RejectReason.MISSING_FIELD, f"{what} time is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} time {value!r}")
    try:
        number = int(value)
    except (ValueError, OverflowError):
        number = _float_nanos(value, what)
    if number <= 0 or number >= 1 << 63:
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} time {value!r} out of range")
    return number


def _float_nanos(value: float | str, what: str) -> int:
    try:
        f = float(value)
    except ValueError:
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} time {value!r}") from None
    if math.isnan(f):
        raise SpanRejected(RejectReason.NAN_DURATION, f"{what} time is NaN")
    if math.isinf(f):
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} time is infinite")
    return int(f)


def _status_error(status: Any) -> bool:
    if not isinstance(status, dict):
        raise SpanRejected(RejectReason.MALFORMED, "status is not an object")
    code = status.get("code", 0)
    key = code.upper().removeprefix("STATUS_CODE_") if isinstance(code, str) else code
    if isinstance(code, bool) or key not in _STATUS:
        raise SpanRejected(RejectReason.BAD_ENUM, f"status code {code!r}")
    return _STATUS[key]


def _attributes(kvs: list[Any], depth: int = 0) -> Iterator[tuple[str, Any]]:
    for kv in kvs[: MAX_ATTRIBUTES * 2]:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            yield _clean(kv["key"]), _any(kv.get("value"), depth)


def _any(value: Any, depth: int = 0) -> Any:
    """An OTLP/JSON AnyValue as a plain value."""
    if not isinstance(value, dict) or not value:
        return value if isinstance(value, (str, int, float, bool)) else None
    kind, v = next(iter(value.items()))
    if kind in ("stringValue", "string_value"):
        return _clean(v) if isinstance(v, str) else str(v)
    if kind in ("intValue", "int_value"):
        return _int_or_text(v)
    if kind in ("doubleValue", "double_value"):
        return _float_or_text(v)
    if kind in ("boolValue", "bool_value"):
        return bool(v)
    if kind in ("bytesValue", "bytes_value"):  # base64 in OTLP/JSON; kept as that text
        return str(v)[:MAX_ATTRIBUTE_VALUE_CHARS]
    if depth >= _MAX_DEPTH or not isinstance(v, dict) or not isinstance(v.get("values"), list):
        return str(v)[:MAX_ATTRIBUTE_VALUE_CHARS]
    if kind in ("arrayValue", "array_value"):
        return [_any(x, depth + 1) for x in v["values"][:MAX_ATTRIBUTES]]
    if kind in ("kvlistValue", "kvlist_value"):
        return dict(_attributes(v["values"], depth + 1))
    return None


def _int_or_text(v: Any) -> int | str:
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)[:MAX_ATTRIBUTE_VALUE_CHARS]


def _float_or_text(v: Any) -> float | str:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)[:MAX_ATTRIBUTE_VALUE_CHARS]


def _is_text(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean(s: str) -> str:
    """Strings holding invalid UTF-8 (lone surrogates) get U+FFFD for the bad bytes."""
    if _is_text(s):
        return s
    try:  # bytes that were invalid in the body come back as they were...
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # ...lone surrogates written as \ud800 escapes cannot
        raw = s.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")
