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
        order = np.argsort(code, kind="stable")
        sorted_code = code[order]
        cuts = np.flatnonzero(sorted_code[1:] != sorted_code[:-1]) + 1
        bounds = np.concatenate(([0], cuts, [code.size]))
        first = sorted_code[bounds[:-1]]
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
        self.count = np.zeros(capacity, np.int64)
        self.sum_log = np.zeros(capacity)
        self.sumsq_log = np.zeros(capacity)
        self.min_ms = np.full(capacity, math.inf)
        self.max_ms = np.zeros(capacity)
        self.errors = np.zeros(capacity, np.int64)
        self.hist = np.zeros((capacity, N_BINS), np.int64)

    def __len__(self) -> int:
        return len(self._slot)

    def _slots(self, keys: list[int], hours: list[int]) -> np.ndarray:
        slot = self._slot
        out = [slot.setdefault(kh, len(slot)) for kh in zip(keys, hours, strict=True)]
        if len(slot) > self.count.size:
            self._grow(len(slot))
        return np.array(out, np.intp)

    def _grow(self, need: int) -> None:
        old = (self.count, self.sum_log, self.sumsq_log, self.min_ms, self.max_ms, self.errors,
               self.hist)
        self._alloc(max(need, 2 * self.count.size))
        for new, column in zip((self.count, self.sum_log, self.sumsq_log, self.min_ms,
                                self.max_ms, self.errors, self.hist), old, strict=True):
            new[: column.shape[0]] = column

    def add(self, groups: Groups, durations_ns: np.ndarray, errors: np.ndarray) -> None:
        """Fold every group of a batch in (what `LatencyAggregate.add` does, for all at once)."""
        ms = durations_ns[groups.order] / 1e6
        logs = np.log(np.maximum(ms, _MIN_LOG_MS))
        sizes = np.diff(groups.bounds)
        slots = self._slots(groups.keys.tolist(), groups.hours.tolist())
        self.count[slots] += sizes
        self.sum_log[slots] += groups.reduce(np.add, logs)
        self.sumsq_log[slots] += groups.reduce(np.add, logs * logs)
        self.min_ms[slots] = np.minimum(self.min_ms[slots], groups.reduce(np.minimum, ms))
        self.max_ms[slots] = np.maximum(self.max_ms[slots], groups.reduce(np.maximum, ms))
        self.errors[slots] += groups.reduce(np.add, errors[groups.order].astype(np.int64))
        group_of = np.repeat(np.arange(len(groups)), sizes)
        flat = np.bincount(group_of * N_BINS + bin_index(ms), minlength=len(groups) * N_BINS)
        self.hist[slots] += flat.reshape(len(groups), N_BINS)

    def take(self) -> dict[tuple[int, int], LatencyAggregate]:
        """Every pending aggregate, leaving none behind."""
        out = {}
        for kh, s in self._slot.items():
            out[kh] = LatencyAggregate(int(self.count[s]), float(self.sum_log[s]),
                                       float(self.sumsq_log[s]), float(self.min_ms[s]),
                                       float(self.max_ms[s]), int(self.errors[s]),
                                       self.hist[s].copy())
        self._slot = {}
        self._alloc(max(256, self.count.size // 2) if out else self.count.size)
        return out

    def merge(self, aggregates: dict[tuple[int, int], LatencyAggregate]) -> None:
        """Put aggregates back (a failed flush), on top of whatever came in since."""
        for (k, h), agg in aggregates.items():
            (s,) = self._slots([k], [h]).tolist()
            self.count[s] += agg.count
            self.sum_log[s] += agg.sum_log
            self.sumsq_log[s] += agg.sumsq_log
            self.min_ms[s] = min(self.min_ms[s], agg.min_ms)
            self.max_ms[s] = max(self.max_ms[s], agg.max_ms)
            self.errors[s] += agg.errors
            self.hist[s] += agg.hist
