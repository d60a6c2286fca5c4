"""Streaming detector of one series (river's learn_one / score_one, with time passed in).

It keeps the same hourly partials the store keeps and rolling totals per bucket,
so each new hour costs O(1) merges, and its baselines equal `build_baseline`
over those partials. `score_series` runs it prequentially (score, then learn)
with level-shift re-anchoring: the entry point of the NAB harness.
"""

from __future__ import annotations

import math
from typing import Generic

import numpy as np
import numpy.typing as npt

from detectors.aggregate import LatencyAggregate
from detectors.baseline import A, Baseline, baseline_from_aggregate
from detectors.buckets import FALLBACK_ORDER, HOUR_NS, BucketType, bucket_id_of_partial, hour_index
from detectors.config import DetectorConfig
from detectors.level_shift import LevelShiftTracker
from detectors.metric_aggregate import MetricAggregate
from detectors.transforms import Transform

__all__ = ["SeriesDetector", "latency_detector", "metric_detector", "score_series"]

FloatArray = npt.NDArray[np.float64]


class SeriesDetector(Generic[A]):
    """One series: `learn_one(t, x)` folds a value, `score_one(t, x)` returns its capped z or NaN.

    Values of the current hour are buffered and folded into the bucket totals when
    the clock (the largest t seen) leaves that hour; the hour being scored never
    takes part in its own baseline. A cold baseline scores NaN.
    """

    def __init__(self, empty: A, config: DetectorConfig) -> None:
        self.config = config
        self._empty = empty
        self._window_h = config.baseline.window_days * 24
        self._partials: dict[int, A] = {}  # hour index -> aggregate of that hour (folded ones)
        self._pending: dict[int, list[float]] = {}  # hour index -> raw values not folded yet
        self._totals: dict[tuple[BucketType, int], A] = {}
        self._clock_h: int | None = None  # hour of the latest t seen; hours before it are folded
        self._cache: tuple[int, Baseline] | None = None
        self.first_seen_ns: int | None = None
        self.anchor_ns: int | None = None

    def learn_one(self, t_ns: int, value: float) -> None:
        """Fold one value observed at t (raw units: ms for latency)."""
        if not math.isfinite(value):
            return
        self._advance(t_ns)
        assert self._clock_h is not None
        h = hour_index(t_ns)
        if h < self._clock_h - self._window_h or (
            self.anchor_ns is not None and h * HOUR_NS < self.anchor_ns
        ):
            return  # older than the window, or superseded by a level shift
        self.first_seen_ns = t_ns if self.first_seen_ns is None else min(self.first_seen_ns, t_ns)
        if h < self._clock_h:  # late value for an hour already folded
            self._fold(h, [value])
            self._cache = None
        else:
            self._pending.setdefault(h, []).append(value)

    def score_one(self, t_ns: int, value: float) -> float:
        """Signed z of one value against the baseline at t, floored and capped; NaN when cold."""
        baseline = self.baseline(t_ns)
        if not baseline.warm or not math.isfinite(value):
            return math.nan
        z = (float(baseline.transform.forward(value)) - baseline.center) / baseline.scale
        max_z = self.config.scoring.max_z
        return max(-max_z, min(max_z, z)) if max_z > 0 else z

    def baseline(self, t_ns: int) -> Baseline:
        """The baseline at t: most specific warm bucket of the rolling totals."""
        self._advance(t_ns)
        h = hour_index(t_ns)
        if self._cache is not None and self._cache[0] == h:
            return self._cache[1]
        day, hour = divmod(h, 24)
        result: Baseline | None = None
        for bucket_type in FALLBACK_ORDER:
            agg = self._totals.get(
                (bucket_type, bucket_id_of_partial(bucket_type, day, hour)), self._empty
            )
            result = baseline_from_aggregate(
                agg, bucket_type, t_ns, self.first_seen_ns, self.config.baseline, self.anchor_ns
            )
            if result.warm:
                break
        assert result is not None
        self._cache = (h, result)
        return result

    def reanchor(self, anchor_ns: int) -> None:
        """Level shift confirmed: forget every hour that starts before `anchor_ns`."""
        self.anchor_ns = anchor_ns
        keep = {h: agg for h, agg in self._partials.items() if h * HOUR_NS >= anchor_ns}
        self._partials, self._totals, self._cache = {}, {}, None
        self._pending = {h: v for h, v in self._pending.items() if h * HOUR_NS >= anchor_ns}
        for h, agg in keep.items():
            self._partials[h] = agg
            self._add_to_totals(h, agg)

    def partials(self) -> list[tuple[int, int, A]]:
        """(day, hour, aggregate) rows of every folded hour: what the store would hold."""
        return [(h // 24, h % 24, agg) for h, agg in sorted(self._partials.items())]

    def _advance(self, t_ns: int) -> None:
        h = hour_index(t_ns)
        if self._clock_h is not None and h <= self._clock_h:
            return
        self._clock_h = h
        for ph in sorted(p for p in self._pending if p < h):
            self._fold(ph, self._pending.pop(ph))
        oldest = h - self._window_h
        for ph in [p for p in self._partials if p < oldest]:
            agg = self._partials.pop(ph)
            for bucket_type in FALLBACK_ORDER:
                self._totals[
                    (bucket_type, bucket_id_of_partial(bucket_type, *divmod(ph, 24)))
                ].subtract(agg)

    def _fold(self, h: int, values: list[float]) -> None:
        part = self._empty.copy()
        part.add(np.asarray(values, dtype=np.float64))
        if h in self._partials:
            self._partials[h].merge(part)
        else:
            self._partials[h] = part.copy()
        self._add_to_totals(h, part)

    def _add_to_totals(self, h: int, agg: A) -> None:
        day, hour = divmod(h, 24)
        for bucket_type in FALLBACK_ORDER:
            key = (bucket_type, bucket_id_of_partial(bucket_type, day, hour))
            if key not in self._totals:
                self._totals[key] = self._empty.copy()
            self._totals[key].merge(agg)


def latency_detector(config: DetectorConfig) -> SeriesDetector[LatencyAggregate]:
    """Detector of one span key; values are durations in ms."""
    return SeriesDetector(LatencyAggregate(), config)


def metric_detector(
    transform: Transform, config: DetectorConfig
) -> SeriesDetector[MetricAggregate]:
    """Detector of one metric series in the given transform."""
    return SeriesDetector(MetricAggregate(transform), config)


def score_series(
    timestamps_ns: npt.ArrayLike,
    values: npt.ArrayLike,
    config: DetectorConfig,
    transform: Transform = Transform.IDENTITY,
) -> FloatArray:
    """Prequential scores of a whole series: each point scored on the past, then learnt.

    Timestamps need not be sorted: a step back (NAB's DST hour) is late data for
    hours already folded, and the clock never moves back. Inputs are not modified.
    Confirmed level shifts re-anchor the baseline (see `level_shift`). Returns
    signed z capped at +-max_z, NaN while the baseline is cold (a harness maps NaN to 0).
    """
    ts = np.asarray(timestamps_ns, dtype=np.int64)
    xs = np.asarray(values, dtype=np.float64)
    detector = metric_detector(transform, config)
    tracker = LevelShiftTracker(config.level_shift)
    out = np.full(ts.size, np.nan)
    for i in range(ts.size):
        t, x = int(ts[i]), float(xs[i])
        z = detector.score_one(t, x)
        out[i] = z
        if not math.isnan(z):
            b = detector.baseline(t)
            shift = tracker.update(t, z, float(b.transform.forward(x)) - b.center)
            if shift is not None:
                detector.reanchor(shift.anchor_ns)
        detector.learn_one(t, x)
    return out
