"""Novelty scores of one metric series: how far outside everything seen lately a value sits.

A z-score asks "how many standard deviations from normal"; on real operations
series (heavy tails, daily cycles, plateaus) that fires on every busy hour. A
novelty score asks a sharper question: does the value (or the daily-seasonal
residual, or the local spread) leave the range the series has covered over its
recent history, and by how much of that range? New extremes are rare by
construction, so the false-alarm rate stays low without per-series tuning, and
`keep_records` turns a continuing excursion into a single alert.

Every function is causal: row t uses rows <= t only. Pure numpy, no IO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "NoveltyConfig",
    "keep_records",
    "novelty",
    "novelty_scores",
    "rolling_max",
    "rolling_mean",
    "rolling_std",
    "seasonal_residual",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class NoveltyConfig:
    """Windows are in samples (rows), so a series keeps its meaning whatever its step.

    Defaults were tuned on the NAB corpus (5-minute series: 8000 rows ~ 28 days).
    """

    history: int = 8000  # the value is compared with the range of this many previous rows
    warmup: int = 300  # rows before anything scores: the range needs some history first
    seasonal_period_ns: int = DAY_NS  # residual = value - value one period earlier
    seasonal_smooth: int = 24  # rows averaged before the residual is compared
    seasonal_history: int = 1500
    seasonal_weight: float = 0.3  # residual and spread novelty count less than the level's
    spread_window: int = 96  # rows in the local standard deviation
    spread_history: int = 3000
    spread_weight: float = 0.3
    hold: int = 600  # after a score, the next one must beat everything of the last `hold` rows

    def __post_init__(self) -> None:
        for name in ("history", "seasonal_smooth", "seasonal_history", "spread_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"NoveltyConfig.{name} must be >= 1")
        for name in ("warmup", "hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"NoveltyConfig.{name} must be >= 0")
        if self.seasonal_period_ns <= 0:
            raise ValueError("NoveltyConfig.seasonal_period_ns must be > 0")
        for name in ("seasonal_weight", "spread_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"NoveltyConfig.{name} must be within [0, 1]")


def rolling_max(x: npt.ArrayLike, window: int) -> FloatArray:
    """max(x[t - window + 1 .. t]) for every t, truncated at the start; O(n) (van Herk)."""
    a = np.asarray(x, dtype=np.float64)
    n = a.size
    if n == 0:
        return np.zeros(0)
    pad = window - 1
    blocks = -(-(n + pad) // window)
    y = np.full(blocks * window, -np.inf)
    y[pad : pad + n] = a
    y2 = y.reshape(blocks, window)
    prefix = np.maximum.accumulate(y2, axis=1).ravel()
    suffix = np.maximum.accumulate(y2[:, ::-1], axis=1)[:, ::-1].ravel()
    end = np.arange(pad, pad + n)
    return np.maximum(suffix[end - pad], prefix[end])


def _past_max(x: FloatArray, window: int) -> FloatArray:
    """max(x[t - window .. t - 1]); -inf for row 0."""
    out = np.full(x.size, -np.inf)
    if x.size > 1:
        out[1:] = rolling_max(x[:-1], window)
    return out


def rolling_mean(x: npt.ArrayLike, window: int) -> FloatArray:
    """mean(x[t - window + 1 .. t]), truncated at the start."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0)
    c = np.concatenate(([0.0], np.cumsum(a - a[0])))
    t = np.arange(a.size)
    lo = np.maximum(0, t - window + 1)
    return np.asarray(a[0] + (c[t + 1] - c[lo]) / (t + 1 - lo), dtype=np.float64)


def rolling_std(x: npt.ArrayLike, window: int) -> FloatArray:
    """Population std of x[t - window + 1 .. t], truncated at the start."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0)
    d = a - a[0]  # shifted sums keep precision when the level dwarfs the spread
    mean = rolling_mean(d, window)
    mean_sq = rolling_mean(d * d, window)
    return np.asarray(np.sqrt(np.maximum(mean_sq - mean * mean, 0.0)), dtype=np.float64)


def novelty(x: npt.ArrayLike, history: int, warmup: int) -> FloatArray:
    """How far x[t] leaves the range of the `history` previous rows, in units of that range.

    e = max(x - past_max, past_min - x, 0) / (past_max - past_min), squashed to e / (1 + e)
    in [0, 1); 0 for the first `warmup` rows. A flat past gets a tiny range
    (1e-3 of its level, at least 1e-9) so a step off a flatline still scores high.
    """
    a = np.asarray(x, dtype=np.float64)
    hi = _past_max(a, history)
    lo = -_past_max(-a, history)
    span = np.maximum(hi - lo, 1e-9 + 1e-3 * np.abs(hi))
    with np.errstate(invalid="ignore"):
        e = np.maximum(np.maximum(a - hi, lo - a), 0.0) / span
    e = np.where(np.isfinite(e), e, 0.0)
    e[: max(warmup, 1)] = 0.0
    return np.asarray(e / (1.0 + e), dtype=np.float64)


def seasonal_residual(
    timestamps_ns: npt.ArrayLike, values: npt.ArrayLike, period_ns: int
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """value - the latest value at least one period earlier, and where such a value exists.

    The clock is the running maximum of the timestamps, so a step back (NAB's DST
    hour) cannot reach into the future.
    """
    ts = np.asarray(timestamps_ns, dtype=np.int64)
    x = np.asarray(values, dtype=np.float64)
    clock = np.maximum.accumulate(ts) if ts.size else ts
    lag = np.searchsorted(clock, clock - period_ns, side="right") - 1
    ok = lag >= 0
    residual = np.zeros(x.size)
    residual[ok] = x[ok] - x[lag[ok]]
    return residual, ok


def keep_records(scores: npt.ArrayLike, hold: int) -> FloatArray:
    """scores[t] where it beats every score of the previous `hold` rows, else 0.

    An excursion that keeps growing alerts again only as it gets worse; one that
    merely persists alerts once. NAB rewards only the first alert in a window and
    charges every other one; an on-call human does the same.
    """
    s = np.asarray(scores, dtype=np.float64)
    if hold == 0:
        return s.copy()
    return np.where(s > _past_max(s, hold), s, 0.0)


def novelty_scores(
    timestamps_ns: npt.ArrayLike, values: npt.ArrayLike, config: NoveltyConfig | None = None
) -> FloatArray:
    """One anomaly score in [0, 1) per row: level, seasonal-residual and spread novelty, held.

    Causal (row t reads rows <= t). Values must be finite.
    """
    cfg = NoveltyConfig() if config is None else config
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("novelty_scores needs finite values; drop or fill NaN/inf samples first")
    level = novelty(x, cfg.history, cfg.warmup)
    residual, has_lag = seasonal_residual(timestamps_ns, x, cfg.seasonal_period_ns)
    first_lag = int(np.argmax(has_lag)) if has_lag.any() else x.size
    smoothed = rolling_mean(residual, cfg.seasonal_smooth)
    seasonal = novelty(smoothed, cfg.seasonal_history, cfg.warmup)
    # the residual's own warm-up starts once a full smoothing of real residuals exists
    seasonal[: first_lag + cfg.seasonal_smooth + cfg.warmup] = 0.0
    spread = novelty(rolling_std(x, cfg.spread_window), cfg.spread_history, cfg.warmup)
    spread[: cfg.spread_window + cfg.warmup] = 0.0
    combined = np.maximum(
        level, np.maximum(cfg.seasonal_weight * seasonal, cfg.spread_weight * spread)
    )
    return keep_records(combined, cfg.hold)
