"""Per-(key, hour) aggregate deltas kept as dense numpy columns, folded a whole batch at a time.

A batch is sorted once by (key, hour); every statistic of `LatencyAggregate` is
then one `reduceat` (or one `bincount` for the histograms) over all its groups,
and added into the pending rows of those groups with fancy indexing. Python
work per batch is per group, never per span. `take()` turns the pending rows
back into `LatencyAggregate`s for the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.aggregate import N_BINS, LatencyAggregate, bin_index

__all__ = ["Deltas", "Groups"]

_MIN_LOG_MS = 1e-6  # as LatencyAggregate.add


@dataclass(frozen=True, slots=True)
class Groups:
    """Rows of a batch grouped by (key index, hour): `order[bounds[g]:bounds[g+1]]` is group g."""

    order: np.ndarray  # row indices, sorted by (key, hour), stable
    bounds: np.ndarray  # G + 1 offsets into order
    keys: np.ndarray  # key index of each group
    hours: np.ndarray  # UTC hour (start // HOUR_NS) of each group

    @classmethod
    def of(cls, key_idx: np.ndarray, hours: np.ndarray) -> Groups:
        low = int(hours.min())
        width = int(hours.max()) - low + 1
        code = key_idx * width + (hours - low)
        if int(code.max()) < 1 << 16:
            code = code.astype(np.uint16)  # numpy's stable sort is a radix sort for 16 bits
        order = np.argsort(code, kind="stable")
        sorted_code = code[order]
        cuts = np.flatnonzero(sorted_code[1:] != sorted_code[:-1]) + 1
        bounds = np.concatenate(([0], cuts, [code.size]))
        first = sorted_code[bounds[:-1]].astype(np.int64)
        return cls(order, bounds, first // width, first % width + low)

    def __len__(self) -> int:
        return int(self.keys.size)

    def rows(self, g: int) -> np.ndarray:
        return self.order[self.bounds[g] : self.bounds[g + 1]]

    def reduce(self, ufunc: np.ufunc, sorted_values: np.ndarray) -> np.ndarray:
        """`ufunc` over each group of values already in `order`."""
        out: np.ndarray = ufunc.reduceat(sorted_values, self.bounds[:-1])
        return out


class Deltas:
    """Pending aggregates of (key index, hour) pairs, one dense row each."""

    def __init__(self, capacity: int = 256) -> None:
        self._slot: dict[tuple[int, int], int] = {}
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        # count, sum and sum of squares of ln(ms), errors: added together in one pass
        # (float64 holds the integer counts exactly up to 2**53)
        self.sums = np.zeros((capacity, 4))
        self.min_ms = np.full(capacity, math.inf)
        self.max_ms = np.zeros(capacity)
        self.hist = np.zeros((capacity, N_BINS), np.int64)

    def __len__(self) -> int:
        return len(self._slot)

    def _slots(self, keys: list[int], hours: list[int]) -> np.ndarray:
        slot = self._slot
        out = [slot.setdefault(kh, len(slot)) for kh in zip(keys, hours, strict=True)]
        if len(slot) > self.min_ms.size:
            self._grow(len(slot))
        return np.array(out, np.intp)

    def _grow(self, need: int) -> None:
        old = (self.sums, self.min_ms, self.max_ms, self.hist)
        self._alloc(max(need, 2 * self.min_ms.size))
        for new, column in zip((self.sums, self.min_ms, self.max_ms, self.hist), old,
                               strict=True):
            new[: column.shape[0]] = column

    def add(self, groups: Groups, durations_ns: np.ndarray, errors: np.ndarray) -> None:
        """Fold every group of a batch in (what `LatencyAggregate.add` does, for all at once)."""
        ms = durations_ns[groups.order] / 1e6
        rows = np.empty((ms.size, 4))
        rows[:, 0] = 1.0
        logs = np.log(np.maximum(ms, _MIN_LOG_MS), out=rows[:, 1])
        np.multiply(logs, logs, out=rows[:, 2])
        rows[:, 3] = errors[groups.order]
        slots = self._slots(groups.keys.tolist(), groups.hours.tolist())
        self.sums[slots] += np.add.reduceat(rows, groups.bounds[:-1], axis=0)
        self.min_ms[slots] = np.minimum(self.min_ms[slots], groups.reduce(np.minimum, ms))
        self.max_ms[slots] = np.maximum(self.max_ms[slots], groups.reduce(np.maximum, ms))
        sizes = np.diff(groups.bounds)
        group_of = np.repeat(np.arange(len(groups)), sizes)
        flat = np.bincount(group_of * N_BINS + bin_index(ms), minlength=len(groups) * N_BINS)
        self.hist[slots] += flat.reshape(len(groups), N_BINS)

    def take(self) -> dict[tuple[int, int], LatencyAggregate]:
        """Every pending aggregate, leaving none behind."""
        out = {}
        for kh, s in self._slot.items():
            count, sum_log, sumsq_log, errors = self.sums[s].tolist()
            out[kh] = LatencyAggregate(int(count), sum_log, sumsq_log, float(self.min_ms[s]),
                                       float(self.max_ms[s]), int(errors), self.hist[s].copy())
        self._slot = {}
        self._alloc(max(256, self.min_ms.size // 2) if out else self.min_ms.size)
        return out

    def merge(self, aggregates: dict[tuple[int, int], LatencyAggregate]) -> None:
        """Put aggregates back (a failed flush), on top of whatever came in since."""
        for (k, h), agg in aggregates.items():
            (s,) = self._slots([k], [h]).tolist()
            self.sums[s] += (agg.count, agg.sum_log, agg.sumsq_log, agg.errors)
            self.min_ms[s] = min(self.min_ms[s], agg.min_ms)
            self.max_ms[s] = max(self.max_ms[s], agg.max_ms)
            self.hist[s] += agg.hist
