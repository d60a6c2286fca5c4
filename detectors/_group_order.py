"""Values sorted within groups, fast: the order statistics behind every window's median and p90.

`score_windows` needs, for each (key, window), its log-durations in ascending
order. Sorting by (group, value) with an argsort plus a stable argsort costs two
comparison sorts over every span; here it is one `np.sort` of packed uint64 keys
(group | value quantised to the batch's range | span index), which numpy runs
with SIMD, then the exact values are gathered back by the index bits. The
quantisation is monotone, so only values that fall into the same quantum can come
out of order; those few runs are found and re-sorted exactly. The result is the
same ascending sequence of values per group as a full (group, value) sort.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["dense_groups", "sorted_within_groups"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_VALUE_BITS = 16  # fewer quantisation bits than this: too many collisions, use two sorts
_DENSE_SLACK = 1 << 16  # code ranges up to max(4 n, this) are numbered by a bincount


def dense_groups(code: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct codes ascending, and each element's position among them (its group).

    Equal to np.unique(code, return_inverse=True); a bincount over the code range
    when that range is small next to the data (the usual case: keys x windows).
    """
    lo, hi = int(code.min()), int(code.max())
    if lo >= 0 and hi < max(4 * code.size, _DENSE_SLACK):
        present = np.bincount(code, minlength=hi + 1) > 0
        number = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.int64), number[code]
    codes, group = np.unique(code, return_inverse=True)
    return codes.astype(np.int64), group.astype(np.int64).reshape(-1)


def sorted_within_groups(values: FloatArray, group: IntArray, n_groups: int) -> FloatArray:
    """`values` ordered by (group, value): each group's values ascending, groups in order.

    Groups are 0..n_groups-1 (as from `dense_groups`). NaN or infinite values, a
    range too narrow to scale, or too many groups and spans to leave MIN_VALUE_BITS
    for the value take the two-sort path. Either way the output is the same sequence
    as `values[np.lexsort((values, group))]`.
    """
    n = values.size
    index_bits = max(1, (n - 1).bit_length())
    group_bits = max(1, (n_groups - 1).bit_length())
    value_bits = 64 - index_bits - group_bits
    lo, hi = (float(values.min()), float(values.max())) if n else (0.0, 0.0)
    scale = _scale(hi - lo, value_bits)
    if value_bits < MIN_VALUE_BITS or scale is None:
        return _two_sorts(values, group)
    key = group.astype(np.uint64) << np.uint64(64 - group_bits)
    key |= _quantise(values, lo, scale) << np.uint64(index_bits)
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    out = values[(key & np.uint64((1 << index_bits) - 1)).view(np.int64)]  # < 2^63: same bits
    _resort_collisions(out, key, index_bits)
    return out


def _scale(width: float, bits: int) -> float | None:
    """Factor mapping a range of this width onto 0 .. 2^bits - 2; None if it cannot be done
    in floating point (NaN or infinite bounds, or a range so narrow the factor overflows)."""
    if width == 0.0:
        return 0.0  # one distinct value
    scale = (2.0**bits - 2.0) / width
    return scale if math.isfinite(width) and math.isfinite(scale) and width > 0.0 else None


def _quantise(values: FloatArray, lo: float, scale: float) -> npt.NDArray[np.uint64]:
    """Monotone non-decreasing map of [lo, hi] onto 0 .. 2^bits - 2 (the range given to _scale).

    Subtraction, multiplication and the cast each round monotonically, so a <= b
    implies q(a) <= q(b): order between different quanta is exact.
    """
    q = values - lo
    q *= scale
    return q.astype(np.uint64)


def _resort_collisions(out: FloatArray, key: npt.NDArray[np.uint64], index_bits: int) -> None:
    """Sort, in place, every run of equal (group, quantum) prefix that came out of order.

    Values sharing a quantum were ordered by span index, not value; where an
    adjacent pair of the same run decreases, that whole run is sorted exactly.
    (Most decreasing pairs are group boundaries, which are in order by group.)
    """
    shift = np.uint64(index_bits)
    down = np.flatnonzero(out[1:] < out[:-1])
    bad = down[(key[down] >> shift) == (key[down + 1] >> shift)]
    if bad.size == 0:
        return
    runs = np.unique(key[bad] >> shift)
    starts = np.searchsorted(key, runs << shift, side="left")
    stops = np.searchsorted(key, (runs + np.uint64(1)) << shift, side="left")
    lengths = stops - starts
    run_of = np.repeat(np.arange(runs.size), lengths)
    pos = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    order = np.lexsort((out[pos], run_of))
    out[pos] = out[pos][order]


def _two_sorts(values: FloatArray, group: IntArray) -> FloatArray:
    """The general path: argsort by value (NaN last), then a stable sort by group."""
    by_value = np.argsort(values)
    order = by_value[np.argsort(group[by_value], kind="stable")]
    return values[order]
