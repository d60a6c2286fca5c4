"""Window order statistics: the packed-key sort against lexsort, score_windows against a loop."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from detectors import _group_order
from detectors._group_order import dense_groups, sorted_within_groups
from detectors.aggregate import LatencyAggregate
from detectors.baseline import baseline_from_aggregate
from detectors.buckets import DAY_NS, BucketType
from detectors.config import BaselineConfig, ScoringConfig
from detectors.metric_aggregate import MetricAggregate
from detectors.scoring import BaselineTable, quantile_se_factor, score_windows
from detectors.transforms import Transform

S = 1_000_000_000
NOW = 19_800 * DAY_NS


def lexsorted(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    return values[np.lexsort((values, group))]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r, n: r.normal(0, 1, n), id="continuous"),
        pytest.param(lambda r, n: np.exp(r.normal(3, 4, n)), id="positive"),  # bit patterns
        pytest.param(lambda r, n: np.exp(r.normal(0, 1e-9, n)), id="positive-narrow"),
        pytest.param(lambda r, n: r.integers(0, 5, n).astype(float), id="ties"),
        pytest.param(lambda r, n: 1000 + r.integers(0, 50, n) * 1e-9, id="narrow"),
        pytest.param(  # one huge value squeezes the rest into a few quanta: collisions
            lambda r, n: np.append(r.normal(0, 1, n - 1), 1e300), id="collisions"
        ),
        pytest.param(  # positive (bit patterns) with a run in the very last quantum
            lambda r, n: np.append(np.exp(r.normal(0, 1, n - 3)), [1e300, 1.0000001e300, 1e300]),
            id="positive-collisions",
        ),
        pytest.param(lambda r, n: np.append(r.normal(0, 1, n - 2), [np.inf, -np.inf]), id="inf"),
        pytest.param(lambda r, n: np.append(r.normal(0, 1, n - 2), [np.nan, 0.5]), id="nan"),
        pytest.param(lambda r, n: np.full(n, -3.25), id="constant"),
        pytest.param(lambda r, n: np.array([-0.0, 0.0, -1e-300, 1e-300] * (n // 4)), id="zeros"),
    ],
)
@pytest.mark.parametrize("n_groups", [1, 7, 8, 900])  # 8: the top group's bits all ones
def test_sorted_within_groups_equals_lexsort(
    make: Callable[[np.random.Generator, int], np.ndarray], n_groups: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_group_order, "CHUNK", 1000)  # several chunks, the last one short
    rng = np.random.default_rng(n_groups)
    n = 4000
    values = make(rng, n)
    group = rng.integers(0, n_groups, n)
    group[-3:] = n_groups - 1  # the last values (extremes in some cases) share the top group
    codes, dense, _ = dense_groups(group)
    got = sorted_within_groups(values, dense, codes.size)
    assert np.array_equal(got, lexsorted(values, dense), equal_nan=True)
    assert np.array_equal(values, make(np.random.default_rng(n_groups), n), equal_nan=True)


def test_two_sort_fallback_and_single_value(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    values, group = rng.normal(0, 1, 3000), rng.integers(0, 40, 3000)
    monkeypatch.setattr(_group_order, "MIN_VALUE_BITS", 63)  # no room left: two sorts
    assert np.array_equal(sorted_within_groups(values, group, 40), lexsorted(values, group))
    monkeypatch.undo()
    assert sorted_within_groups(np.array([2.5]), np.array([0]), 1).tolist() == [2.5]


@pytest.mark.parametrize("n_value_bits", [None, 63])  # the packed sort, then two sorts
def test_reading_runs_of_two_positions(n_value_bits: int | None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """at(positions, width=2): the values at p and p + 1 (the last value past the end)."""
    if n_value_bits is not None:
        monkeypatch.setattr(_group_order, "MIN_VALUE_BITS", n_value_bits)
    rng = np.random.default_rng(9)
    values = np.append(rng.normal(0, 1, 2999), 1e300)  # collisions: few quanta for the rest
    values[::5] = np.round(values[::5])  # exact ties
    group = rng.integers(0, 30, values.size)
    want = lexsorted(values, group)
    order = _group_order.GroupOrder.of(values, group, 30)
    positions = np.array([0, 1, 7, 1500, values.size - 2, values.size - 1])
    got = order.at(positions, width=2)
    assert got.shape == (2, positions.size)
    assert np.array_equal(got[0], want[positions])
    assert np.array_equal(got[1], want[np.minimum(positions + 1, values.size - 1)])
    assert np.array_equal(order.at(positions), want[positions])


@pytest.mark.parametrize("spread", [10, 10**7, 10**12])  # bincount numbering, then np.unique
def test_dense_groups_equal_unique(spread: int) -> None:
    code = np.random.default_rng(spread).integers(0, spread, 5000)
    codes, group, counts = dense_groups(code)
    want_codes, want_group, want_counts = np.unique(code, return_inverse=True, return_counts=True)
    assert np.array_equal(codes, want_codes) and np.array_equal(group, want_group)
    assert np.array_equal(counts, want_counts)
    codes, group, _ = dense_groups(code - spread // 2)  # negative codes
    assert np.array_equal(codes[group], code - spread // 2)


# ---- score_windows against a plain per-window loop -----------------------------------------


def _baseline(values: np.ndarray, transform: Transform | None = None, warm: bool = True):  # type: ignore[no-untyped-def]
    agg = LatencyAggregate() if transform is None else MetricAggregate(transform)
    agg.add(values)
    first_seen = NOW - 2 * DAY_NS if warm else None
    return baseline_from_aggregate(agg, BucketType.GLOBAL, NOW, first_seen, BaselineConfig())


def reference_windows(
    durs: np.ndarray, keys: np.ndarray, starts: np.ndarray, table: BaselineTable,
    config: ScoringConfig,
) -> dict[tuple[int, int], tuple[float, ...]]:
    """Group in a dict, sort each window's transformed values, interpolate, score."""
    window_ns = config.window_s * S
    windows: dict[tuple[int, int], list[float]] = defaultdict(list)
    transforms = list(Transform)
    for d, k, s in zip(durs.tolist(), keys.tolist(), starts.tolist(), strict=True):
        t = transforms[int(table.transform[k])]
        windows[(k, s // window_ns * window_ns)].append(float(t.forward(d)))
    out: dict[tuple[int, int], tuple[float, ...]] = {}
    for (k, w), vals in windows.items():
        vals.sort()
        n = len(vals)

        def q(p: float, vals: list[float] = vals, n: int = n) -> float:
            pos = p * (n - 1)
            lo = math.floor(pos)
            hi = min(lo + 1, n - 1)
            return vals[lo] + (pos - lo) * (vals[hi] - vals[lo])

        med, p90 = q(0.5), q(0.9)
        root = math.sqrt(min(n, config.max_effective_n))
        scale = table.scale[k]
        z_med = (med - table.center[k]) / (scale * quantile_se_factor(0.5) / root)
        z_p90 = (p90 - table.log_p90[k]) / (scale * quantile_se_factor(0.9) / root)
        z_p90 = z_p90 if n >= config.min_tail_count else math.nan
        score = z_med if math.isnan(z_p90) or abs(z_med) >= abs(z_p90) else z_p90
        score = max(-config.max_z, min(config.max_z, score))
        if not (table.warm[k] and n >= config.min_window_count):
            score = math.nan
        inv = transforms[int(table.transform[k])].inverse
        out[(k, w)] = (n, float(inv(med)), float(inv(p90)), z_med, z_p90, score)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_windows_equals_a_per_window_loop(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_group_order, "CHUNK", 4096 if seed else 1 << 15)
    rng = np.random.default_rng(seed)
    table = BaselineTable.from_baselines(
        [
            _baseline(np.exp(rng.normal(0.0, 0.5, 3000))),
            _baseline(np.exp(rng.normal(3.0, 0.2, 3000))),
            _baseline(rng.normal(-5.0, 2.0, 3000), Transform.IDENTITY),
            _baseline(np.exp(rng.normal(1.0, 0.5, 3000)), warm=False),
            None,
            _baseline(rng.exponential(10.0, 3000), Transform.LOG1P),
        ]
    )
    n = 20_000
    keys = rng.integers(0, len(table), n)
    starts = NOW + rng.integers(0, 30 * 60 * S, n) ** 2 // (30 * 60 * S)  # crowded early windows
    durs = np.exp(rng.normal(np.where(keys == 1, 3.0, 0.0), 0.6))
    durs[::3] = np.round(durs[::3])  # many exact ties, zeros included (the log clamp)
    durs[keys == 2] = rng.normal(-5, 2, int((keys == 2).sum())).round(1)
    lone = n + np.arange(8)  # windows of exactly one span, far from the rest
    keys = np.append(keys, np.arange(8) % len(table))
    starts = np.append(starts, NOW + (100 + lone - n) * 60 * S)
    durs = np.append(durs, [0.0, 1e-9, 5.0, -2.0, 1.0, 1e9, 7.0, 3.0])
    config = ScoringConfig(min_tail_count=20, min_window_count=3)
    got = score_windows(durs, keys, starts, table, config)
    want = reference_windows(durs, keys, starts, table, config)
    assert len(got) == len(want) and int(got.count.sum()) == durs.size
    rows = list(zip(got.key_idx.tolist(), got.window_start_ns.tolist(), strict=True))
    assert rows == sorted(want)  # ordered by key, then window
    for r, row in enumerate(rows):
        have = (
            int(got.count[r]), got.median[r], got.p90[r], got.z_median[r], got.z_p90[r],
            got.score[r],
        )
        assert np.array_equal(np.array(have), np.array(want[row]), equal_nan=True), row
    assert (got.count == 1).sum() >= 8
    window_of = starts // (config.window_s * S) * config.window_s * S
    assert np.array_equal(got.key_idx[got.group], keys)
    assert np.array_equal(got.window_start_ns[got.group], window_of)


def test_score_windows_rejects_arrays_of_different_lengths() -> None:
    table = BaselineTable.from_baselines([_baseline(np.exp(np.arange(100.0) / 50))])
    with pytest.raises(ValueError, match="one entry per span"):
        score_windows(np.ones(3), np.zeros(2, np.int64), np.zeros(3, np.int64), table,
                      ScoringConfig())


# ---- the one-pass packed path of score_windows against the general path --------------------


def test_ordered_bits_keep_the_order_and_fold_zeros() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.normal(0, 1, 3000), np.exp(rng.normal(0, 30, 3000)), -np.exp(rng.normal(0, 30, 3000)),
        [0.0, -0.0, 5e-324, -5e-324, np.inf, -np.inf, 1.0, np.nextafter(1.0, 2.0)],
    ])
    for bits in (16, 30, 64):
        q = _group_order.ordered_bits(values, bits)
        q_by_value = q[np.argsort(values)]
        assert np.all(q_by_value[1:] >= q_by_value[:-1]), bits  # a < b never gets q(a) > q(b)
        assert int(q.max()) < 2**bits
    q = _group_order.ordered_bits(np.array([-0.0, 0.0, 1.0, np.nextafter(1.0, 2.0)]), 64)
    assert q[0] == q[1] and q[2] < q[3]  # equal values share a quantum; all 64 bits are exact


