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
_TAGS = ((0, 0x0A), (1, 0x10), (18, 0x12), (19, 0x08))  # (offset in the span, byte)
_ERROR_TAIL = (0x18, 0x02)  # Status.code = 2: the span's last field...
_FLAGS_TAG = (0x85, 0x01)  # ...unless Span.flags (field 16, fixed32: tag + 4 bytes) follows it
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
    starts, buf = spans.starts, spans.buf
    if int((spans.ends - starts).min()) < _HEAD:
        return None
    if not all((buf[starts + at] == tag).all() for at, tag in _TAGS):
        return None
    words = spans.words()
    ids = np.empty((n, 2), "<u8")
    ids[:, 0], ids[:, 1] = words[starts + 2], words[starts + 10]
    span_ids = words[starts + 20]
    if not ((ids[:, 0] | ids[:, 1]).all() and span_ids.all()):  # all-zero ids
        return None
    kinds, codes = np.array(cols.kind, np.int64), np.array(cols.status.code, np.int64)
    if (kinds.size and not 0 <= kinds.min() <= kinds.max() <= 5) or (
            codes.size and not 0 <= codes.min() <= codes.max() <= 2):
        return None
    if not set(map(len, cols.parent_span_id)) <= {8}:
        return None
    return ids.view(np.uint8), span_ids.astype("<u8").view(np.uint8).reshape(n, 8)


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
    buf, ends = spans.buf, spans.ends.copy()
    has_flags = (buf[ends - 6] == _FLAGS_TAG[0]) & (buf[ends - 5] == _FLAGS_TAG[1])
    ends -= 6 * has_flags
    tail = (buf[ends - 2] == _ERROR_TAIL[0]) & (buf[ends - 1] == _ERROR_TAIL[1])
    for i in np.flatnonzero(tail).tolist():
        error[i] = status_code(spans.raw(i)) == _ERROR
    if int(np.count_nonzero(error)) != expected:
        error = np.fromiter((status_code(spans.raw(i)) == _ERROR for i in range(n)), np.bool_, n)
    return error


def status_code(raw: bytes) -> int:
    codes = SpanCols.FromString(raw).status.code
    return int(codes[-1]) if codes else 0
