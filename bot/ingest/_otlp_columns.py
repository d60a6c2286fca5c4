"""Vectorised checks that let the merged upb columns stand for a request's spans.

`SpanBytes` is every span's encoding, concatenated, with offsets. Encoders write
fields in number order, so a well-formed span starts with its 16-byte trace id
(field 1) and 8-byte span id (field 2); checking that for all spans at once, plus
the column lengths, proves each span has exactly one of each, so the ids can be
read straight from the bytes. Anything unusual returns None, and the caller
decodes span by span: an odd encoder costs time, never correctness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bot.ingest._otlp_schema import SpanCols

__all__ = ["SpanBytes", "error_rows", "status_code", "trusted_trace_ids"]

_HEAD = 28  # a span's first bytes: 0a 10 <16-byte trace id> 12 08 <8-byte span id>
_TAGS = [0, 1, 18, 19]
_TAG_BYTES = np.array([0x0A, 0x10, 0x12, 0x08], np.uint8)
_ERROR_TAIL = (0x18, 0x02)  # Status.code = 2: the span's last field...
_FLAGS_TAG = (0x85, 0x01)  # ...unless Span.flags (field 16, fixed32: tag + 4 bytes) follows it
_ERROR = 2


@dataclass(frozen=True, slots=True)
class SpanBytes:
    raws: list[bytes]
    buf: np.ndarray  # uint8, every span's bytes back to back
    starts: np.ndarray  # int64 offset of each span in buf
    ends: np.ndarray

    @classmethod
    def of(cls, raws: list[bytes]) -> SpanBytes:
        lengths = np.array(list(map(len, raws)), np.int64)
        ends = np.cumsum(lengths)
        return cls(raws, np.frombuffer(b"".join(raws), np.uint8), ends - lengths, ends)


def trusted_trace_ids(cols: Any, spans: SpanBytes) -> np.ndarray | None:
    """The (n, 16) trace ids when the merged columns line up with the spans, else None."""
    n = len(spans.raws)
    if not (len(cols.trace_id) == len(cols.span_id) == len(cols.name)
            == len(cols.start_time_unix_nano) == len(cols.end_time_unix_nano) == n):
        return None
    if int((spans.ends - spans.starts).min()) < _HEAD:
        return None
    heads = sliding_window_view(spans.buf, _HEAD)[spans.starts]  # (n, 28), no index arrays
    if not (heads[:, _TAGS] == _TAG_BYTES).all():
        return None
    trace_ids: np.ndarray = heads[:, 2:18]
    span_ids = heads[:, 20:28]
    if not (trace_ids.any(axis=1).all() and span_ids.any(axis=1).all()):  # all-zero ids
        return None
    kinds, codes = np.array(cols.kind, np.int64), np.array(cols.status.code, np.int64)
    if (kinds.size and not 0 <= kinds.min() <= kinds.max() <= 5) or (
            codes.size and not 0 <= codes.min() <= codes.max() <= 2):
        return None
    if not set(map(len, cols.parent_span_id)) <= {8}:
        return None
    return trace_ids


def error_rows(spans: SpanBytes, expected: int) -> np.ndarray:
    """Which spans have status ERROR, knowing how many do (from the merged status column).

    An error status is the span's last bytes but for `flags`; the candidates are
    confirmed by parsing them, and if the confirmed count is not `expected` every
    span is parsed.
    """
    n = len(spans.raws)
    error = np.zeros(n, np.bool_)
    if not expected:
        return error
    buf, ends = spans.buf, spans.ends.copy()
    has_flags = (buf[ends - 6] == _FLAGS_TAG[0]) & (buf[ends - 5] == _FLAGS_TAG[1])
    ends -= 6 * has_flags
    tail = (buf[ends - 2] == _ERROR_TAIL[0]) & (buf[ends - 1] == _ERROR_TAIL[1])
    for i in np.flatnonzero(tail).tolist():
        error[i] = status_code(spans.raws[i]) == _ERROR
    if int(np.count_nonzero(error)) != expected:
        error = np.fromiter((status_code(r) == _ERROR for r in spans.raws), np.bool_, n)
    return error


def status_code(raw: bytes) -> int:
    codes = SpanCols.FromString(raw).status.code
    return int(codes[-1]) if codes else 0
