"""Reference detectors scored by the same NAB harness as opsbot's: the bars it has to clear.

- `WindowedGaussianDetector`: NAB's windowedGaussian, the usual first tier.
- `HourOfWeekZScoreDetector`: z of the raw value against its hour-of-week bucket,
  falling back to hour-of-day and global while the bucket is cold, as opsbot's
  baselines do, with opsbot's spread floor.
- `IsolationForestDetector`: scikit-learn's IsolationForest over the value and its
  first difference, refitted on a trailing region (a bench-only dependency).

All are causal: row i is scored from rows 0..i only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BucketLevel",
    "HourOfWeekZScoreDetector",
    "IsolationForestDetector",
    "WindowedGaussianDetector",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HOUR_NS = 3_600_000_000_000
DAY_S = 86_400.0
_EPOCH_HOUR_OF_WEEK = 72  # 1970-01-01 00:00 UTC was a Thursday: hour 72 of a Monday-based week
_ERFC = np.frompyfunc(math.erfc, 1, 1)


@dataclass(frozen=True, slots=True)
class WindowedGaussianDetector:
    """NAB's windowedGaussian: 1 - Q(|z|) of each value against a trailing window's mean and std.

    The window grows to `window` rows, then slides by `step` rows at a time (NAB's
    tuned 6400 and 100); the current value joins it only after being scored.
    NAB scored the scores it had written with Python 2's `str()`, i.e. rounded to
    12 significant digits, which makes every |z| above ~7.3 a tie at 1.0;
    `significant_digits=12` keeps that, so NAB's published per-file results
    reproduce (None: full precision).
    """

    name: str = "windowed_gaussian"
    window: int = 6400
    step: int = 100
    significant_digits: int | None = 12

    def score_series(self, timestamps_ns: IntArray, values: FloatArray) -> FloatArray:
        x = np.asarray(values, dtype=np.float64)
        mean, std = _trailing_window_stats(x, self.window, self.step)
        z = np.abs(x - mean) / np.where(std == 0.0, 1e-6, std)  # NAB's floor for a flat window
        score = 1.0 - 0.5 * np.asarray(_ERFC(z / math.sqrt(2.0)), dtype=np.float64)
        score[:1] = 0.0  # nothing seen yet
        if self.significant_digits is not None:
            fmt = f".{self.significant_digits}g"
            score = np.array([float(format(v, fmt)) for v in score.tolist()], dtype=np.float64)
        return np.asarray(score, dtype=np.float64)


def _trailing_window_stats(x: FloatArray, window: int, step: int) -> tuple[FloatArray, FloatArray]:
    """Mean and population std of the window in force when each row arrives (NaN for row 0)."""
    n = x.size
    mean, std = np.full(n, np.nan), np.full(n, np.nan)
    if n < 2:
        return mean, std
    m = min(n - 1, window)  # rows 1..m see the prefix x[:i]
    d = x[:m] - x[0]  # shifted sums keep precision for large offsets
    count = np.arange(1, m + 1)
    mu = np.cumsum(d) / count
    mean[1 : m + 1] = x[0] + mu
    std[1 : m + 1] = np.sqrt(np.maximum(np.cumsum(d * d) / count - mu * mu, 0.0))
    for k, first in enumerate(range(window, n, step)):  # full window, slid k steps
        rows = slice(max(first, window + 1), min(first + step, n))
        block = x[k * step : window + k * step]
        mean[rows], std[rows] = block.mean(), block.std()
    return mean, std


@dataclass(frozen=True, slots=True)
class BucketLevel:
    """One level of the fallback: `buckets` per week-hour cycle (168, 24 or 1) and its gate."""

    name: str
    buckets: int
    min_samples: int
    min_span_s: float


@dataclass(frozen=True, slots=True)
class HourOfWeekZScoreDetector:
    """|z| of the value against its UTC hour-of-week bucket, falling back as opsbot's baseline does.

    The baseline of row i is built from the rows of whole hours before row i's hour,
    within the trailing `window_days`: the hour-of-week bucket when it is warm, else
    the hour-of-day bucket, else the global one (a level is warm with `min_samples`
    rows and the series `min_span_s` old: opsbot's `BaselineConfig` defaults). The
    spread is floored at max(|mean| x `relative_floor`, `absolute_floor`), so a flat
    bucket gives a finite z. Score = |z| / (1 + |z|); 0 while no level is warm.
    Without the fallback a 14-day series has a dozen rows per hour-of-week bucket
    at best, whose noisy std and exact-zero spreads (inf z, score 1) drown every
    real anomaly: the sweep then never alerts.
    """

    name: str = "hour_of_week_zscore"
    levels: tuple[BucketLevel, ...] = (
        BucketLevel("hour_of_week", 168, 50, 21 * DAY_S),
        BucketLevel("hour_of_day", 24, 50, 7 * DAY_S),
        BucketLevel("global", 1, 100, 1 * DAY_S),
    )
    window_days: int = 30
    relative_floor: float = 0.05
    absolute_floor: float = 0.001

    def score_series(self, timestamps_ns: IntArray, values: FloatArray) -> FloatArray:
        x = np.asarray(values, dtype=np.float64)
        # NAB's clocks repeat and once step back: a running max keeps "the past" well defined.
        clock = np.maximum.accumulate(np.asarray(timestamps_ns, dtype=np.int64))
        hour = clock // HOUR_NS
        age_s = (clock - clock[:1]) / 1e9 if x.size else np.zeros(0)
        mean, std = np.full(x.size, np.nan), np.full(x.size, np.nan)
        for level in reversed(self.levels):  # most specific last, so it wins where warm
            m, s, count = _bucket_stats(hour, x, level.buckets, self.window_days * 24)
            warm = (count >= level.min_samples) & (age_s >= level.min_span_s)
            mean, std = np.where(warm, m, mean), np.where(warm, s, std)
        floor = np.maximum(np.abs(mean) * self.relative_floor, self.absolute_floor)
        with np.errstate(invalid="ignore"):
            z = np.abs(x - mean) / np.maximum(std, floor)
        return np.where(np.isnan(z), 0.0, z / (1.0 + z))


def _bucket_stats(
    hour: IntArray, x: FloatArray, buckets: int, window_hours: int
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Mean, population std and count of each row's bucket over the whole hours before its own.

    `hour` is non-decreasing; the bucket of hour h is (h + epoch offset) mod 168 mod `buckets`.
    """
    n = x.size
    mean, std, count = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int64)
    bucket = (hour + _EPOCH_HOUR_OF_WEEK) % 168 % buckets
    for b in np.unique(bucket):
        rows = np.flatnonzero(bucket == b)
        h, d = hour[rows], x[rows] - x[rows[0]]  # shifted sums keep precision for large offsets
        s1 = np.concatenate(([0.0], np.cumsum(d)))
        s2 = np.concatenate(([0.0], np.cumsum(d * d)))
        right = np.searchsorted(h, h, side="left")  # rows of earlier hours only
        left = np.searchsorted(h, h - window_hours, side="left")
        c = right - left
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = (s1[right] - s1[left]) / c
            var = (s2[right] - s2[left]) / c - mu * mu
        mean[rows] = x[rows[0]] + mu
        std[rows] = np.sqrt(np.maximum(var, 0.0))
        count[rows] = c
    return mean, std, count


