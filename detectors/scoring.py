"""Scores: per span or sample (streaming), and per key per window (the alerting unit).

Alerting unit: one span key over one window (`ScoringConfig.window_s`, a minute
by default). A window scores how far its median and its p90 of log-duration sit
from the baseline, in standard errors for its span count (the p90 only from
`min_tail_count` spans up), so one slow span among thousands moves nothing while
a sustained shift of the median, or of the slowest tenth of traffic, does.
Single-span scores only pick exemplars. A score is signed (positive = higher
than normal), floored through the baseline's scale, capped at +-max_z, and NaN
where the baseline is cold. Deciding what to do with it lives elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from detectors._group_order import GroupOrder, chunks, dense_groups
from detectors._window_keys import ValuesAt, packed_window_order
from detectors.baseline import Baseline
from detectors.config import ScoringConfig
from detectors.transforms import Transform

__all__ = [
    "BaselineTable",
    "WindowScores",
    "cap_scores",
    "quantile_se_factor",
    "sample_scores",
    "score_windows",
    "top_per_window",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_TRANSFORMS = tuple(Transform)


def quantile_se_factor(q: float) -> float:
    """Standard error of a sample q-quantile, in units of sigma / sqrt(n), for normal data."""
    nd = NormalDist()
    return math.sqrt(q * (1 - q)) / nd.pdf(nd.inv_cdf(q))


_SE_MEDIAN = quantile_se_factor(0.5)  # sqrt(pi / 2) = 1.2533
_SE_P90 = quantile_se_factor(0.9)  # 1.7094


@dataclass(frozen=True, slots=True)
class BaselineTable:
    """Baselines of many series as columns, indexed by series (key) index, for vector scoring."""

    center: FloatArray
    scale: FloatArray
    log_p90: FloatArray  # transform(p90) of the baseline, for the window's tail statistic
    p50: FloatArray  # raw units: what the minimum-deviation rule compares a window with
    p90: FloatArray
    transform: IntArray  # index into tuple(Transform)
    warm: BoolArray
    inv_scale: FloatArray  # 1 / scale where warm, NaN where cold: the gate folded into one gather

    @classmethod
    def from_baselines(cls, baselines: Sequence[Baseline | None]) -> BaselineTable:
        """Row i is baselines[i]; None (no data yet) is a cold row."""
        n = len(baselines)
        center, scale, log_p90, p50, p90 = (np.full(n, np.nan) for _ in range(5))
        kind, warm = np.zeros(n, np.int64), np.zeros(n, np.bool_)
        for i, b in enumerate(baselines):
            if b is None:
                continue
            center[i], scale[i], warm[i], p50[i], p90[i] = b.center, b.scale, b.warm, b.p50, b.p90
            log_p90[i] = float(b.transform.forward(b.p90))
            kind[i] = _TRANSFORMS.index(b.transform)
        with np.errstate(divide="ignore"):
            inv_scale = np.where(warm, 1.0 / scale, np.nan)
        return cls(center, scale, log_p90, p50, p90, kind, warm, inv_scale)

    def __len__(self) -> int:
        return int(self.center.size)

    def forward(self, values: FloatArray, idx: IntArray) -> FloatArray:
        """Each value transformed by its own series' transform."""
        if self.transform.size and (self.transform == self.transform[0]).all():
            return _TRANSFORMS[int(self.transform[0])].forward(values)  # one kind: no masks
        out = np.empty(values.size, np.float64)
        kinds = self.transform[idx]
        for code, transform in enumerate(_TRANSFORMS):
            mask = kinds == code
            if mask.any():
                out[mask] = transform.forward(values[mask])
        return out


def cap_scores(z: FloatArray, max_z: float) -> FloatArray:
    """Symmetric cap at +-max_z; max_z = 0 disables it. NaN stays NaN."""
    return np.clip(z, -max_z, max_z) if max_z > 0 else z


