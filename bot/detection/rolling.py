"""Rolling hourly partials of many span keys, and their baselines at any hour (pure).

The store keeps the same (key, UTC day, hour) partials; the engine folds each
batch in here as it arrives and loads the store's rows at start, so a baseline
never re-reads spans or the store. Per key, bucket totals (hour-of-week,
hour-of-day, global) are kept for the `window_days x 24` whole hours before the
clock's hour, so moving the clock one hour costs a few merges and subtractions,
and `baseline(k, t)` equals `detectors.build_baseline` over the same partials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.aggregate import LatencyAggregate
from detectors.baseline import Baseline, baseline_from_aggregate
from detectors.buckets import FALLBACK_ORDER, HOUR_NS, BucketType, bucket_id_of_partial
from detectors.config import BaselineConfig
from detectors.raw_latency import RawLatencyAggregate

__all__ = ["KeyPartials", "RollingBaselines"]


@dataclass(slots=True)
class KeyPartials:
    """One key: hour index -> partial, the bucket totals of the folded window, and its anchor."""

    partials: dict[int, LatencyAggregate] = field(default_factory=dict)
    totals: dict[tuple[BucketType, int], LatencyAggregate] = field(default_factory=dict)
    first_seen_ns: int | None = None
    anchor_ns: int | None = None
    cache: tuple[int, Baseline] | None = None

    def counted(self, h: int, lo: int, hi: int) -> bool:
        """Whether hour h belongs in the totals of a window [lo, hi) under the anchor."""
        if not lo <= h < hi:
            return False
        return self.anchor_ns is None or h * HOUR_NS >= self.anchor_ns

    def add_total(self, h: int, agg: LatencyAggregate, sign: int = 1) -> None:
        day, hour = divmod(h, 24)
        for bucket_type in FALLBACK_ORDER:
            slot = (bucket_type, bucket_id_of_partial(bucket_type, day, hour))
            total = self.totals.get(slot)
            if total is None:
                total = self.totals[slot] = type(agg)()  # empty, of the same kind (raw or log)
            if sign > 0:
                total.merge(agg)
            else:
                total.subtract(agg)
        self.cache = None


class RollingBaselines:
    """Partials of every key, with totals over the window before the clock's hour."""

    def __init__(self, config: BaselineConfig) -> None:
        self.config = config
        # "raw" (comparison only): partials also sum raw ms and baselines report raw moments
        self.aggregate = RawLatencyAggregate if config.latency_model == "raw" else LatencyAggregate
        self.window_h = config.window_days * 24
        self.keys: list[KeyPartials] = []
        self.clock_h: int | None = None  # totals cover [clock_h - window_h, clock_h)

    def ensure(self, n: int) -> None:
        """Make room for key indices below n."""
        while len(self.keys) < n:
            self.keys.append(KeyPartials())

    def _window(self) -> tuple[int, int]:
        hi = self.clock_h if self.clock_h is not None else -(2**62)
        return hi - self.window_h, hi

    def add(self, k: int, h: int, agg: LatencyAggregate, first_ns: int | None = None) -> None:
        """Fold a partial of key k for hour index h (new data or a row loaded from the store)."""
        self.ensure(k + 1)
        kp = self.keys[k]
        if first_ns is not None:
            kp.first_seen_ns = first_ns if kp.first_seen_ns is None else min(kp.first_seen_ns,
                                                                               first_ns)
        lo, hi = self._window()
        if h < lo:
            return  # older than the window: it can never count again
        cur = kp.partials.get(h)
        kp.partials[h] = agg.copy() if cur is None else cur.merge(agg)
        if kp.counted(h, lo, hi):
            kp.add_total(h, agg)

    def add_spans(
        self, key_idx: npt.NDArray[np.int64], start_ns: npt.NDArray[np.int64],
        duration_ms: npt.NDArray[np.float64], errors: npt.NDArray[np.bool_],
    ) -> None:
        """Fold a batch of spans (columns) into hourly partials."""
        if key_idx.size == 0:
            return
        hours = start_ns // HOUR_NS
        code = key_idx * (1 << 32) + (hours - hours.min())
        order = np.argsort(code, kind="stable")
        sc = code[order]
        cuts = np.flatnonzero(sc[1:] != sc[:-1]) + 1
        for g in np.split(order, cuts):
            agg = self.aggregate()
            agg.add(duration_ms[g], errors=int(np.count_nonzero(errors[g])))
            self.add(int(key_idx[g[0]]), int(hours[g[0]]), agg, int(start_ns[g].min()))

    def advance(self, t_ns: int) -> None:
        """Move the clock to t's hour: fold hours that left the present, drop expired ones."""
        h = t_ns // HOUR_NS
        if self.clock_h is not None and h <= self.clock_h:
            return
        first = self.clock_h is None
        old_lo, old_hi = self._window()
        self.clock_h = h
        lo, hi = self._window()
        step = hi - old_hi
        for kp in self.keys:
            expired = (
                range(old_lo, lo) if not first and step <= 48
                else [p for p in kp.partials if p < lo]
            )
            for ph in expired:
                agg = kp.partials.pop(ph, None)
                if agg is not None and kp.counted(ph, old_lo, old_hi):
                    kp.add_total(ph, agg, -1)
            entered = (
                range(max(old_hi, lo), hi) if not first and step <= 48 else list(kp.partials)
            )
            for ph in entered:
                agg = kp.partials.get(ph)
                if agg is not None and kp.counted(ph, lo, hi) and (
                    first or not kp.counted(ph, old_lo, old_hi)
                ):
                    kp.add_total(ph, agg)

    def reanchor(self, k: int, anchor_ns: int) -> None:
        """A confirmed level shift: hours starting before the anchor stop counting for key k."""
        kp = self.keys[k]
        kp.anchor_ns = anchor_ns
        kp.totals, kp.cache = {}, None
        lo, hi = self._window()
        for ph, agg in kp.partials.items():
            if kp.counted(ph, lo, hi):
                kp.add_total(ph, agg)

    def baseline(self, k: int, t_ns: int) -> Baseline:
        """Baseline of key k at t (the clock must be at t's hour): most specific warm bucket."""
        self.advance(t_ns)
        kp = self.keys[k]
        h = t_ns // HOUR_NS
        if kp.cache is not None and kp.cache[0] == h:
            return kp.cache[1]
        day, hour = divmod(h, 24)
        result: Baseline | None = None
        for bucket_type in FALLBACK_ORDER:
            agg = kp.totals.get((bucket_type, bucket_id_of_partial(bucket_type, day, hour)))
            result = baseline_from_aggregate(
                agg if agg is not None else self.aggregate(), bucket_type, h * HOUR_NS,
                kp.first_seen_ns, self.config, kp.anchor_ns,
            )
            if result.warm:
                break
        assert result is not None
        kp.cache = (h, result)
        return result

    def error_rate(self, k: int, t_ns: int) -> tuple[int, int]:
        """(errors, spans) of the global window of key k: the baseline of its error rate."""
        self.advance(t_ns)
        total = self.keys[k].totals.get((BucketType.GLOBAL, 0))
        return (0, 0) if total is None else (total.errors, total.count)
