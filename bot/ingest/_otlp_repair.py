"""Rescuing protobuf exports that upb refuses because of invalid UTF-8.

upb (the protobuf runtime behind the Python package) rejects the *whole*
message when any `string` field holds invalid UTF-8: `DecodeError: Error parsing
message with type '...ExportTraceServiceRequest': String field had bad UTF-8`.
Answering 400 would drop every good span with it (exporters never retry a 400),
so the body is parsed again with the lenient schema (strings as bytes). Spans
whose name, or whose resource's service.name, is not UTF-8 are rejected as
`invalid_utf8`; every other bad string is repaired with U+FFFD and kept.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from bot.ingest._otlp_common import is_utf8
from bot.ingest._otlp_schema import LENIENT_STRING_FIELDS, LenientRequest
from bot.spans import RejectCounter, RejectReason

__all__ = ["repair_invalid_utf8"]


def _service_name_ok(resource: Any) -> bool:
    for kv in resource.attributes:
        if kv.key == b"service.name":
            return is_utf8(kv.value.string_value)
    return True


def _fix(value: bytes) -> bytes:
    return value.decode("utf-8", "replace").encode("utf-8")


def _repair_strings(message: Any) -> None:
    """Replace invalid UTF-8 in every string field, recursively."""
    for fd, value in message.ListFields():
        if fd.message_type is not None:
            for child in value if fd.is_repeated else (value,):
                _repair_strings(child)
        elif fd.full_name in LENIENT_STRING_FIELDS:
            if fd.is_repeated:
                value[:] = [_fix(v) for v in value]
            elif not is_utf8(value):
                setattr(message, fd.name, _fix(value))


def _drop_bad_spans(request: Any) -> int:
    """Remove spans that cannot be keyed; return how many."""
    dropped = 0
    for rs in request.resource_spans:
        if not _service_name_ok(rs.resource):
            dropped += sum(len(ss.spans) for ss in rs.scope_spans)
            del rs.scope_spans[:]
            continue
        for ss in rs.scope_spans:
            keep = [s for s in ss.spans if is_utf8(s.name)]
            if len(keep) != len(ss.spans):
                dropped += len(ss.spans) - len(keep)
                copies = [type(s).FromString(s.SerializeToString()) for s in keep]
                del ss.spans[:]
                ss.spans.extend(copies)
    return dropped


def repair_invalid_utf8(body: bytes, rejects: RejectCounter) -> bytes | None:
    """A clean re-encoding of `body`, or None when its problem is not (only) UTF-8."""
    try:
        request = LenientRequest.FromString(body)
    except DecodeError:
        return None
    dropped = _drop_bad_spans(request)
    if dropped:
        rejects.add(RejectReason.BAD_UTF8, "span name or service.name is not valid UTF-8", dropped)
    _repair_strings(request)
    return bytes(request.SerializeToString())
