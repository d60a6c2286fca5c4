"""Field rules Jaeger's JSON shapes share: ids, tag values, reserved tags and the parent.

Both readers (the query API / UI JSON and the protobuf-JSON domain model) turn
their tags into `(key, value)` pairs and their references into `Ref`s; the rules
here then decide kind, error, status and parent the way Jaeger does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.spans import (
    MAX_ATTRIBUTE_VALUE_CHARS,
    RejectReason,
    Span,
    SpanKind,
    SpanRejected,
    bound_attributes,
)

__all__ = [
    "ERROR_TAG",
    "KIND_TAG",
    "RESERVED_TAGS",
    "STATUS_CODE_TAG",
    "STATUS_MESSAGE_TAG",
    "Ref",
    "TagFields",
    "hex_id",
    "make_span",
    "parent_of",
    "split_tags",
    "to_int",
]

KIND_TAG = "span.kind"
ERROR_TAG = "error"
STATUS_CODE_TAG = "otel.status_code"
STATUS_MESSAGE_TAG = "otel.status_description"
# Tags that become Span fields; the writer synthesises them again from those fields.
RESERVED_TAGS = frozenset({KIND_TAG, ERROR_TAG, STATUS_CODE_TAG, STATUS_MESSAGE_TAG})

_HEX = re.compile(r"[0-9a-f]+")
_TRUE = frozenset({"true", "1", "yes"})


def hex_id(value: Any, size: int, what: str) -> str:
    """A Jaeger id as lowercase hex of `size` bytes.

    Jaeger writes ids with `%x`, so older backends drop leading zeros (a 31-char
    trace id is real data); they are padded back, as Jaeger's own parser does.
    """
    if value is None or value == "":
        raise SpanRejected(RejectReason.MISSING_FIELD, f"{what} is missing")
    if not isinstance(value, str):
        raise SpanRejected(RejectReason.BAD_ID, f"{what} is {type(value).__name__}, not hex")
    text = value.lower()
    if len(text) > 2 * size or not _HEX.fullmatch(text):
        raise SpanRejected(RejectReason.BAD_ID, f"{what} {value[:40]!r} is not {size} hex bytes")
    if text.count("0") == len(text):
        raise SpanRejected(RejectReason.BAD_ID, f"{what} is all zeros")
    return text.rjust(2 * size, "0")


def to_int(value: Any, what: str) -> int:
    """An integer field written as a JSON number or a decimal string."""
    if value is None:
        raise SpanRejected(RejectReason.MISSING_FIELD, f"{what} is missing")
    if isinstance(value, bool):
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} is {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise SpanRejected(RejectReason.NAN_DURATION, f"{what} is NaN")
        if math.isinf(value):
            raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} is infinite")
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        return int(value)
    raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} {str(value)[:40]!r} is not an integer")


@dataclass(frozen=True, slots=True)
class Ref:
    """One span reference with ids already normalised (None when unreadable)."""

    ref_type: str
    trace_id: str | None
    span_id: str | None


def parent_of(refs: Iterable[Ref], trace_id: str) -> str | None:
    """Jaeger's `Span.ParentSpanID`: the first same-trace CHILD_OF, else the first FOLLOWS_FROM."""
    follows: str | None = None
    for ref in refs:
        if ref.trace_id != trace_id or ref.span_id is None:
            continue
        kind = ref.ref_type.upper()
        if kind == "CHILD_OF":
            return ref.span_id
        if follows is None and kind == "FOLLOWS_FROM":
            follows = ref.span_id
    return follows


@dataclass(slots=True)
class TagFields:
    """What a span's tags say about the Span's own fields, and the rest as attributes."""

    kind: SpanKind
    error: bool
    status_message: str
    attributes: dict[str, Any]


def split_tags(pairs: Iterable[tuple[str, Any]]) -> TagFields:
    """Reserved tags become fields; an unknown `span.kind` value stays an attribute."""
    kind, error, message = SpanKind.UNSPECIFIED, False, ""
    attrs: list[tuple[str, Any]] = []
    for key, value in pairs:
        if key == KIND_TAG and isinstance(value, str) and value.strip():
            try:
                kind = SpanKind.parse(value.strip())
                continue
            except SpanRejected:
                pass  # e.g. "rpc": not an OTLP kind, but worth keeping as a tag
        elif key == ERROR_TAG:
            error = error or value is True or str(value).strip().lower() in _TRUE
            continue
        elif key == STATUS_CODE_TAG:
            code = str(value).strip().upper()
            error = error or code == "ERROR"
            if code != "OK":  # OK is kept so the writer can say it again; UNSET/ERROR are fields
                continue
        elif key == STATUS_MESSAGE_TAG:
            message = str(value)
            continue
        attrs.append((key, value))
    return TagFields(kind, error, message, bound_attributes(attrs))


def make_span(*, trace_id: str, span_id: str, refs: Iterable[Ref], service: str,
              resource: dict[str, Any], operation: Any, start_ns: int, duration_ns: int,
              tags: Iterable[tuple[str, Any]]) -> Span:
    """The validated `Span` both readers build once their fields are decoded."""
    if not isinstance(operation, str) or not operation:
        raise SpanRejected(RejectReason.MISSING_FIELD, "operationName is missing")
    fields = split_tags(tags)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_of(refs, trace_id),
        service=service,
        operation=operation,
        start_ns=start_ns,
        duration_ns=duration_ns,
        kind=fields.kind,
        error=fields.error,
        status_message=fields.status_message[:MAX_ATTRIBUTE_VALUE_CHARS],
        attributes=fields.attributes,
        resource=dict(resource),
    ).validate()
