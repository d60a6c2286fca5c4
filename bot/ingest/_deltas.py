"""Per-(key, hour) aggregate deltas kept as dense numpy columns, folded a whole batch at a time.

A batch's rows get a (key, hour) group number each; every statistic of
`LatencyAggregate` is then one `bincount` or `ufunc.at` over all groups, added
into the pending rows of those groups with fancy indexing. Python work per batch
is per group, never per span. `take()` turns the pending rows back into
`LatencyAggregate`s for the store.
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
    """Rows of a batch grouped by (key index, hour), groups in (key, hour) order.

    No sort: each row gets its group number from a presence table over the (key, hour)
    codes, and per-group statistics are `bincount`s and unbuffered `ufunc.at`s, which
    visit rows in order (so sums add up exactly as a row-by-row loop would).
    """

    group: np.ndarray  # group number of each row
    keys: np.ndarray  # key index of each group
    hours: np.ndarray  # UTC hour (start // HOUR_NS) of each group

    @classmethod
    def of(cls, key_idx: np.ndarray, hours: np.ndarray, low: int | None = None,
           high: int | None = None) -> Groups:
        """Groups of the rows; `low` and `high` are the first and last hour when known."""
        low = int(hours.min()) if low is None else low
        width = (int(hours.max()) if high is None else high) - low + 1
        code = key_idx * width + (hours - low)
        top = int(code.max()) + 1
        if top <= _TABLE_LIMIT:
            present = np.zeros(top, np.bool_)
            present[code] = True
            group = (np.cumsum(present) - 1)[code]
            first = np.flatnonzero(present)
        else:  # keys x hours too wide for a table
            first, group = np.unique(code, return_inverse=True)
        return cls(group, first // width, first % width + low)

    def __len__(self) -> int:
        return int(self.keys.size)

    def rows(self, g: int) -> np.ndarray:
        """Rows of group g, ascending."""
        rows: np.ndarray = np.flatnonzero(self.group == g)
        return rows

    def sum(self, values: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.bincount(self.group, values, len(self))
        return out

    def min(self, values: np.ndarray) -> np.ndarray:
        return self._at(np.minimum, values, _highest(values.dtype))

    def max(self, values: np.ndarray) -> np.ndarray:
        return self._at(np.maximum, values, _lowest(values.dtype))

    def _at(self, ufunc: np.ufunc, values: np.ndarray, start: float | int) -> np.ndarray:
        out = np.full(len(self), start, values.dtype)
        ufunc.at(out, self.group, values)
        return out


_TABLE_LIMIT = 1 << 20
_FOLD_ROWS = 16_384  # rows of kept batches folded in at once


@dataclass(frozen=True, slots=True)
class _Part:
    """One batch waiting to be folded in: its rows' groups, and each group's slot."""

    group: np.ndarray
    slots: np.ndarray
    durations_ns: np.ndarray
    errors: np.ndarray
    slowest_ns: np.ndarray


def _highest(dtype: np.dtype) -> float | int:
    return math.inf if dtype.kind == "f" else int(np.iinfo(dtype).max)


def _lowest(dtype: np.dtype) -> float | int:
    return -math.inf if dtype.kind == "f" else int(np.iinfo(dtype).min)


class Deltas:
    """Pending aggregates of (key index, hour) pairs, one dense row each.

    `add` only numbers a batch's groups (their slots) and keeps its columns; batches are
    folded in together, `_FOLD_ROWS` rows at a time (and before `take` or `merge`), which
    costs a fraction of the numpy calls per batch. The result is the same to the bit:
    every per-(batch, group) sum is still a `bincount` over that batch's rows in order,
    and those sums are added to a slot batch after batch, in order (`ufunc.at` is
    unbuffered); counts, errors, histogram, min and max are exact whatever the order.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._slot: dict[tuple[int, int], int] = {}
        self._parts: list[_Part] = []
        self._part_rows = 0
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

    def add(self, groups: Groups, durations_ns: np.ndarray, errors: np.ndarray,
            slowest_ns: np.ndarray | None = None) -> None:
        """Fold every group of a batch in (what `LatencyAggregate.add` does, for all at once).

        `slowest_ns`: `groups.max(durations_ns)`, when the caller has it. Min and max are
        taken in integer ns and then scaled: ns -> ms is monotone, so they equal the min
        and max of the ms values.
        """
        if slowest_ns is None:
            slowest_ns = groups.max(durations_ns)
        slots = self._slots(groups.keys.tolist(), groups.hours.tolist())
        self._parts.append(_Part(groups.group, slots, durations_ns, errors, slowest_ns))
        self._part_rows += int(durations_ns.shape[0])
        if self._part_rows >= _FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        """Add the kept batches into the slots (see the class docstring for why it is exact)."""
        parts, self._parts, self._part_rows = self._parts, [], 0
        if not parts:
            return
        offsets = np.cumsum([0] + [p.slots.size for p in parts[:-1]]).tolist()
        group = np.concatenate([p.group + off for p, off in zip(parts, offsets, strict=True)])
        slots = np.concatenate([p.slots for p in parts])
        durations = np.concatenate([p.durations_ns for p in parts])
        n_groups = slots.size
        ms = durations / 1e6
        logs = np.log(np.maximum(ms, _MIN_LOG_MS))
        errors = np.concatenate([p.errors for p in parts])
        np.add.at(self.sums, slots, np.stack((
            np.bincount(group, minlength=n_groups), np.bincount(group, logs, n_groups),
            np.bincount(group, logs * logs, n_groups), np.bincount(group, errors, n_groups),
        ), axis=1))
        fastest = np.full(n_groups, np.iinfo(durations.dtype).max if durations.dtype.kind in "iu"
                          else math.inf, durations.dtype)
        np.minimum.at(fastest, group, durations)
        np.minimum.at(self.min_ms, slots, fastest / 1e6)
        np.maximum.at(self.max_ms, slots, np.concatenate([p.slowest_ns for p in parts]) / 1e6)
        flat = np.bincount(slots[group] * N_BINS + bin_index(ms), minlength=self.hist.size)
        self.hist += flat.reshape(self.hist.shape)

    def take(self) -> dict[tuple[int, int], LatencyAggregate]:
        """Every pending aggregate, leaving none behind."""
        self._fold()
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
        self._fold()
        for (k, h), agg in aggregates.items():
            (s,) = self._slots([k], [h]).tolist()
            self.sums[s] += (agg.count, agg.sum_log, agg.sumsq_log, agg.errors)
            self.min_ms[s] = min(self.min_ms[s], agg.min_ms)
            self.max_ms[s] = max(self.max_ms[s], agg.max_ms)
            self.hist[s] += agg.hist
