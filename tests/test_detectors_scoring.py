"""Scores: per span against a per-span loop, windows against numpy per group, cap, gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.aggregate import LatencyAggregate
from detectors.baseline import Baseline, baseline_from_aggregate
from detectors.buckets import DAY_NS, BucketType
from detectors.config import BaselineConfig, ScoringConfig
from detectors.metric_aggregate import MetricAggregate
from detectors.scoring import (
    BaselineTable,
    cap_scores,
    quantile_se_factor,
    sample_scores,
    score_windows,
    top_per_window,
)
from detectors.transforms import Transform

S = 1_000_000_000
NOW = 19_800 * DAY_NS


def baseline(values: np.ndarray, warm: bool = True, transform: Transform | None = None) -> Baseline:
    agg: LatencyAggregate | MetricAggregate = (
        LatencyAggregate() if transform is None else MetricAggregate(transform)
    )
    agg.add(values)
    first_seen = NOW - 2 * DAY_NS if warm else None
    return baseline_from_aggregate(agg, BucketType.GLOBAL, NOW, first_seen, BaselineConfig())


@pytest.fixture(scope="module")
def table() -> BaselineTable:
    rng = np.random.default_rng(0)
    return BaselineTable.from_baselines(
        [
            baseline(np.exp(rng.normal(0.0, 0.5, 5000))),
            baseline(np.exp(rng.normal(3.0, 0.2, 5000))),
            baseline(np.exp(rng.normal(1.0, 0.5, 5000)), warm=False),
            None,
            baseline(rng.normal(-5.0, 2.0, 5000), transform=Transform.IDENTITY),
        ]
    )


def test_sample_scores_equal_a_per_span_loop(table: BaselineTable) -> None:
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(table), 20_000)
    values = np.where(idx == 4, rng.normal(-5, 4, idx.size), np.exp(rng.normal(0.5, 1.5, idx.size)))
    got = sample_scores(values, idx, table, max_z=4.0)
    forward = list(Transform)
    for v, i, z in zip(values, idx, got, strict=True):
        if not table.warm[i]:
            assert math.isnan(z)
            continue
        t = float(forward[table.transform[i]].forward(v))
        want = max(-4.0, min(4.0, (t - table.center[i]) / table.scale[i]))
        assert z == pytest.approx(want, rel=1e-12)
    assert np.nanmax(np.abs(got)) == 4.0  # the cap is reached on both sides
    assert np.nanmin(got) == -4.0


def test_sample_scores_leave_the_input_alone() -> None:
    table = BaselineTable.from_baselines([baseline(np.arange(100.0), transform=Transform.IDENTITY)])
    values = np.array([1.0, 50.0, 99.0])
    sample_scores(values, np.zeros(3, np.int64), table, max_z=0)
    assert values.tolist() == [1.0, 50.0, 99.0]


def test_cap_is_symmetric_and_zero_disables() -> None:
    z = np.array([-1e6, -3.0, np.nan, 2.0, 5862.0])
    assert np.array_equal(cap_scores(z, 10.0), np.array([-10, -3, np.nan, 2, 10]), equal_nan=True)
    assert np.array_equal(cap_scores(z, 0.0), z, equal_nan=True)


def test_se_factors() -> None:
    assert quantile_se_factor(0.5) == pytest.approx(math.sqrt(math.pi / 2))
    assert quantile_se_factor(0.9) == pytest.approx(1.7094, abs=1e-4)


def test_window_statistics_match_numpy_per_group(table: BaselineTable) -> None:
    rng = np.random.default_rng(2)
    n = 30_000
    keys = rng.integers(0, 2, n)
    starts = NOW + rng.integers(0, 10 * 60 * S, n)
    durs = np.exp(rng.normal(np.where(keys == 1, 3.0, 0.0), 0.6))
    w = score_windows(durs, keys, starts, table, ScoringConfig())
    assert len(w) == 20 and w.count.sum() == n
    for r in range(len(w)):
        sel = (keys == w.key_idx[r]) & (starts // (60 * S) * 60 * S == w.window_start_ns[r])
        assert sel.sum() == w.count[r] and np.all(w.group[sel] == r)
        logs = np.log(durs[sel])  # the statistics are quantiles of log-duration
        assert w.median[r] == pytest.approx(np.exp(np.quantile(logs, 0.5)), rel=1e-9)
        assert w.p90[r] == pytest.approx(np.exp(np.quantile(logs, 0.9)), rel=1e-9)
        se = table.scale[w.key_idx[r]] * quantile_se_factor(0.5) / math.sqrt(30)
        want = (np.quantile(logs, 0.5) - table.center[w.key_idx[r]]) / se
        assert w.z_median[r] == pytest.approx(want, rel=1e-9)


def test_one_slow_span_does_not_move_a_window_but_a_sustained_shift_does(
    table: BaselineTable,
) -> None:
    rng = np.random.default_rng(3)
    normal = np.exp(rng.normal(0.0, 0.5, 2000))
    one_slow = normal.copy()
    one_slow[0] = 10_000.0  # a single 10 s span among 2000
    tail_shift = normal.copy()
    tail_shift[:300] *= 8  # 15 % of requests got 8x slower: the median barely moves, p90 does
    shifted = normal * 2.0  # everything twice as slow
    scores = []
    for durs in (normal, one_slow, tail_shift, shifted):
        w = score_windows(
            durs, np.zeros(durs.size, np.int64), np.full(durs.size, NOW), table, ScoringConfig()
        )
        scores.append(float(w.score[0]))
    assert abs(scores[0]) < 1.5 and abs(scores[1] - scores[0]) < 0.1
    assert scores[2] > 5 and scores[3] > 5


def test_window_gates_min_count_and_cold_keys(table: BaselineTable) -> None:
    cfg = ScoringConfig(min_window_count=5)
    durs = np.ones(4 + 50 + 50)
    keys = np.array([0] * 4 + [2] * 50 + [3] * 50)
    w = score_windows(durs, keys, np.full(durs.size, NOW), table, cfg)
    assert np.isnan(w.score).all()  # too few spans; cold baseline; no baseline
    assert len(score_windows(np.zeros(0), np.zeros(0), np.zeros(0), table, cfg)) == 0


def test_top_per_window_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    group = rng.integers(0, 50, 3000)
    z = rng.normal(0, 1, 3000)
    z[::97] = np.nan
    got = top_per_window(group, z, 3)
    for g in range(50):
        members = np.flatnonzero(group == g)
        ranked = members[np.argsort(-np.nan_to_num(z[members], nan=-np.inf), kind="stable")]
        assert set(got[group[got] == g]) == set(ranked[:3])
    assert len(top_per_window(group, z, 0)) == 0


# -- the raw mean/std latency model (comparison only: BaselineConfig.latency_model = "raw") --


def test_raw_latency_model_scores_windows_against_raw_mean_and_std() -> None:
    from bot.detection.rolling import RollingBaselines
    from detectors.raw_latency import RawLatencyAggregate

    history = np.array([0.3, 0.4, 0.5, 0.45, 12.0, 0.35, 0.6, 40.0, 0.42, 0.5])
    agg = RawLatencyAggregate()
    agg.add(history[:6])
    agg.merge(RawLatencyAggregate().copy()).add(history[6:])
    b = baseline_from_aggregate(agg, BucketType.GLOBAL, NOW, NOW - 2 * DAY_NS,
                                BaselineConfig(global_min_samples=1))
    assert b.transform is Transform.IDENTITY and b.warm
    assert b.center == pytest.approx(np.mean(history), rel=1e-12)
    assert b.raw_std == pytest.approx(np.std(history), rel=1e-12)
    assert b.scale == pytest.approx(np.std(history), rel=1e-12)  # far above the 5 % floor
    # the rolling baselines in raw mode build the same raw moments from spans
    rolling = RollingBaselines(BaselineConfig(global_min_samples=1, global_min_span_s=0,
                                              latency_model="raw"))
    hour_ns = 3_600 * S
    t = NOW - NOW % hour_ns
    rolling.add_spans(np.zeros(10, np.int64), np.full(10, t - hour_ns, np.int64), history,
                      np.zeros(10, np.bool_))
    rb = rolling.baseline(0, t)
    assert (rb.center, rb.raw_std) == pytest.approx((np.mean(history), np.std(history)))
    window = np.array([0.9, 1.1, 1.0, 1.2, 0.8, 1.05])
    cfg = ScoringConfig()
    w = score_windows(window, np.zeros(6, np.int64), np.full(6, t, np.int64),
                      BaselineTable.from_baselines([rb]), cfg)
    se = np.std(history) * quantile_se_factor(0.5) / math.sqrt(6)
    assert w.z_median[0] == pytest.approx((np.median(window) - np.mean(history)) / se)
    assert w.median[0] == pytest.approx(np.median(window))  # identity: ms in, ms out
    # a window at twice the typical 0.45 ms sits below the tail-inflated raw mean (z < 0),
    # while the log model of the same history reads it as a rise
    assert w.z_median[0] < 0
    log_b = baseline_from_aggregate(_log_agg(history), BucketType.GLOBAL, NOW, NOW - 2 * DAY_NS,
                                    BaselineConfig(global_min_samples=1))
    lw = score_windows(window, np.zeros(6, np.int64), np.full(6, t, np.int64),
                       BaselineTable.from_baselines([log_b]), cfg)
    assert lw.z_median[0] > 0


def _log_agg(values: np.ndarray) -> LatencyAggregate:
    agg = LatencyAggregate()
    agg.add(values)
    return agg


def test_raw_and_log_partials_do_not_mix() -> None:
    from detectors.raw_latency import RawLatencyAggregate

    log_agg = LatencyAggregate()
    log_agg.add(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="raw-ms sums"):
        RawLatencyAggregate().merge(log_agg)
    raw = RawLatencyAggregate()
    raw.add(np.array([1.0, 2.0, 9.0]))
    part = RawLatencyAggregate()
    part.add(np.array([9.0]))
    raw.subtract(part)
    assert (raw.mean_t, raw.std_t) == pytest.approx((1.5, 0.5))


def test_unknown_latency_model_is_refused() -> None:
    from detectors.config import ConfigError

    with pytest.raises(ConfigError, match="latency_model"):
        BaselineConfig(latency_model="median")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 5, 2**62])
def test_a_key_index_without_a_table_row_is_refused_by_name(table: BaselineTable, bad: int) -> None:
    # -1 used to score against the last row, and a huge index could wrap onto another key
    keys = np.array([0, 1, bad, 1], dtype=np.int64)
    starts = np.full(4, NOW, dtype=np.int64)
    with pytest.raises(ValueError, match=f"key index {bad} has no row in the baseline table"):
        score_windows(np.ones(4), keys, starts, table, ScoringConfig())
    with_nan = np.array([1.0, np.nan, 1.0, 1.0])  # NaN takes the general path: the same check
    with pytest.raises(ValueError, match="no row in the baseline table"):
        score_windows(with_nan, keys, starts, table, ScoringConfig())
