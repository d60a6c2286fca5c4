"""Mergeable per-bucket aggregates of a metric series (values may be 0 or negative).

Moments (count, mean, M2 of the transformed value) merge with Chan's parallel
formulas, which stay exact when the mean dwarfs the spread (CPU 99.5 +- 0.1).
Quantiles come from a fixed-bin signed logarithmic histogram of the raw values:
20 bins per decade for each sign between 1e-6 and 1e12, one bin for |x| < 1e-6.
Pure: no IO, no clock.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.transforms import Transform

__all__ = [
    "METRIC_BINS_PER_DECADE",
    "METRIC_N_BINS",
    "MetricAggregate",
    "metric_bin_index",
]

METRIC_BINS_PER_DECADE = 20
METRIC_MIN_ABS = 1e-6  # |x| below this lands in the zero bin
_DECADES = 18  # 1e-6 .. 1e12
_SIDE = METRIC_BINS_PER_DECADE * _DECADES + 1  # magnitude bins per sign, the last one overflow
METRIC_N_BINS = 2 * _SIDE + 1  # bin position = signed magnitude index + _SIDE
_LOG10_MIN = math.log10(METRIC_MIN_ABS)

IntArray = npt.NDArray[np.int64]


def metric_bin_index(values: npt.ArrayLike) -> IntArray:
    """Histogram position of each raw value (vectorised); positions increase with the value."""
    x = np.asarray(values, dtype=np.float64)
    mag = np.abs(x)
    with np.errstate(divide="ignore"):
        pos = (np.log10(np.maximum(mag, 1e-300)) - _LOG10_MIN) * METRIC_BINS_PER_DECADE
    m = np.clip(np.floor(pos).astype(np.int64) + 1, 0, _SIDE)
    m[mag < METRIC_MIN_ABS] = 0
    return (np.sign(x).astype(np.int64) * m + _SIDE).astype(np.int64)


def _magnitude_edges(m: int, extreme: float) -> tuple[float, float]:
    """Lower and upper |x| of magnitude bin m (>= 1); the overflow bin ends at `extreme`."""
    lo = 10.0 ** (_LOG10_MIN + (m - 1) / METRIC_BINS_PER_DECADE)
    if m == _SIDE:
        return lo, max(extreme, lo)
    return lo, 10.0 ** (_LOG10_MIN + m / METRIC_BINS_PER_DECADE)


@dataclass(slots=True)
class MetricAggregate:
    """Count, mean and M2 of transform(x); raw min/max; signed log histogram of raw x."""

    transform: Transform = Transform.IDENTITY
    count: int = 0
    mean: float = 0.0  # of the transformed values
    m2: float = 0.0  # sum of squared deviations of the transformed values from `mean`
    min: float = math.inf
    max: float = -math.inf
    hist: IntArray = field(default_factory=lambda: np.zeros(METRIC_N_BINS, np.int64))

    def add(self, values: npt.ArrayLike) -> None:
        """Fold an array of raw values; NaN and infinite values are skipped."""
        x = np.asarray(values, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        y = self.transform.forward(x)
        mean_b = float(y.mean())
        part = MetricAggregate(
            self.transform, int(x.size), mean_b, float(np.sum((y - mean_b) ** 2))
        )
        part.min, part.max = float(x.min()), float(x.max())
        part.hist = np.bincount(metric_bin_index(x), minlength=METRIC_N_BINS).astype(np.int64)
        self.merge(part)

    def merge(self, other: MetricAggregate) -> MetricAggregate:
        """Add `other` into self and return self (Chan et al.'s pairwise update)."""
        self._same_transform(other)
        if other.count == 0:
            return self
        n = self.count + other.count
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.count * other.count / n
        self.mean += delta * other.count / n
        self.count = n
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.hist += other.hist
        return self

    def subtract(self, other: MetricAggregate) -> MetricAggregate:
        """Remove a previously merged `other` from self (a window sliding); return self.

        Count, moments and histogram are exact; min/max cannot be un-merged and stay
        as outer bounds, which only loosens the clamp on the extreme quantiles.
        """
        self._same_transform(other)
        n = self.count - other.count
        if n < 0:
            raise ValueError("subtracting more samples than the aggregate holds")
        if n == 0:
            self.count, self.mean, self.m2 = 0, 0.0, 0.0
            self.hist = np.zeros(METRIC_N_BINS, np.int64)
            return self
        mean = (self.count * self.mean - other.count * other.mean) / n
        delta = other.mean - mean
        self.m2 = max(self.m2 - other.m2 - delta * delta * n * other.count / self.count, 0.0)
        self.mean, self.count = mean, n
        self.hist = self.hist - other.hist
        return self

    def copy(self) -> MetricAggregate:
        return MetricAggregate(
            self.transform, self.count, self.mean, self.m2, self.min, self.max, self.hist.copy()
        )

    @property
    def mean_t(self) -> float:
        """Mean of the transformed values (NaN when empty)."""
        return self.mean if self.count else math.nan

    @property
    def std_t(self) -> float:
        """Population standard deviation of the transformed values."""
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Raw value at quantile q, interpolated log-linearly inside its bin."""
        if self.count == 0:
            return math.nan
        cum = np.cumsum(self.hist)
        target = q * self.count
        i = min(int(np.searchsorted(cum, target, side="left")), METRIC_N_BINS - 1)
        before = float(cum[i - 1]) if i > 0 else 0.0
        frac = (target - before) / self.hist[i] if self.hist[i] else 0.0
        k = i - _SIDE
        if k == 0:
            value = 0.0
        elif k > 0:
            lo, hi = _magnitude_edges(k, abs(self.max))
            value = math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))
        else:  # negative values: the bin runs from -hi up to -lo
            lo, hi = _magnitude_edges(-k, abs(self.min))
            value = -math.exp(math.log(hi) + frac * (math.log(lo) - math.log(hi)))
        return min(max(value, self.min), self.max)

    def _same_transform(self, other: MetricAggregate) -> None:
        if other.transform is not self.transform:
            raise ValueError(
                f"cannot combine a {other.transform} aggregate with a {self.transform} one; "
                "a series keeps one transform for its whole history"
            )

    # -- storage: sparse histogram, same layout as LatencyAggregate.hist_blob --

    def hist_blob(self) -> bytes:
        nz = np.flatnonzero(self.hist)
        head = struct.pack("<H", nz.size)
        return head + nz.astype("<u2").tobytes() + self.hist[nz].astype("<u8").tobytes()

    @staticmethod
    def hist_from_blob(blob: bytes) -> IntArray:
        (n,) = struct.unpack_from("<H", blob)
        idx = np.frombuffer(blob, "<u2", n, 2)
        vals = np.frombuffer(blob, "<u8", n, 2 + 2 * n)
        hist = np.zeros(METRIC_N_BINS, np.int64)
        hist[idx.astype(np.int64)] = vals.astype(np.int64)
        return hist
