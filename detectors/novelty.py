"""Novelty scores of one metric series: how far outside everything seen lately a value sits.

A z-score asks "how many standard deviations from normal"; on real operations
series (heavy tails, daily cycles, plateaus) that fires on every busy hour. A
novelty score asks a sharper question: does the value (or the daily-seasonal
residual, or the local spread) leave the range the series has covered over its
recent history, and by how much of that range? New extremes are rare by
construction, so the false-alarm rate stays low without per-series tuning, and
`keep_records` turns a continuing excursion into a single alert. One more kind of
novelty has no extreme at all: a series that repeats one value for longer than it
ever has before (an exporter that froze, a rate stuck at zero); `stuck_runs` scores
the sample at which such a run becomes the longest yet.

Every function is causal: row t uses rows <= t only. Pure numpy, no IO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "NoveltyConfig",
    "hold_records",
    "keep_records",
    "mean_in_time",
    "novelty",
    "novelty_in_time",
    "novelty_scores",
    "range_max",
    "rolling_max",
    "rolling_mean",
    "rolling_std",
    "seasonal_residual",
    "series_clock",
    "std_in_time",
    "stuck_runs",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class NoveltyConfig:
    """Windows and holds are durations (seconds), so an hourly series looks back as far in
    time as a five-minute one; rows are found by their timestamps, so gaps count as time.

    Defaults are the values tuned on the NAB corpus (`bench.nab.opsbot.NAB_NOVELTY`).
    """

    history_s: float = 400 * 86400.0  # the value is compared with the range of this past
    warmup_s: float = 6 * 3600.0  # nothing scores before this much series
    seasonal_period_ns: int = DAY_NS  # residual = value - value one period earlier
    seasonal_smooth_s: float = 4 * 3600.0  # the residual is averaged over this span first
    seasonal_history_s: float = 60 * 86400.0
    seasonal_weight: float = 0.5  # residual and spread novelty count less than the level's
    spread_window_s: float = 24 * 3600.0  # span of the local standard deviation
    spread_history_s: float = 100 * 86400.0
    spread_weight: float = 0.5
    hold_s: float = 50 * 3600.0  # after a score, the next one must beat everything this far back
    # a run of one repeated value scores once it outlasts every earlier run, when the
    # longest earlier run had at least this many samples (samples, not seconds: across
    # a gap in the data a value is missing, not stuck)
    stuck_min_samples: int = 24
    stuck_weight: float = 0.1  # 0 turns it off

    def __post_init__(self) -> None:
        for name in ("history_s", "seasonal_smooth_s", "seasonal_history_s", "spread_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"NoveltyConfig.{name} must be > 0 seconds")
        for name in ("warmup_s", "hold_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"NoveltyConfig.{name} must be >= 0 seconds")
        if self.seasonal_period_ns <= 0:
            raise ValueError("NoveltyConfig.seasonal_period_ns must be > 0")
        if self.stuck_min_samples < 1:
            raise ValueError("NoveltyConfig.stuck_min_samples must be >= 1")
        for name in ("seasonal_weight", "spread_weight", "stuck_weight"):
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
    e = _excess(a, _past_max(a, history), -_past_max(-a, history))
    e[: max(warmup, 1)] = 0.0
    return e


def _excess(a: FloatArray, hi: FloatArray, lo: FloatArray) -> FloatArray:
    """The squashed excess of `novelty` given each row's past maximum and minimum."""
    span = np.maximum(hi - lo, 1e-9 + 1e-3 * np.abs(hi))
    with np.errstate(invalid="ignore"):
        e = np.maximum(np.maximum(a - hi, lo - a), 0.0) / span
    e = np.where(np.isfinite(e), e, 0.0)
    return np.asarray(e / (1.0 + e), dtype=np.float64)


# ---- windows in time ----------------------------------------------------------------------


def series_clock(timestamps_ns: npt.ArrayLike) -> IntArray:
    """The running maximum of the timestamps: a step back (NAB's DST hour) cannot reach
    into the future, and windows found on it by binary search stay causal."""
    ts = np.asarray(timestamps_ns, dtype=np.int64)
    return np.maximum.accumulate(ts) if ts.size else ts


def range_max(x: FloatArray, lo: IntArray, hi: IntArray) -> FloatArray:
    """max(x[lo[t]:hi[t]]) for every t (half-open; -inf where empty), by a sparse table."""
    out = np.full(lo.size, -np.inf)
    length = hi - lo
    some = np.flatnonzero(length > 0)
    if some.size == 0:
        return out
    level = np.frexp(length[some].astype(np.float64))[1] - 1  # floor(log2(length)), exact
    table = [x]
    for k in range(1, int(level.max()) + 1):
        prev, half = table[-1], 1 << (k - 1)
        table.append(np.maximum(prev[:-half], prev[half:]))
    for k in np.unique(level).tolist():
        rows = some[level == k]
        t = table[k]
        out[rows] = np.maximum(t[lo[rows]], t[hi[rows] - (1 << k)])
    return out


