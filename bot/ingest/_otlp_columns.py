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
from functools import cache
from typing import Any

import numpy as np

from bot.ingest._otlp_schema import SpanCols, StatusOnly

__all__ = ["Ids", "Nameless", "SpanBytes", "error_rows", "name_groups", "status_code",
           "trusted_ids"]

_HEAD = 28  # a span's first bytes: 0a 10 <16-byte trace id> 12 08 <8-byte span id>
_PREFIX = _HEAD + 12  # then maybe 22 08 <8-byte parent id>, then 2a <name length>
_PAD = bytes(_PREFIX)  # after the last span, so every span has _PREFIX bytes to read
_SLOT_BITS = 14
_DESCENDING = np.arange(1 << 16, dtype=np.intp)[::-1].copy()  # _by_table's row numbers
_SLOT_SHIFT = np.uint64(64 - _SLOT_BITS)
_TAG_AT = [0, 1, 18, 19]
_TAG_BYTES = np.array([0x0A, 0x10, 0x12, 0x08], np.uint8)  # trace id: 1, 16 B; span id: 2, 8 B
_PARENT_PAIR, _NAME_TAG = 0x0822, 0x2A  # 22 08: field 4, 8 bytes; 2a: field 5
_MAX_NAME_BYTES = 127  # one-byte length; longer names take the name column
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MULTIPLIERS = np.random.default_rng(0x07E1).integers(1, 2**63, 16, np.uint64) | np.uint64(1)
_ERROR_TAIL = 0x0218  # 18 02, Status.code = 2: the span's last field...
_FLAGS_TAG = 0x0185  # ...unless Span.flags (field 16, fixed32: 85 01 + 4 bytes) follows it
_ERROR = 2
_SENTINEL = 127  # not a status code (the column checks refuse codes above 2)
_SENTINEL_STATUS = bytes((0x7A, 0x02, 0x18, _SENTINEL))  # Span.status = {code: 127}


@dataclass(frozen=True, slots=True)
class SpanBytes:
    """Every span's encoding back to back (one bytes object, not one per span), with offsets.

    `data` ends with `_PAD`, so fixed-width reads at any span's start stay in the buffer.
    """

    data: bytes
    starts: np.ndarray  # int64 offset of each span in data
    ends: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, raws: list[bytes]) -> SpanBytes:
        lengths = np.fromiter(map(len, raws), np.int64, len(raws))
        ends = np.cumsum(lengths)
        raws.append(_PAD)
        data = b"".join(raws)
        raws.pop()
        return cls(data, ends - lengths, ends, lengths)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def raw(self, i: int) -> bytes:
        return self.data[int(self.starts[i]) : int(self.ends[i])]

    def records(self, width: int) -> np.ndarray:
        """`width`-byte records starting at every byte offset (gathering them copies once)."""
        return np.ndarray(shape=(max(len(self.data) - width + 1, 0),), dtype=f"V{width}",
                          buffer=self.data, strides=(1,))



class Nameless(Exception):
    """A span has no name, though the name column has one per span: decode span by span."""


@dataclass(frozen=True, slots=True)
class Ids:
    """What `trusted_ids` read from every span's first `_PREFIX` bytes (one gather)."""

    trace_ids: np.ndarray  # (n, 16) uint8
    span_ids: np.ndarray  # (n, 8) uint8
    prefixes: np.ndarray  # (n, _PREFIX) uint8: for `name_groups`