@dataclass(frozen=True, slots=True)
class IsolationForestDetector:
    """IsolationForest over (value, change since k rows back for k = 1..`diffs`), refitted causally.

    The first fit is at row `first_fit` (a fixed row, not NAB's 15%: that depends on
    the series' length, i.e. on the future); then every `refit_every` rows, each on
    the `train_rows` rows before it, scoring the rows up to the next fit. Rows before
    the first fit score 0. Score = -score_samples, the paper's normalised anomaly
    score 2^(-E[h(x)] / c(n)) in (0, 1], comparable across files. Windows of raw
    lags (the earlier setup) make every row after a level shift or along a trend an
    outlier of equal rank, so the sweep never alerted; min-max scaling on the
    training scores clipped to 1 ties every row beyond the training range at 1.0
    (also 0.0 on the corpus).
    """

    name: str = "isolation_forest"
    diffs: int = 1
    first_fit: int = 250
    train_rows: int = 1000
    refit_every: int = 500
    n_estimators: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.diffs < 0 or self.first_fit <= self.diffs + 1 or self.refit_every < 1:
            raise ValueError(
                "IsolationForestDetector needs diffs >= 0, first_fit > diffs + 1, refit_every >= 1"
            )
        if self.train_rows < 2:
            raise ValueError("IsolationForestDetector needs train_rows >= 2")

    def score_series(self, timestamps_ns: IntArray, values: FloatArray) -> FloatArray:
        forest = _isolation_forest_class()
        x = np.asarray(values, dtype=np.float64)
        n = x.size
        score = np.zeros(n)
        features = _value_and_changes(x, self.diffs)  # row j: x[j], x[j] - x[j - k]
        for fit_at in range(self.first_fit, n, self.refit_every):
            train = features[max(self.diffs, fit_at - self.train_rows) : fit_at]
            model = forest(n_estimators=self.n_estimators, random_state=self.seed).fit(train)
            stop = min(fit_at + self.refit_every, n)
            score[fit_at:stop] = -model.score_samples(features[fit_at:stop])
        return np.clip(score, 0.0, 1.0)


def _value_and_changes(x: FloatArray, diffs: int) -> FloatArray:
    """Columns x[j] and x[j] - x[j - k] for k = 1..diffs; NaN where j < k (never used)."""
    cols = [x]
    for k in range(1, diffs + 1):
        change = np.full(x.size, np.nan)
        change[k:] = x[k:] - x[:-k]
        cols.append(change)
    return np.column_stack(cols)


def _isolation_forest_class() -> Any:
    try:
        from sklearn.ensemble import IsolationForest
    except ImportError as exc:
        raise ImportError(
            "the isolation_forest reference detector needs scikit-learn, a dev/bench dependency: "
            "pip install -e '.[dev]'"
        ) from exc
    return IsolationForest