def sample_scores(
    values: npt.ArrayLike, idx: npt.ArrayLike, table: BaselineTable, max_z: float
) -> FloatArray:
    """Streaming score of each span duration (ms) or metric sample against its series' baseline.

    `idx[i]` is the row of value i in `table`. Cold rows give NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    i = np.asarray(idx, dtype=np.int64)
    z = table.forward(v, i) - table.center[i]  # a new array: identity's forward is a view
    z *= table.inv_scale[i]  # NaN for cold rows
    return cap_scores(z, max_z)


@dataclass(frozen=True, slots=True)
class WindowScores:
    """One row per (key, window) that had at least one span; arrays of equal length."""

    key_idx: IntArray
    window_start_ns: IntArray
    count: IntArray
    median: FloatArray  # quantiles of log-duration (linear interpolation), back in raw units (ms)
    p90: FloatArray
    deviation: FloatArray  # transformed median - baseline center (ln units for latency)
    z_median: FloatArray  # uncapped
    z_p90: FloatArray  # uncapped; NaN below ScoringConfig.min_tail_count spans
    score: FloatArray  # the larger of the two in magnitude, signed, capped; NaN if not scored
    group: IntArray  # per input span: its row here (for exemplars)

    def __len__(self) -> int:
        return int(self.key_idx.size)


def _group_quantiles(
    order: GroupOrder, starts: IntArray, counts: IntArray, qs: tuple[float, ...]
) -> list[FloatArray]:
    """np.quantile(..., method='linear') of every group of `order` at each q, reading the
    two order statistics of every quantile in one `GroupOrder.at` (one gather, one
    resolution of shared quanta)."""
    m, last = counts.size, counts - 1
    pos = [q * last.astype(np.float64) for q in qs]
    lo = [np.floor(p).astype(np.int64) for p in pos]
    pairs = order.at(np.concatenate([starts + low for low in lo]), width=2)
    out: list[FloatArray] = []
    for j, (p, low) in enumerate(zip(pos, lo, strict=True)):
        a, after = pairs[0, j * m : (j + 1) * m], pairs[1, j * m : (j + 1) * m]
        b = np.where(low < last, after, a)  # the upper statistic is the lower one at the end
        out.append(a + (p - low) * (b - a))
    return out


def score_windows(
    durations_ms: npt.ArrayLike,
    key_idx: npt.ArrayLike,
    start_ns: npt.ArrayLike,
    table: BaselineTable,
    config: ScoringConfig,
) -> WindowScores:
    """Score every (key, window) present in a batch of spans; fully vectorised.

    Rows come ordered by key, then window. The order statistics are exact: each
    window's transformed values in ascending order, as a full sort would give them
    (see `detectors._group_order` for the one-sort way there).
    """
    d = np.asarray(durations_ms, dtype=np.float64)
    k = np.asarray(key_idx, dtype=np.int64)
    start = np.asarray(start_ns, dtype=np.int64)
    window_ns = config.window_s * 1_000_000_000
    if not d.size == k.size == start.size:
        raise ValueError(
            f"score_windows: durations ({d.size}), key indices ({k.size}) and start times "
            f"({start.size}) must have one entry per span"
        )
    if d.size == 0:
        e = np.zeros(0, np.int64)
        f = np.zeros(0, np.float64)
        return WindowScores(e, e, e, f, f, f, f, f, f, e)
    lo, hi = _min_max(start)
    first = lo // window_ns
    n_windows = hi // window_ns - first + 1
    packed = _packed_order(d, k, start, window_ns, first, n_windows, table)
    if packed is None:  # the fast path refuses out-of-range keys: name them here
        _check_key_range(k, len(table))
        code, logd = _codes_and_logs(d, k, start, window_ns, first, n_windows, table)
        codes, group, counts = dense_groups(code)
        order = GroupOrder.of(logd, group, codes.size, spare=code)  # codes dead: keys go there
    else:
        codes, group, counts, order = packed
    starts = np.cumsum(counts) - counts
    med, p90 = _group_quantiles(order, starts, counts, (0.5, 0.9))
    gk = codes // n_windows
    z_med, z_p90, score = _window_z(med, p90, counts, gk, table, config)
    return WindowScores(
        key_idx=gk,
        window_start_ns=(codes % n_windows + first) * window_ns,
        count=counts,
        median=_inverse(med, gk, table),
        p90=_inverse(p90, gk, table),
        deviation=med - table.center[gk],
        z_median=z_med,
        z_p90=z_p90,
        score=score,
        group=group,
    )


def _check_key_range(k: IntArray, n_keys: int) -> None:
    lo, hi = _min_max(k)
    if lo < 0 or hi >= n_keys:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"score_windows: key index {bad} has no row in the baseline table (rows 0.."
            f"{n_keys - 1}); build the table with one baseline (or None) per key index"
        )


def _min_max(a: IntArray) -> tuple[int, int]:
    """a.min() and a.max() in one read of `a` from memory (the second, per chunk, hits cache)."""
    lows, highs = zip(*((int(a[p].min()), int(a[p].max())) for p in chunks(a.size)), strict=True)
    return min(lows), max(highs)


def _packed_order(
    d: FloatArray, k: IntArray, start: IntArray, window_ns: int, first: int, n_windows: int,
    table: BaselineTable,
) -> tuple[IntArray, IntArray, IntArray, GroupOrder] | None:
    """Codes, groups, counts and the window order from one pass over the spans and one
    sort (`detectors._window_keys`); None where the general path must take over."""
    return packed_window_order(
        d, k, start, window_ns, first, n_windows, len(table), _transformed_at(d, k, table)
    )


def _transformed_at(d: FloatArray, k: IntArray, table: BaselineTable) -> ValuesAt:
    """Transformed durations of chosen spans: the few order statistics read after the sort.

    Their key indices are read only where the table mixes transforms: after the sort
    each read of a million-span array at a random index is a cache miss.
    """
    kinds = table.transform
    if kinds.size and (kinds == kinds[0]).all():
        transform = _TRANSFORMS[int(kinds[0])]
        return lambda i: transform.forward(d[i])
    return lambda i: table.forward(d[i], k[i])


def _codes_and_logs(
    d: FloatArray, k: IntArray, start: IntArray, window_ns: int, first: int, n_windows: int,
    table: BaselineTable,
) -> tuple[IntArray, FloatArray]:
    """Each span's (key, window) code, key-major, and its transformed duration (in chunks)."""
    code, logd = np.empty(d.size, np.int64), np.empty(d.size, np.float64)
    for part in chunks(d.size):
        c = k[part] * n_windows
        c += start[part] // window_ns
        c -= first
        code[part] = c
        logd[part] = table.forward(d[part], k[part])
    return code, logd


