"""Values sorted within groups, fast: the order statistics behind every window's median and p90.

`score_windows` needs, for each (key, window), its log-durations in ascending order.
Sorting by (group, value) with an argsort plus a stable argsort costs two
comparison sorts over every span; here it is one `np.sort` of packed uint64 keys
(group | value quantised over the batch's range | span index), which numpy runs
with SIMD; the exact values of the positions asked for are then gathered back by
the index bits. The quantisation is monotone, so only values that fall into the
same quantum can come out of order; a requested position in such a run is
resolved by sorting that run exactly. The result is what a full (group, value)
sort would hold at those positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHUNK",
    "GroupOrder",
    "chunks",
    "dense_groups",
    "ordered_bits",
    "sorted_within_groups",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint64]

CHUNK = 1 << 15  # elements per cache-sized step of the element-wise passes
MIN_VALUE_BITS = 16  # fewer quantisation bits than this: too many collisions, use two sorts
_DENSE_SLACK = 1 << 16  # code ranges up to max(4 n, this) are numbered by a bincount


def dense_groups(code: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Distinct codes ascending, each element's position among them (its group), group sizes.

    Equal to np.unique(code, return_inverse=True, return_counts=True); one bincount
    over the code range when that range is small next to the data (the usual case:
    keys x windows of one batch).
    """
    lo, hi = int(code.min()), int(code.max())
    if lo >= 0 and hi < max(4 * code.size, _DENSE_SLACK):
        per_code = np.bincount(code, minlength=hi + 1)
        present = per_code > 0
        number = np.cumsum(present, dtype=np.int64)
        number -= 1
        codes = np.flatnonzero(present).astype(np.int64)
        return codes, number[code], per_code[codes].astype(np.int64)
    codes, group, counts = np.unique(code, return_inverse=True, return_counts=True)
    return codes.astype(np.int64), group.astype(np.int64).reshape(-1), counts.astype(np.int64)


def chunks(n: int) -> Iterator[slice]:
    """Consecutive slices of CHUNK elements covering range(n).

    Several element-wise passes over one chunk stay in the CPU cache; the same
    passes over whole arrays of a million spans each go to memory, which is 3x
    slower on a machine whose memory bandwidth other processes share.
    """
    return (slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK))


@dataclass(frozen=True, slots=True)
class GroupOrder:
    """`values` ordered by (group, value), read at chosen positions only.

    A window's quantiles need two or four order statistics, not its whole sorted
    sequence, so after the one sort only the requested positions are gathered back
    and, where a position shares its quantum with a neighbour, resolved exactly.
    """

    values: FloatArray
    key: UIntArray  # sorted packed keys (group | quantum | index); empty on the two-sort path
    index_bits: int
    two_sorts: FloatArray | None  # the whole sorted sequence, when the packed sort was not used
    # values[i] for an index array i, where the values were never stored (they are cheaper
    # to compute again for the few positions read than to write and read back in full)
    value_of: Callable[[IntArray], FloatArray] | None = None

    @classmethod
    def of(
        cls, values: FloatArray, group: IntArray, n_groups: int, spare: IntArray | None = None
    ) -> GroupOrder:
        """Groups are 0..n_groups-1 (as from `dense_groups`). NaN or infinite values, a
        range too narrow to scale, or too many groups and spans to leave MIN_VALUE_BITS
        for the value take the two-sort path. `spare`: an int64 array of the same size
        the caller no longer needs, overwritten with the keys (a fresh 8 MB array per
        million spans costs page faults on every call)."""
        n = values.size
        index_bits = max(1, (n - 1).bit_length())
        group_bits = max(1, (n_groups - 1).bit_length())
        value_bits = 64 - index_bits - group_bits
        quantise = _Quantiser.fit(values, value_bits) if value_bits >= MIN_VALUE_BITS else None
        if quantise is None:
            return cls(values, np.zeros(0, np.uint64), index_bits, _two_sorts(values, group))
        key = np.empty(n, np.uint64) if spare is None else spare.view(np.uint64)
        group_shift, index_shift = np.uint64(64 - group_bits), np.uint64(index_bits)
        for part in chunks(n):
            k = group[part].astype(np.uint64)
            k <<= group_shift
            q = quantise(values[part])
            q <<= index_shift
            k |= q
            k |= np.arange(part.start, part.stop, dtype=np.uint64)
            key[part] = k
        key.sort()
        return cls(values, key, index_bits, None)

    def at(self, positions: IntArray, width: int = 1) -> FloatArray:
        """The values at positions + j of the (group, value) order, exactly: row j of
        the result, for j < width (a position past the end reads the last value).

        A position alone in its quantum holds the right value: the quantiser is
        monotone, so everything before it in the group is strictly smaller and
        everything after strictly larger. Where neighbours share the quantum (their
        order is by span index), that run is sorted by value and read at the offset.
        One gather reads each position's keys with a neighbour on either side: a
        width of 2 reads a quantile's two order statistics from four keys, not six.
        """
        size = self.key.size if self.two_sorts is None else self.two_sorts.size
        rows = positions + np.arange(-1, width + 1)[:, None]
        has_before, has_after = rows[:-2] >= 0, rows[2:] < size
        np.clip(rows, 0, size - 1, out=rows)
        mid = rows[1:-1]
        if self.two_sorts is not None:
            out: FloatArray = self.two_sorts[mid]
            return out if width > 1 else out[0]
        shift, mask = np.uint64(self.index_bits), np.uint64((1 << self.index_bits) - 1)
        keys = self.key[rows]
        index = np.bitwise_and(keys[1:-1], mask).view(np.int64)
        out = self._values(index.ravel()).reshape(width, -1)
        prefix = keys >> shift
        # past the end, a row and its neighbour are both the last key: resolved, so exact
        shared = (has_before & (prefix[1:-1] == prefix[:-2])) | (
            has_after & (prefix[1:-1] == prefix[2:])
        )
        amb = np.flatnonzero(shared)
        if amb.size:
            out.ravel()[amb] = self._resolve(mid.ravel()[amb], prefix[1:-1].ravel()[amb])
        return out if width > 1 else out[0]

    def _resolve(self, positions: IntArray, prefix: UIntArray) -> FloatArray:
        """Values at positions whose quantum (prefix) other keys share: each run sorted."""
        key, shift = self.key, np.uint64(self.index_bits)
        mask = np.uint64((1 << self.index_bits) - 1)
        runs, which = np.unique(prefix, return_inverse=True)
        starts = np.searchsorted(key, runs << shift, side="left")
        stops = np.searchsorted(key, (runs << shift) | mask, side="right")
        lengths = stops - starts
        first = np.cumsum(lengths) - lengths  # where each run starts once concatenated
        members = np.repeat(starts - first, lengths) + np.arange(lengths.sum())
        vals = self._values(np.bitwise_and(key[members], mask).view(np.int64))
        vals = vals[np.lexsort((vals, np.repeat(np.arange(runs.size), lengths)))]
        resolved: FloatArray = vals[first[which] + positions - starts[which]]
        return resolved

    def _values(self, index: IntArray) -> FloatArray:
        return self.values[index] if self.value_of is None else self.value_of(index)