def _mixed_table() -> BaselineTable:
    rng = np.random.default_rng(11)
    return BaselineTable.from_baselines(
        [
            _baseline(np.exp(rng.normal(0.0, 0.5, 3000))),
            _baseline(rng.normal(-5.0, 2.0, 3000), Transform.IDENTITY),
            _baseline(np.exp(rng.normal(1.0, 0.5, 3000)), warm=False),
            None,
            _baseline(rng.exponential(10.0, 3000), Transform.LOG1P),
        ]
    )


def _assert_same_windows(a: object, b: object) -> None:
    for field in ("key_idx", "window_start_ns", "count", "median", "p90", "deviation",
                  "z_median", "z_p90", "score", "group"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), field
        if x.dtype.kind == "f":  # the same bits, the sign of zero included
            assert np.array_equal(np.signbit(x), np.signbit(y)), field


@pytest.mark.parametrize("seed", [0, 1])
def test_packed_path_equals_the_general_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.scoring as scoring

    monkeypatch.setattr(_group_order, "CHUNK", 3000)  # several chunks, the last one short
    rng = np.random.default_rng(seed)
    table, n = _mixed_table(), 20_000
    keys = rng.integers(0, len(table), n)
    starts = NOW + rng.integers(0, 20 * 60 * S, n)
    durs = np.exp(rng.normal(0.0, 2.0, n))
    durs[::4] = np.round(durs[::4])  # exact ties and zeros
    durs[keys == 1] = rng.normal(-1, 2, int((keys == 1).sum())).round(2)  # -0.0 and 0.0 too
    durs[np.flatnonzero(keys == 1)[::7]] = -0.0
    durs[np.flatnonzero(keys == 1)[3::7]] = 0.0
    config = ScoringConfig(min_tail_count=20, min_window_count=3)
    calls: list[bool] = []
    packed = scoring._packed_order

    def spy(*args: object) -> object:
        out = packed(*args)  # type: ignore[arg-type]
        calls.append(out is not None)
        return out

    monkeypatch.setattr(scoring, "_packed_order", spy)
    fast = score_windows(durs, keys, starts, table, config)
    monkeypatch.setattr(scoring, "_packed_order", lambda *args: None)
    general = score_windows(durs, keys, starts, table, config)
    assert calls == [True]
    _assert_same_windows(fast, general)