def _window_z(
    med: FloatArray,
    p90: FloatArray,
    counts: IntArray,
    gk: IntArray,
    table: BaselineTable,
    config: ScoringConfig,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    root_n = np.sqrt(np.minimum(counts, config.max_effective_n).astype(np.float64))
    scale = table.scale[gk]
    with np.errstate(invalid="ignore", divide="ignore"):
        z_med = (med - table.center[gk]) / (scale * _SE_MEDIAN / root_n)
        z_p90 = (p90 - table.log_p90[gk]) / (scale * _SE_P90 / root_n)
    z_p90 = np.where(counts >= config.min_tail_count, z_p90, np.nan)
    score = np.where(np.abs(z_med) >= np.nan_to_num(np.abs(z_p90)), z_med, z_p90)
    score = cap_scores(score, config.max_z)
    ok = table.warm[gk] & (counts >= config.min_window_count)
    return z_med, z_p90, np.where(ok, score, np.nan)


def _inverse(values: FloatArray, idx: IntArray, table: BaselineTable) -> FloatArray:
    out = np.empty(values.size, np.float64)
    kinds = table.transform[idx]
    for code, transform in enumerate(_TRANSFORMS):
        mask = kinds == code
        if mask.any():
            out[mask] = transform.inverse(values[mask])
    return out


def top_per_window(group: npt.ArrayLike, span_z: npt.ArrayLike, k: int) -> IntArray:
    """Indices of the (at most) k highest-scoring spans of every window: exemplar candidates.

    NaN scores rank last. Result is ordered by window, then by descending score.
    """
    g = np.asarray(group, dtype=np.int64)
    z = np.nan_to_num(np.asarray(span_z, dtype=np.float64), nan=-np.inf)
    if g.size == 0 or k <= 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((-z, g))
    sg = g[order]
    first = np.concatenate([[True], sg[1:] != sg[:-1]])
    start_of = np.maximum.accumulate(np.where(first, np.arange(sg.size), 0))
    rank = np.arange(sg.size) - start_of
    return order[rank < k].astype(np.int64)
