"""The sort keys of `score_windows`: (key, window) code | raw-duration quantum | span index.

Built in one pass over the spans, a cache-sized chunk at a time, then sorted once
(`detectors._group_order` explains the packed sort). The quantum comes from the raw
duration, not its transformed value: every transform here (log, log1p, identity,
each with its clamp) is non-decreasing, so raw order is transformed order, and
the transformed values are computed again only for the few positions read.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from detectors import _group_order
from detectors._group_order import GroupOrder, chunks, ordered_bits

__all__ = ["packed_window_order"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint64]
ValuesAt = Callable[[IntArray], FloatArray]  # transformed durations of the spans at indices

_INF_BITS = int(np.float64(np.inf).view(np.uint64))  # above it: NaN; above 2**63: sign set


def packed_window_order(
    d: FloatArray, k: IntArray, start: IntArray, window_ns: int, first: int, n_windows: int,
    n_keys: int, values_at: ValuesAt,
) -> tuple[IntArray, IntArray, IntArray, GroupOrder] | None:
    """Codes present, each span's group, group sizes, and the order within groups.

    Codes are key * n_windows + window - first, in the top bits of the sort key
    (same order as the group number; absent codes hold no spans). None (the caller
    takes the general path) where a key index lies outside 0..n_keys-1, a duration
    is NaN, the code range is too wide (more than max(4 n, 65536) codes), or the
    bits left for the value are fewer than MIN_VALUE_BITS.
    """
    n, bound = d.size, n_keys * n_windows
    index_bits, code_bits = max(1, (n - 1).bit_length()), max(1, (bound - 1).bit_length())
    value_bits = 64 - index_bits - code_bits
    if value_bits < _group_order.MIN_VALUE_BITS or bound > max(4 * n, 1 << 16):
        return None
    code, key = np.empty(n, np.int64), np.empty(n, np.uint64)
    packer = _ChunkPacker(
        start, k, d, window_ns, first * window_ns, n_windows, n_keys, code_bits, index_bits
    )
    for part in chunks(n):
        if not packer.pack(part, code[part], key[part]):
            return None
    key.sort()
    codes, group, counts = _numbering(key, code, bound, packer.code_shift)
    return codes, group, counts, GroupOrder(np.zeros(0), key, index_bits, None, values_at)


class _ChunkPacker:
    """Writes one chunk's codes and sort keys; its scratch arrays are one chunk long.

    Every step is one numpy call into a preallocated buffer while the chunk is in
    cache: the pass is bound by how many such calls each span goes through.
    """

    def __init__(
        self, start: IntArray, k: IntArray, d: FloatArray, window_ns: int, base: int,
        n_windows: int, n_keys: int, code_bits: int, index_bits: int,
    ) -> None:
        self.start, self.k, self.d = start, k, d
        self.window_ns, self.base = np.uint64(window_ns), base
        self.n_windows, self.n_keys = n_windows, n_keys
        self.value_bits = 64 - code_bits - index_bits
        self.code_shift = np.uint64(64 - code_bits)
        self.index_shift = np.uint64(index_bits)
        self.value_shift = np.uint64(64 - self.value_bits)
        # ordered_bits of a float with the sign bit clear: this bit | its pattern >> value_shift
        self.positive_bit = 1 << (self.value_bits - 1 + index_bits)
        step = _group_order.CHUNK
        self.index = np.arange(step, dtype=np.uint64)
        self.low, self.high = np.empty(step, np.uint64), np.empty(step, np.uint64)

    def pack(self, part: slice, code: IntArray, key: UIntArray) -> bool:
        """code = (key, window) code, key = code | quantum | index; False: general path."""
        m = part.stop - part.start
        top, low = self.high[:m], self.low[:m]
        if not self._codes(part, code, low):
            return False
        np.left_shift(code.view(np.uint64), self.code_shift, out=top)
        offset = self._quanta(part, key)
        if offset is None:
            return False
        np.add(self.index[:m], np.uint64(part.start + offset), out=low)
        top |= low
        key |= top
        return True

    def _codes(self, part: slice, code: IntArray, scratch: UIntArray) -> bool:
        """key * n_windows + window - first; False where a key index is outside the table."""
        k = self.k[part]
        if k.view(np.uint64).max() >= self.n_keys:  # a negative index wraps past the table
            return False
        np.subtract(self.start[part], self.base, out=scratch.view(np.int64))
        # unsigned: the offsets from the first window are >= 0, and uint64 division is
        # cheaper than int64 floor division, which corrects for negative quotients
        np.floor_divide(scratch, self.window_ns, out=scratch)
        np.multiply(k, self.n_windows, out=code)
        code += scratch.view(np.int64)
        return True

    def _quanta(self, part: slice, out: UIntArray) -> int | None:
        """ordered_bits of the raw durations, shifted over the index bits, into `out`.

        Returns what the index term adds (the top value bit where this chunk left it
        out), or None for a NaN. A chunk whose patterns all lie at or below +inf's
        (no sign bit, no NaN) takes one shift instead of ordered_bits' five steps.
        """
        x = self.d[part]
        bits = x.view(np.uint64)
        if int(bits.max()) <= _INF_BITS:
            np.right_shift(bits, self.value_shift, out=out)
            out <<= self.index_shift
            return self.positive_bit
        if np.isnan(x).any():
            return None
        np.left_shift(ordered_bits(x, self.value_bits), self.index_shift, out=out)
        return 0


def _numbering(
    key: UIntArray, code: IntArray, bound: int, code_shift: np.uint64
) -> tuple[IntArray, IntArray, IntArray]:
    """Codes present, each span's group number (in `code`'s memory) and group sizes.

    Sizes from where each code starts in the sorted keys (one binary search per
    possible code, not a count per span); where every code is present the code
    is its own group number and the spans need no second pass.
    """
    first = np.searchsorted(key, np.arange(bound, dtype=np.uint64) << code_shift)
    per_code = np.diff(first, append=key.size).astype(np.int64)
    present = per_code > 0
    codes = np.flatnonzero(present).astype(np.int64)
    if codes.size == bound:
        return codes, code, per_code
    number = np.cumsum(present, dtype=np.int64)
    number -= 1
    group = np.take(number, code, out=code, mode="clip")  # in place: codes are in range
    return codes, group, per_code[codes]