def sorted_within_groups(values: FloatArray, group: IntArray, n_groups: int) -> FloatArray:
    """`values` ordered by (group, value): the same sequence as
    `values[np.lexsort((values, group))]`, through `GroupOrder`."""
    return GroupOrder.of(values, group, n_groups).at(np.arange(values.size))


@dataclass(frozen=True, slots=True)
class _Quantiser:
    """A monotone non-decreasing map of the batch's values onto 0 .. 2^bits - 1.

    Positive values: their IEEE bit patterns, which order like the values and are
    nearly logarithmic (even relative resolution across decades), shifted down.
    Otherwise the range is scaled linearly; subtraction, multiplication and the
    cast each round monotonically, so a <= b still implies q(a) <= q(b).
    """

    lo: float
    scale: float  # linear path
    first_bits: int  # bit-pattern path: lo's bits, and the shift that fits the range
    shift: int

    @classmethod
    def fit(cls, values: FloatArray, bits: int) -> _Quantiser | None:
        """None where there is no such map: NaN or infinite values, or a range that
        overflows floating point (too wide, or so narrow the scale factor does)."""
        lo, hi = float(values.min()), float(values.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return None
        if lo > 0.0:
            first = int(np.float64(lo).view(np.int64))
            span = int(np.float64(hi).view(np.int64)) - first
            return cls(lo, math.nan, first, max(0, span.bit_length() - bits))
        width = hi - lo
        scale = (2.0**bits - 2.0) / width if width > 0.0 else 0.0
        if not (math.isfinite(width) and math.isfinite(scale)):
            return None
        return cls(lo, scale, -1, 0)

    def __call__(self, values: FloatArray) -> UIntArray:
        if self.first_bits >= 0:
            q = values.view(np.int64) - self.first_bits
            q >>= self.shift
            return q.view(np.uint64)
        f = values - self.lo
        f *= self.scale
        return f.astype(np.uint64)


_SIGN = np.int64(-(1 << 63))


def ordered_bits(values: FloatArray, bits: int) -> UIntArray:
    """The top `bits` of a map of float64 onto uint64 that keeps their order: a < b gives
    q(a) <= q(b). Needs no range of the batch, so keys can be packed in the pass that
    computes the values. NaN has no place in it (callers check); -0.0 is folded onto
    +0.0 first, so equal values always share a quantum, as a sort sees them.

    IEEE total order: a non-negative float's bit pattern with the sign bit set, a
    negative float's pattern inverted.
    """
    b = (values + 0.0).view(np.int64)  # + 0.0: -0.0 becomes +0.0, a new array either way
    flip = b >> 63  # arithmetic: all ones for negative values
    flip |= _SIGN
    b ^= flip
    q = b.view(np.uint64)
    q >>= np.uint64(64 - bits)
    return q


def _two_sorts(values: FloatArray, group: IntArray) -> FloatArray:
    """The general path: argsort by value (NaN last), then a stable sort by group."""
    by_value = np.argsort(values)
    order = by_value[np.argsort(group[by_value], kind="stable")]
    return values[order]
