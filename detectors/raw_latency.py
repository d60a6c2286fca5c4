"""The naive latency model, kept only to be measured against: mean and std of RAW milliseconds.

`BaselineConfig.latency_model = "raw"` makes the rolling baselines use this
aggregate, so windows are scored by (median or p90 in ms - raw mean) / raw std
instead of in log space. Heavy tails inflate the raw std ("0.44 ms +- 10.66 ms"),
which `opsbot eval sim --baseline-model both` shows costs recall; never a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.aggregate import LatencyAggregate
from detectors.transforms import Transform

__all__ = ["RawLatencyAggregate"]


@dataclass(slots=True)
class RawLatencyAggregate(LatencyAggregate):
    """A LatencyAggregate that also sums raw ms, and reports raw moments to the baseline.

    The log sums and the histogram are kept as well, so quantiles (p50/p90 in ms) are
    the same as the log model's: only the center and scale differ.
    """

    sum_ms: float = 0.0
    sumsq_ms: float = 0.0

    def add(self, duration_ms: np.ndarray, errors: int = 0) -> None:
        LatencyAggregate.add(self, duration_ms, errors)
        d = np.asarray(duration_ms, dtype=np.float64)
        self.sum_ms += float(d.sum())
        self.sumsq_ms += float(np.dot(d, d))

    def merge(self, other: LatencyAggregate) -> RawLatencyAggregate:
        raw = _raw(other)
        LatencyAggregate.merge(self, other)
        self.sum_ms += raw.sum_ms
        self.sumsq_ms += raw.sumsq_ms
        return self

    def subtract(self, other: LatencyAggregate) -> RawLatencyAggregate:
        raw = _raw(other)
        LatencyAggregate.subtract(self, other)
        self.sum_ms -= raw.sum_ms
        self.sumsq_ms -= raw.sumsq_ms
        if self.count == 0:
            self.sum_ms = self.sumsq_ms = 0.0
        return self

    def copy(self) -> RawLatencyAggregate:
        return RawLatencyAggregate(
            self.count, self.sum_log, self.sumsq_log, self.min_ms, self.max_ms, self.errors,
            self.hist.copy(), self.sum_ms, self.sumsq_ms,
        )

    @property
    def transform(self) -> Transform:
        return Transform.IDENTITY  # moments and window statistics stay in ms

    @property
    def mean_t(self) -> float:
        return self.sum_ms / self.count if self.count else math.nan

    @property
    def std_t(self) -> float:
        """Population standard deviation of the raw durations (ms)."""
        if self.count == 0:
            return math.nan
        mean = self.sum_ms / self.count
        return math.sqrt(max(self.sumsq_ms / self.count - mean * mean, 0.0))


def _raw(other: LatencyAggregate) -> RawLatencyAggregate:
    """Raw moments cannot be rebuilt from log moments: mixing the two kinds is refused."""
    if not isinstance(other, RawLatencyAggregate):
        raise TypeError(
            "the raw latency model needs partials with raw-ms sums; the store's partials keep "
            "only log moments, so use baseline_latency_model='raw' with a fresh store "
            "(as `opsbot eval sim` does)"
        )
    return other