@pytest.mark.parametrize("case", ["nan", "no-bits", "wide-codes"])
def test_packed_path_falls_back(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.scoring as scoring

    rng = np.random.default_rng(4)
    table, n = _mixed_table(), 5000
    keys = rng.integers(0, len(table), n)
    starts = NOW + rng.integers(0, 10 * 60 * S, n)
    durs = np.exp(rng.normal(0.0, 1.0, n))
    config = ScoringConfig()
    if case == "nan":
        durs[np.flatnonzero(keys == 1)[:3]] = np.nan  # identity transform: NaN stays NaN
    elif case == "no-bits":
        monkeypatch.setattr(_group_order, "MIN_VALUE_BITS", 63)
    else:
        starts[0] = NOW + 10**6 * 60 * S  # a million windows: too many codes for a bincount
    assert scoring._packed_order(
        np.asarray(durs), keys, starts, config.window_s * S,
        int(starts.min()) // (config.window_s * S),
        int(starts.max()) // (config.window_s * S) - int(starts.min()) // (config.window_s * S) + 1,
        table,
    ) is None
    got = score_windows(durs, keys, starts, table, config)
    monkeypatch.setattr(scoring, "_packed_order", lambda *args: None)
    _assert_same_windows(got, score_windows(durs, keys, starts, table, config))
    assert np.isfinite(got.median).sum() > 0


def test_packed_path_sends_a_key_outside_the_table_to_the_general_path() -> None:
    import detectors.scoring as scoring

    table = _mixed_table()
    starts = NOW + np.arange(6, dtype=np.int64) * S
    for bad in (len(table), -1):
        keys = np.array([0, 1, bad, 0, 1, 0])
        assert scoring._packed_order(
            np.ones(6), keys, starts, 60 * S, NOW // (60 * S), 1, table
        ) is None
    with pytest.raises(ValueError, match="no row in the baseline table"):  # named, not wrapped
        score_windows(np.ones(6), np.array([0, 1, len(table), 0, 1, 0]), starts, table,
                      ScoringConfig())