def novelty_in_time(x: FloatArray, clock: IntArray, history_ns: int) -> FloatArray:
    """`novelty` against the rows of the past `history_ns` (clock[t] - history <= clock < t's
    row), without warm-up: a row with no past scores 0."""
    first = np.searchsorted(clock, clock - history_ns, side="left")
    rows = np.arange(x.size)
    return _excess(x, range_max(x, first, rows), -range_max(-x, first, rows))


def mean_in_time(x: FloatArray, clock: IntArray, span_ns: int) -> FloatArray:
    """mean of the rows in (clock[t] - span, clock[t]] up to row t."""
    if x.size == 0:
        return np.zeros(0)
    first = np.searchsorted(clock, clock - span_ns, side="right")
    rows = np.arange(x.size)
    first = np.minimum(first, rows)  # a repeated timestamp still averages row t itself
    c = np.concatenate(([0.0], np.cumsum(x - x[0])))  # shifted sums keep precision
    return np.asarray(x[0] + (c[rows + 1] - c[first]) / (rows + 1 - first), dtype=np.float64)


def std_in_time(x: FloatArray, clock: IntArray, span_ns: int) -> FloatArray:
    """Population std of the rows `mean_in_time` averages."""
    if x.size == 0:
        return np.zeros(0)
    d = x - x[0]
    mean = mean_in_time(d, clock, span_ns)
    mean_sq = mean_in_time(d * d, clock, span_ns)
    return np.asarray(np.sqrt(np.maximum(mean_sq - mean * mean, 0.0)), dtype=np.float64)


def hold_records(scores: FloatArray, clock: IntArray, hold_ns: int) -> FloatArray:
    """`keep_records` with the hold in time: scores[t] where it beats every score of the
    rows in [clock[t] - hold, t), else 0."""
    if hold_ns == 0:
        return scores.copy()
    first = np.searchsorted(clock, clock - hold_ns, side="left")
    return np.where(scores > range_max(scores, first, np.arange(scores.size)), scores, 0.0)


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


def stuck_runs(values: npt.ArrayLike, min_samples: int) -> FloatArray:
    """1.0 at the sample where a run of equal consecutive values becomes longer than every
    run before it, provided the longest earlier run had at least `min_samples` samples;
    0 elsewhere.

    Causal: the earlier runs are complete by the time the current one starts, and the
    row that scores is the first at which the run is known to be the longest. A run
    that keeps going scores once; the next one must beat it.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(x.size)
    if x.size == 0:
        return out
    new = np.ones(x.size, dtype=np.bool_)
    new[1:] = x[1:] != x[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, x.size))  # the last run: its length so far
    longest_before = np.zeros(starts.size, dtype=np.int64)
    longest_before[1:] = np.maximum.accumulate(lengths[:-1])
    hit = (longest_before >= min_samples) & (lengths > longest_before)
    out[starts[hit] + longest_before[hit]] = 1.0
    return out


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
    """One anomaly score in [0, 1] per row: level, seasonal-residual, spread and stuck-run
    novelty, held.

    Causal (row t reads rows <= t). Values must be finite. Every window is a span of
    time on the series' clock (see `NoveltyConfig`).
    """
    cfg = NoveltyConfig() if config is None else config
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("novelty_scores needs finite values; drop or fill NaN/inf samples first")
    clock = series_clock(timestamps_ns)
    if x.size != clock.size:
        raise ValueError(f"novelty_scores: {clock.size} timestamps for {x.size} values")
    if x.size == 0:
        return np.zeros(0)
    ns = _ns
    elapsed = clock - clock[0]
    level = novelty_in_time(x, clock, ns(cfg.history_s))
    level[elapsed < ns(cfg.warmup_s)] = 0.0
    residual, has_lag = seasonal_residual(timestamps_ns, x, cfg.seasonal_period_ns)
    smoothed = mean_in_time(residual, clock, ns(cfg.seasonal_smooth_s))
    seasonal = novelty_in_time(smoothed, clock, ns(cfg.seasonal_history_s))
    # the residual's own warm-up starts once a full smoothing of real residuals exists
    lag_from = clock[int(np.argmax(has_lag))] if has_lag.any() else np.iinfo(np.int64).max // 2
    seasonal[clock < lag_from + ns(cfg.seasonal_smooth_s) + ns(cfg.warmup_s)] = 0.0
    spread = novelty_in_time(std_in_time(x, clock, ns(cfg.spread_window_s)), clock,
                             ns(cfg.spread_history_s))
    spread[elapsed < ns(cfg.spread_window_s) + ns(cfg.warmup_s)] = 0.0
    combined = np.maximum(
        level, np.maximum(cfg.seasonal_weight * seasonal, cfg.spread_weight * spread)
    )
    if cfg.stuck_weight > 0:
        np.maximum(combined, cfg.stuck_weight * stuck_runs(x, cfg.stuck_min_samples),
                   out=combined)
    return hold_records(combined, clock, ns(cfg.hold_s))


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