def trusted_ids(cols: Any, spans: SpanBytes) -> Ids | None:
    """The trace and span ids when the merged columns line up with the spans, else None.

    Parent ids are the caller's to check (`name_groups` counts them).
    """
    n = len(spans)
    if not (len(cols.trace_id) == len(cols.span_id) == len(cols.name)
            == len(cols.start_time_unix_nano) == len(cols.end_time_unix_nano) == n):
        return None
    starts = spans.starts
    if int(spans.lengths.min()) < _HEAD:
        return None
    # past a span's end these bytes are the next span's or `SpanBytes` padding
    prefixes = spans.records(_PREFIX)[starts].view(np.uint8).reshape(n, _PREFIX)
    if not (prefixes[:, _TAG_AT] == _TAG_BYTES).all():
        return None
    trace_ids = _copy_bytes(prefixes, 2, 16)
    span_ids = _copy_bytes(prefixes, 20, 8)
    halves = trace_ids.view("<u8")
    if not ((halves[:, 0] | halves[:, 1]).all() and span_ids.view("<u8").all()):  # all-zero ids
        return None
    # kind 0..5 and status code 0..2; negative int32 values read as huge unsigned ones
    if ((np.array(cols.kind, np.int32).view(np.uint32) > 5).any()
            or (np.array(cols.status.code, np.int32).view(np.uint32) > 2).any()):
        return None
    return Ids(trace_ids, span_ids, prefixes)  # parent ids: see name_groups


def _copy_bytes(rows: np.ndarray, at: int, width: int) -> np.ndarray:
    """Bytes [at, at + width) of every row, as a new (n, width) array: one record per row
    is numpy's fast path, a 2-d slice copy is not."""
    n, stride = rows.shape
    records = np.ndarray((n,), f"V{width}", rows, at, (stride,))
    return records.copy().view(np.uint8).reshape(n, width)


