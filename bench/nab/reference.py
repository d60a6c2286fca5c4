"""Reference detectors scored by the same NAB harness as opsbot's: the bars it has to clear.

- `WindowedGaussianDetector`: NAB's windowedGaussian, the usual first tier.
- `HourOfWeekZScoreDetector`: z of the raw value against the mean/std of its
  hour-of-week bucket, as the platform opsbot grew from did it.
- `IsolationForestDetector`: scikit-learn's IsolationForest over sliding windows
  of the last k values, refitted on a trailing region (a bench-only dependency).

All are causal: row i is scored from rows 0..i only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["HourOfWeekZScoreDetector", "IsolationForestDetector", "WindowedGaussianDetector"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HOUR_NS = 3_600_000_000_000
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
class HourOfWeekZScoreDetector:
    """|z| of the raw value against all earlier values of its UTC hour-of-week bucket, squashed.

    Score = |z| / (1 + |z|); 0 until the bucket holds `min_samples` values; a value
    off a bucket with zero spread scores 1. No transform, no floor, no fallback.
    """

    name: str = "hour_of_week_zscore"
    min_samples: int = 2

    def score_series(self, timestamps_ns: IntArray, values: FloatArray) -> FloatArray:
        x = np.asarray(values, dtype=np.float64)
        bucket = (np.asarray(timestamps_ns, dtype=np.int64) // HOUR_NS + _EPOCH_HOUR_OF_WEEK) % 168
        z = np.zeros(x.size)
        for b in np.unique(bucket):
            rows = np.flatnonzero(bucket == b)
            z[rows] = _expanding_abs_z(x[rows], self.min_samples)
        score = np.ones(x.size)  # an infinite z (off a zero spread) scores 1
        finite = np.isfinite(z)
        score[finite] = z[finite] / (1.0 + z[finite])
        return score


def _expanding_abs_z(x: FloatArray, min_samples: int) -> FloatArray:
    """|x[i] - mean(x[:i])| / std(x[:i]); inf off a zero spread; 0 with fewer than min_samples."""
    n = x.size
    if n == 0:
        return np.zeros(0)
    d = x - x[0]
    before = np.arange(n)
    s1 = np.concatenate(([0.0], np.cumsum(d)[:-1]))
    s2 = np.concatenate(([0.0], np.cumsum(d * d)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = s1 / before
        sd = np.sqrt(np.maximum(s2 / before - mu * mu, 0.0))
        dev = np.abs(d - mu)
        z = np.where(sd > 0, dev / sd, np.where(dev > 0, np.inf, 0.0))
    return np.where(before >= max(min_samples, 1), z, 0.0)


@dataclass(frozen=True, slots=True)
class IsolationForestDetector:
    """IsolationForest over windows of the last `lags` values, refitted every `refit_every` rows.

    Each fit uses the windows ending in the `train_rows` rows before it and scores
    the rows up to the next fit; rows before `first_fit` score 0. Score is
    -score_samples, the paper's anomaly score in (0, 1].
    """

    name: str = "isolation_forest"
    lags: int = 8
    first_fit: int = 500
    train_rows: int = 1000
    refit_every: int = 1000
    n_estimators: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if (
            self.lags < 1
            or self.first_fit <= self.lags
            or self.refit_every < 1
            or self.train_rows < 2
        ):
            raise ValueError(
                "IsolationForestDetector needs lags >= 1, first_fit > lags, refit_every >= 1"
            )

    def score_series(self, timestamps_ns: IntArray, values: FloatArray) -> FloatArray:
        forest = _isolation_forest_class()
        x = np.asarray(values, dtype=np.float64)
        n = x.size
        score = np.zeros(n)
        if n <= self.first_fit:
            return score
        windows = np.lib.stride_tricks.sliding_window_view(
            x, self.lags
        )  # row j ends at j + lags - 1
        for fit_at in range(self.first_fit, n, self.refit_every):
            end = fit_at - self.lags + 1  # windows ending before row fit_at
            train = windows[max(0, end - self.train_rows) : end]
            model = forest(n_estimators=self.n_estimators, random_state=self.seed).fit(train)
            stop = min(fit_at + self.refit_every, n)
            score[fit_at:stop] = -model.score_samples(windows[end : stop - self.lags + 1])
        return score


def _isolation_forest_class() -> Any:
    try:
        from sklearn.ensemble import IsolationForest
    except ImportError as exc:
        raise ImportError(
            "the isolation_forest reference detector needs scikit-learn, a dev/bench dependency: "
            "pip install -e '.[dev]'"
        ) from exc
    return IsolationForest
