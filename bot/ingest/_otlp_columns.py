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

from bot.ingest._otlp_schema import SpanCols

__all__ = ["SpanBytes", "error_rows", "status_code", "trusted_ids"]

_HEAD = 28  # a span's first bytes: 0a 10 <16-byte trace id> 12 08 <8-byte span id>
_TRACE_ID_TAG = 0x100A  # bytes 0a 10 read little-endian: field 1, 16 bytes
_SPAN_ID_TAG = 0x0812  # 12 08 at offset 18: field 2, 8 bytes
_ERROR_TAIL = 0x0218  # 18 02, Status.code = 2: the span's last field...
_FLAGS_TAG = 0x0185  # ...unless Span.flags (field 16, fixed32: 85 01 + 4 bytes) follows it
_ERROR = 2


@dataclass(frozen=True, slots=True)
class SpanBytes:
    """Every span's encoding back to back (one bytes object, not one per span), with offsets."""

    data: bytes
    buf: np.ndarray  # uint8 view of data
    starts: np.ndarray  # int64 offset of each span in data
    ends: np.ndarray

    @classmethod
    def of(cls, raws: list[bytes]) -> SpanBytes:
        lengths = np.fromiter(map(len, raws), np.int64, len(raws))
        ends = np.cumsum(lengths)
        data = b"".join(raws)
        return cls(data, np.frombuffer(data, np.uint8), ends - lengths, ends)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def raw(self, i: int) -> bytes:
        return self.data[int(self.starts[i]) : int(self.ends[i])]

    def words(self) -> np.ndarray:
        """Little-endian uint64 starting at every byte offset (an unaligned, strided view)."""
        return np.ndarray(shape=(max(len(self.data) - 7, 0),), dtype="<u8", buffer=self.data,
                          strides=(1,))


def trusted_ids(cols: Any, spans: SpanBytes) -> tuple[np.ndarray, np.ndarray] | None:
    """The (n, 16) trace ids and (n, 8) span ids when the merged columns line up with the
    spans, else None."""
    n = len(spans)
    if not (len(cols.trace_id) == len(cols.span_id) == len(cols.name)
            == len(cols.start_time_unix_nano) == len(cols.end_time_unix_nano) == n):
        return None
    starts = spans.starts
    if int((spans.ends - starts).min()) < _HEAD:
        return None
    words = spans.words()
    if not (((words[starts] & 0xFFFF) == _TRACE_ID_TAG) & ((words[starts + 18] & 0xFFFF)
                                                           == _SPAN_ID_TAG)).all():
        return None
    ids = np.empty((n, 2), "<u8")
    ids[:, 0], ids[:, 1] = words[starts + 2], words[starts + 10]
    span_ids = words[starts + 20]
    if not ((ids[:, 0] | ids[:, 1]).all() and span_ids.all()):  # all-zero ids
        return None
    # kind 0..5 and status code 0..2; negative int32 values read as huge unsigned ones
    if ((np.array(cols.kind, np.int32).view(np.uint32) > 5).any()
            or (np.array(cols.status.code, np.int32).view(np.uint32) > 2).any()):
        return None
    if not set(map(len, cols.parent_span_id)) <= {8}:
        return None
    return ids.view(np.uint8), span_ids.view(np.uint8).reshape(n, 8)


def error_rows(spans: SpanBytes, expected: int) -> np.ndarray:
    """Which spans have status ERROR, knowing how many do (from the merged status column).

    An error status is the span's last bytes but for `flags`; the candidates are
    confirmed by parsing them, and if the confirmed count is not `expected` every
    span is parsed.
    """
    n = len(spans)
    error = np.zeros(n, np.bool_)
    if not expected:
        return error
    words, ends = spans.words(), spans.ends
    last = words[ends - 8]  # a span's last 8 bytes, little-endian
    has_flags = ((last >> 16) & 0xFFFF) == _FLAGS_TAG  # 85 01 + 4 bytes of flags
    tail = np.where(has_flags, words[ends - 14], last) >> 48  # the 2 bytes before flags
    for i in np.flatnonzero(tail == _ERROR_TAIL).tolist():
        error[i] = status_code(spans.raw(i)) == _ERROR
    if int(np.count_nonzero(error)) != expected:
        error = np.fromiter((status_code(spans.raw(i)) == _ERROR for i in range(n)), np.bool_, n)
    return error


def status_code(raw: bytes) -> int:
    codes = SpanCols.FromString(raw).status.code
    return int(codes[-1]) if codes else 0