def name_groups(spans: SpanBytes, scope_of: np.ndarray, prefixes: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, list[bytes], int] | None:
    """Rows grouped by (scope, span name) straight from the bytes, for `trusted_ids` requests.

    Returns (a representative row of each row's group, the representatives in row order,
    their name bytes, how many spans have an 8-byte parent id right after the head), or
    None when a span is laid out otherwise (trace_state, an empty or long name, a name
    past the span's end), and the caller reads the name column instead. Raises `Nameless`
    when a span ends where its name would start: it has no name, and the name column
    cannot be trusted (its count matches only if another span has two). After the head,
    encoders write the parent id (if any), then the name; with one name per span (the
    column count), the name found there is the span's. Every parent id found here is in
    the parent column, so when the column is no longer than that count, every parent id
    is 8 bytes. Groups come from a hash of the name bytes and are then checked byte for
    byte, so they are exact. Few, whole-column numpy calls: each costs microseconds.
    """
    n = len(spans)
    pairs = prefixes.view("<u2")  # byte pairs: (tag, length) at _HEAD and _HEAD + 10
    has_parent = pairs[:, _HEAD // 2] == _PARENT_PAIR  # else no parent, or not 8 bytes: None
    offset = np.where(has_parent, _HEAD + 12, _HEAD + 2)  # of the name's first byte
    tag_length = np.where(has_parent, pairs[:, _HEAD // 2 + 5], pairs[:, _HEAD // 2])
    length = tag_length >> 8
    if not (offset - 2 < spans.lengths).all():
        raise Nameless  # a span ends right after its head or parent id
    # the name tag; 1 to 127 bytes (one-byte length: 0 wraps around); within the span
    if not (((tag_length & 0xFF) == _NAME_TAG) & (length - 1 < _MAX_NAME_BYTES)
            & (offset + length <= spans.lengths)).all():
        return None
    n_words = -(-int(length.max()) // 8)
    width = 8 * n_words
    first_byte = spans.starts + offset
    data = spans.data
    if int(first_byte.max()) + width > len(data):  # a short last span: read past its end
        data += bytes(width)
    records = np.ndarray(shape=(len(data) - width + 1,), dtype=f"V{width}", buffer=data,
                         strides=(1,))
    rows = records[first_byte]  # 1-d gathers of whole records: numpy's fast path
    names = rows.view("<u8").reshape(n, n_words)
    names &= _name_masks(n_words)[length].view("<u8").reshape(n, n_words)  # zero past names
    key = scope_of.astype(np.uint64) << np.uint64(8) | length  # scope and length, exact
    h = names @ _MULTIPLIERS[:n_words] + key * _MIX
    for grouping in (_by_table, _by_sort):
        rep, firsts = grouping(h)
        if (np.equal(rows[rep].view("<u8"), names.ravel()).all()
                and (key[rep] == key).all()):
            break
    else:
        return None  # a hash collision: never wrong, only slower
    starts, lengths = first_byte[firsts].tolist(), length[firsts].tolist()
    names_bytes = [data[a : a + k] for a, k in zip(starts, lengths, strict=True)]
    return rep, firsts, names_bytes, int(np.count_nonzero(has_parent))


def _by_table(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a row of each row's group, those rows in order) for groups of equal hashes, through
    a table on the hash's top bits. Hashes sharing a slot share a group: the caller checks."""
    n = h.shape[0]
    slot = h >> _SLOT_SHIFT
    table = np.empty(1 << _SLOT_BITS, np.intp)
    rows = _DESCENDING[-n:] if n <= _DESCENDING.shape[0] else np.arange(n - 1, -1, -1)
    table[slot[::-1]] = rows  # any row of the group works; usually the first
    rep = table[slot]
    is_rep = np.zeros(n, np.bool_)
    is_rep[rep] = True
    return rep, np.flatnonzero(is_rep)


def _by_sort(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_by_table` through a stable sort: exact groups of equal hashes, first rows."""
    n = h.shape[0]
    order = np.argsort(h, kind="stable")
    ordered = h[order]
    new = np.empty(n, np.bool_)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    firsts = order[new]  # each group's first row: the sort is stable
    group = np.empty(n, np.intp)
    group[order] = np.cumsum(new) - 1
    rep = firsts[group]
    return rep, np.sort(firsts)


@cache
def _name_masks(n_words: int) -> np.ndarray:
    """For each name length, the bytes of `n_words` 8-byte words it covers, as one record."""
    masks = [[(1 << 8 * min(max(length - 8 * k, 0), 8)) - 1 for k in range(n_words)]
             for length in range(_MAX_NAME_BYTES + 1)]
    return np.array(masks, np.uint64).view(f"V{8 * n_words}").ravel()


def error_rows(spans: SpanBytes, expected: int) -> np.ndarray:
    """Which spans have status ERROR, knowing how many do (from the merged status column),
    for `trusted_ids` requests (every span at least `_HEAD` bytes, every code at most 2).

    An error status is the span's last bytes but for `flags`; the candidates are
    confirmed by parsing them (all in one message), and if the confirmed count is not
    `expected` every span is parsed.
    """
    n = len(spans)
    error = np.zeros(n, np.bool_)
    if not expected:
        return error
    pairs = spans.records(8)[spans.ends - 8].view("<u2")  # last 8 bytes: 4 byte pairs
    has_flags = pairs[1::4] == _FLAGS_TAG  # 85 01 + 4 bytes of flags
    tail = np.where(has_flags, pairs[0::4], pairs[3::4])  # the 2 bytes before flags
    candidates = np.flatnonzero(tail == _ERROR_TAIL)
    error[candidates] = _status_codes(spans, candidates.tolist()) == _ERROR
    if int(np.count_nonzero(error)) != expected:
        error = np.fromiter((status_code(spans.raw(i)) == _ERROR for i in range(n)), np.bool_, n)
    return error


def _status_codes(spans: SpanBytes, rows: list[int]) -> np.ndarray:
    """The status code of the given spans, in one parse of them all, back to back with a
    sentinel status between them: parsed as one `StatusOnly` (a merge), every status code
    written lands in one list in wire order, and a span's code is the last one before the
    next sentinel (none: 0). The caller has checked that no code is the sentinel's; if one
    is after all, each span is parsed alone."""
    data, starts, ends = spans.data, spans.starts, spans.ends
    parts = [_SENTINEL_STATUS]
    for a, b in zip(starts[rows].tolist(), ends[rows].tolist(), strict=True):
        parts += (data[a:b], _SENTINEL_STATUS)
    codes = np.array(StatusOnly.FromString(b"".join(parts)).status.code, np.int64)
    marks = np.flatnonzero(codes == _SENTINEL)
    if marks.shape[0] != len(rows) + 1:
        return np.array([status_code(spans.raw(i)) for i in rows], np.int64)
    return np.where(np.diff(marks) > 1, codes[marks[1:] - 1], 0)


def status_code(raw: bytes) -> int:
    codes = SpanCols.FromString(raw).status.code
    return int(codes[-1]) if codes else 0
