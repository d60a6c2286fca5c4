"""Streaming twin of `detectors.novelty.novelty_scores`: one sample in, that row's score out.

The product watches a metric series one sample at a time; `NoveltyStream` keeps only
what the batch scorer reads for the next row (running sums, the last period of values,
monotonic deques of window extremes) and returns bit-for-bit the score `novelty_scores`
gives the same row over all samples so far. `to_bytes` / `from_bytes` persist it
without pickle.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sized
from dataclasses import dataclass, field

from detectors._novelty_stream_codec import StateReader, StateWriter
from detectors.novelty import NoveltyConfig, _ns

__all__ = ["NoveltyStream"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FORMAT_VERSION = 1


def _npmax(a: float, b: float) -> float:
    """np.maximum on two floats: NaN in either wins, so NaN flows as in the batch code."""
    return a if a >= b or a != a else b


def _excess(a: float, hi: float, lo: float) -> float:
    """`detectors.novelty._excess` for one row, operation by operation."""
    span = _npmax(hi - lo, 1e-9 + 1e-3 * abs(hi))
    e = _npmax(_npmax(a - hi, lo - a), 0.0) / span  # span >= 1e-9 or NaN: never zero
    if not math.isfinite(e):
        return 0.0
    return e / (1.0 + e)


@dataclass(slots=True)
class _SlidingMax:
    """max of the values pushed at clock >= bound (side='left' of the batch searchsorted).

    A monotonic deque: each value enters and leaves once (amortised O(1)). NaN cannot
    sit in the deque's order, so its latest clock is kept apart: while it is inside the
    window the maximum is NaN, as np.maximum makes it in the batch's sparse table.
    """

    clocks: deque[int] = field(default_factory=deque)
    values: deque[float] = field(default_factory=deque)
    nan_clock: int | None = None

    def peek(self, bound: int) -> float:
        """The maximum over the window (-inf when empty), dropping what fell out of it."""
        clocks, values = self.clocks, self.values
        while clocks and clocks[0] < bound:
            clocks.popleft()
            values.popleft()
        if self.nan_clock is not None and self.nan_clock >= bound:
            return math.nan
        return values[0] if values else -math.inf

    def push(self, clock: int, value: float) -> None:
        if value != value:
            self.nan_clock = clock
            return
        clocks, values = self.clocks, self.values
        while values and values[-1] <= value:
            clocks.pop()
            values.pop()
        clocks.append(clock)
        values.append(value)


@dataclass(slots=True)
class _Extremes:
    """`novelty_in_time` for one row: the excess over the past `span_ns` rows, then push."""

    span_ns: int
    high: _SlidingMax = field(default_factory=_SlidingMax)
    low: _SlidingMax = field(default_factory=_SlidingMax)  # of -value, as -range_max(-x)

    def novelty(self, clock: int, value: float) -> float:
        bound = clock - self.span_ns
        e = _excess(value, self.high.peek(bound), -self.low.peek(bound))
        self.high.push(clock, value)
        self.low.push(clock, -value)
        return e


@dataclass(slots=True)
class _WindowSums:
    """Shifted running sums of one or two terms over the rows in (clock - span, clock].

    Mirrors `mean_in_time`: the batch differences np.cumsum (a sequential float64
    accumulation), so each row keeps the running sums as they stood before it and a
    window's sum is `now - before(first row)`, the same two numbers subtracted.
    """

    span_ns: int
    sums: list[float]
    clocks: deque[int] = field(default_factory=deque)
    before: deque[tuple[float, ...]] = field(default_factory=deque)

    def add(self, clock: int, terms: tuple[float, ...]) -> tuple[int, tuple[float, ...]]:
        """Add one row; (rows in the window, each term's window sum)."""
        self.clocks.append(clock)
        self.before.append(tuple(self.sums))
        for k, term in enumerate(terms):
            self.sums[k] += term  # 0.0 + row 0's term: the shifted term there is +0.0
        bound = clock - self.span_ns
        while len(self.clocks) > 1 and self.clocks[0] <= bound:  # row t always counts
            self.clocks.popleft()
            self.before.popleft()
        first = self.before[0]
        return len(self.clocks), tuple(s - f for s, f in zip(self.sums, first, strict=True))


class NoveltyStream:
    """`novelty_scores(timestamps, values, config)[-1]` after each `update`, in O(1) amortised.

    Keeps one seasonal period of (clock, value), the smoothing and spread windows'
    running sums, and monotonic deques of the level, seasonal, spread and hold extremes.
    """

    def __init__(self, config: NoveltyConfig) -> None:
        self.config = config
        ns = _ns  # the batch's own rounding of seconds to ns
        self._warmup_ns = ns(config.warmup_s)
        self._seasonal_gate_ns = ns(config.seasonal_smooth_s) + ns(config.warmup_s)
        self._spread_gate_ns = ns(config.spread_window_s) + ns(config.warmup_s)
        self._hold_ns = ns(config.hold_s)
        self.rows = 0
        self._clock = 0
        self._clock0 = 0
        self._x0 = 0.0  # std_in_time's shift: the first value
        self._lag_from: int | None = None  # clock of the first row with a value a period back
        self._lag_clocks: deque[int] = deque()
        self._lag_values: deque[float] = deque()
        self._smooth = _WindowSums(ns(config.seasonal_smooth_s), [0.0])
        self._spread_sums = _WindowSums(ns(config.spread_window_s), [0.0, 0.0])
        self._level = _Extremes(ns(config.history_s))
        self._seasonal = _Extremes(ns(config.seasonal_history_s))
        self._spread = _Extremes(ns(config.spread_history_s))
        self._hold = _SlidingMax()
        self._last = 0.0  # stuck runs: the previous value, the current run, the longest before
        self._run = 0
        self._longest = 0

    def update(self, t_ns: int, value: float) -> float:
        """Score one sample; raises ValueError (state untouched) on a non-finite value."""
        t, x = _checked_sample(t_ns, value)
        if self.rows == 0:
            self._clock = self._clock0 = t
            self._x0 = x
        clock = self._clock = max(self._clock, t)
        cfg = self.config
        level = self._level.novelty(clock, x)
        if clock - self._clock0 < self._warmup_ns:
            level = 0.0
        seasonal = self._seasonal.novelty(clock, self._smoothed_residual(clock, x))
        if self._lag_from is None or clock < self._lag_from + self._seasonal_gate_ns:
            seasonal = 0.0
        spread = self._spread.novelty(clock, self._local_std(clock, x))
        if clock - self._clock0 < self._spread_gate_ns:
            spread = 0.0
        combined = _npmax(level, _npmax(cfg.seasonal_weight * seasonal, cfg.spread_weight * spread))
        stuck = self._stuck(x)
        if cfg.stuck_weight > 0:
            combined = _npmax(combined, cfg.stuck_weight * stuck)
        self.rows += 1
        if self._hold_ns == 0:
            return combined
        held = combined if combined > self._hold.peek(clock - self._hold_ns) else 0.0
        self._hold.push(clock, combined)
        return held

    def _smoothed_residual(self, clock: int, x: float) -> float:
        """`mean_in_time(seasonal_residual(...))` for this row."""
        bound = clock - self.config.seasonal_period_ns
        clocks, values = self._lag_clocks, self._lag_values
        while len(clocks) > 1 and clocks[1] <= bound:  # keep the latest row <= bound
            clocks.popleft()
            values.popleft()
        residual = 0.0
        if clocks and clocks[0] <= bound:
            residual = x - values[0]
            if self._lag_from is None:
                self._lag_from = clock
        clocks.append(clock)
        values.append(x)
        # mean_in_time shifts by the first residual, which is 0.0 (row 0 has no lag)
        count, (total,) = self._smooth.add(clock, (residual - 0.0,))
        return 0.0 + total / count

    def _local_std(self, clock: int, x: float) -> float:
        """`std_in_time` for this row: both inner means shift by d[0] = 0.0 and d[0]**2."""
        d = x - self._x0
        count, (total, total_sq) = self._spread_sums.add(clock, (d - 0.0, d * d - 0.0))
        mean = 0.0 + total / count
        mean_sq = 0.0 + total_sq / count
        return math.sqrt(_npmax(mean_sq - mean * mean, 0.0))

    def _stuck(self, x: float) -> float:
        """`stuck_runs` for this row: 1.0 where the run first outlasts every earlier run."""
        if self.rows == 0 or x != self._last:
            self._longest = max(self._longest, self._run)
            self._run = 0
        self._run += 1
        self._last = x
        min_samples = self.config.stuck_min_samples
        return 1.0 if self._longest >= min_samples and self._run == self._longest + 1 else 0.0

    # ---- persistence -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state: a format byte, the config, scalars, then packed columns.

        The lag, smoothing and spread buffers each hold the latest rows of the series,
        so one clock column serves all three; the spread sums, when its rows are among
        the lag buffer's, are rebuilt from those values and only the first row's are kept.
        """
        w = StateWriter(_FORMAT_VERSION, self.config)
        w.ints(self.rows, self._clock, self._clock0, self._run, self._longest)
        w.floats(self._x0, self._last, *self._smooth.sums, *self._spread_sums.sums)
        w.optional_int(self._lag_from)
        lag, smooth, spread = self._lag_clocks, self._smooth.clocks, self._spread_sums.clocks
        w.clocks(max(lag, smooth, spread, key=len))
        w.ints(len(lag), len(smooth), len(spread))
        w.column(self._lag_values)
        w.column(row[0] for row in self._smooth.before)
        derived = len(spread) <= len(lag)
        w.ints(derived)
        kept = list(itertools.islice(self._spread_sums.before, 1 if derived else None))
        w.column(row[0] for row in kept)
        w.column(row[1] for row in kept)
        for window in self._windows():
            w.optional_int(window.nan_clock)
            w.clocks(window.clocks)
            w.column(window.values)
        return w.finish()

    @classmethod
    def from_bytes(cls, config: NoveltyConfig, data: bytes) -> NoveltyStream:
        """A stream that continues exactly where the saved one stopped.

        ValueError when `data` is not a saved stream (corrupt, truncated, another format
        version) or was saved under a different config.
        """
        r = StateReader(data, _FORMAT_VERSION, config)
        s = cls(config)
        s.rows, s._clock, s._clock0, s._run, s._longest = r.ints(5)
        s._x0, s._last, smooth, spread, spread_sq = r.floats(5)
        s._smooth.sums, s._spread_sums.sums = [smooth], [spread, spread_sq]
        s._lag_from = r.optional_int()
        recent = r.clocks()
        lengths = r.ints(3)
        if max(lengths) != len(recent) or min(lengths) < 0:
            raise _inconsistent()
        s._lag_clocks, s._smooth.clocks, s._spread_sums.clocks = (
            deque(recent[len(recent) - n :]) for n in lengths
        )
        s._lag_values = deque(r.column())
        s._smooth.before = deque((c,) for c in r.column())
        (derived,) = r.ints(1)
        spread_before: list[tuple[float, ...]] = list(zip(r.column(), r.column(), strict=True))
        if derived:
            spread_before = s._spread_before(spread_before[:1], lengths[2])
        s._spread_sums.before = deque(spread_before)
        for window in s._windows():
            window.nan_clock = r.optional_int()
            window.clocks, window.values = deque(r.clocks()), deque(r.column())
        r.finish()
        s._check_restored()
        return s

    def _spread_before(self, first: list[tuple[float, ...]], rows: int) -> list[tuple[float, ...]]:
        """The spread window's sums before each of its `rows` rows, from the first row's and
        the values in the lag buffer: the additions `_WindowSums.add` made, redone."""
        if len(first) != min(rows, 1) or rows > len(self._lag_values):
            raise _inconsistent()
        before = first
        total, total_sq = first[0] if first else (0.0, 0.0)
        for x in itertools.islice(self._lag_values, len(self._lag_values) - rows, None):
            if len(before) == rows:
                break
            d = x - self._x0
            total, total_sq = total + (d - 0.0), total_sq + (d * d - 0.0)
            before.append((total, total_sq))
        return before

    def _windows(self) -> list[_SlidingMax]:
        """Every monotonic deque, in the order they are saved."""
        pairs = [(e.high, e.low) for e in (self._level, self._seasonal, self._spread)]
        return [w for pair in pairs for w in pair] + [self._hold]

    def _check_restored(self) -> None:
        """Refuse a state no stream could have reached (the checksum passed, the content lies)."""
        buffers: list[tuple[deque[int], Sized]] = [
            (self._lag_clocks, self._lag_values),
            (self._smooth.clocks, self._smooth.before),
            (self._spread_sums.clocks, self._spread_sums.before),
        ]
        buffers += [(w.clocks, w.values) for w in self._windows()]
        ok = self.rows >= 0 and self._clock >= self._clock0 and 0 <= self._run <= self.rows
        if self.rows == 0:
            ok = ok and not any(clocks for clocks, _ in buffers)
        else:
            ok = ok and bool(self._smooth.clocks) and bool(self._spread_sums.clocks)
        for clocks, values in buffers:
            ok = ok and len(clocks) == len(values) and (not clocks or clocks[-1] <= self._clock)
            ok = ok and all(a <= b for a, b in itertools.pairwise(clocks))
        if not ok:
            raise _inconsistent()


def _inconsistent() -> ValueError:
    return ValueError(
        "NoveltyStream.from_bytes: the saved state is inconsistent (corrupt data); "
        "start a fresh NoveltyStream (its state rebuilds from the samples)"
    )


def _checked_sample(t_ns: int, value: float) -> tuple[int, float]:
    t = int(t_ns)
    if not _INT64_MIN <= t <= _INT64_MAX:
        raise ValueError(f"NoveltyStream.update: timestamp {t} ns is outside int64")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(
            f"NoveltyStream.update needs a finite value, got {x!r} at {t} ns; "
            "drop NaN/inf samples before scoring (the state is unchanged)"
        )
    return t, x
