"""detectors.novelty: rolling statistics against numpy, novelty and hold rules, causality."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.novelty import (
    DAY_NS,
    NoveltyConfig,
    hold_records,
    keep_records,
    mean_in_time,
    novelty,
    novelty_in_time,
    novelty_scores,
    range_max,
    rolling_max,
    rolling_mean,
    rolling_std,
    seasonal_residual,
    series_clock,
    std_in_time,
    stuck_runs,
)

FIVE_MIN_NS = 300 * 10**9
T0_NS = int(np.datetime64("2014-01-06T00:00:00", "ns").astype(np.int64))


@pytest.mark.parametrize("window", [1, 2, 7, 50, 500])
def test_rolling_statistics_match_numpy_over_each_window(window: int) -> None:
    x = np.random.default_rng(window).normal(1e6, 3.0, 300)  # a large level: precision matters
    for t in range(x.size):
        part = x[max(0, t - window + 1) : t + 1]
        assert rolling_max(x, window)[t] == part.max()
        assert rolling_mean(x, window)[t] == pytest.approx(part.mean(), rel=1e-12)
        assert rolling_std(x, window)[t] == pytest.approx(part.std(), rel=1e-6, abs=1e-6)


def test_novelty_is_the_excess_over_the_past_range_in_units_of_that_range() -> None:
    x = np.concatenate([np.tile([0.0, 10.0], 10), [5.0, 20.0, -10.0, 40.0]])
    e = novelty(x, history=100, warmup=2)
    assert e[20] == 0.0  # inside [0, 10]
    assert e[21] == pytest.approx(1.0 / 2.0)  # 10 over a range of 10: e = 1, squashed 1/2
    assert e[22] == pytest.approx(0.5 / 1.5)  # 10 under a range of 20 (now [0, 20])
    assert e[23] == pytest.approx(20 / 30 / (1 + 20 / 30))  # 20 over the range [-10, 20]
    assert np.all(e[:2] == 0.0)  # warm-up


def test_a_step_off_a_flatline_scores_near_one() -> None:
    x = np.full(400, 5.0)
    x[350] = 6.0
    e = novelty(x, history=100, warmup=10)
    assert e[350] > 0.99 and np.count_nonzero(e) == 1


def test_seasonal_residual_uses_the_latest_row_a_period_back_even_when_time_steps_back() -> None:
    ts = T0_NS + np.arange(600, dtype=np.int64) * FIVE_MIN_NS
    x = np.arange(600, dtype=np.float64) ** 1.5
    r, ok = seasonal_residual(ts, x, DAY_NS)
    assert not ok[:288].any() and ok[288:].all()
    np.testing.assert_allclose(r[288:], x[288:] - x[:-288])
    back = ts.copy()
    back[400:] -= 12 * FIVE_MIN_NS  # an hour repeated, as NAB's DST artefacts
    r_back, _ = seasonal_residual(back, x, DAY_NS)
    np.testing.assert_allclose(r_back[:400], r[:400])


def test_keep_records_alerts_once_per_excursion_and_again_only_when_it_worsens() -> None:
    s = np.zeros(50)
    s[10:20] = 0.4  # a persisting excursion: one alert
    s[25] = 0.6  # worse than anything in the hold: alerts again
    s[40] = 0.5  # after the hold (15 rows): alerts
    kept = keep_records(s, hold=14)
    assert np.flatnonzero(kept).tolist() == [10, 25, 40]
    np.testing.assert_array_equal(keep_records(s, hold=0), s)


def _daily(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0_NS + np.arange(n, dtype=np.int64) * FIVE_MIN_NS
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    return ts, values


def test_novelty_scores_find_a_planted_step_with_few_alerts_before_it() -> None:
    ts, values = _daily(4000)
    values[3000:3100] += 40
    scores = novelty_scores(ts, values)
    assert np.all((scores >= 0) & (scores < 1))
    assert int(np.argmax(scores)) == 3000
    assert scores[3000] > 2 * scores[:3000].max()


def test_novelty_scores_find_a_day_whose_cycle_is_missing() -> None:
    ts, values = _daily(4000, seed=1)
    values[2880:3168] = 50 + np.random.default_rng(2).normal(0, 1, 288)  # a flat day, same level
    scores = novelty_scores(ts, values)
    assert 2880 <= int(np.argmax(scores[300:])) + 300 < 3168


def test_novelty_scores_are_causal() -> None:
    ts, values = _daily(3000, seed=3)
    full = novelty_scores(ts, values)
    for cut in (301, 1200, 2345):
        np.testing.assert_array_equal(novelty_scores(ts[:cut], values[:cut]), full[:cut])
        future = values.copy()
        future[cut:] = 1e6 - 50 * future[cut:]
        np.testing.assert_array_equal(novelty_scores(ts, future)[:cut], full[:cut])


def test_novelty_scores_refuse_non_finite_values_and_bad_config() -> None:
    ts, values = _daily(500)
    values[7] = np.nan
    with pytest.raises(ValueError, match="finite"):
        novelty_scores(ts, values)
    with pytest.raises(ValueError, match="history_s"):
        NoveltyConfig(history_s=0)
    with pytest.raises(ValueError, match="hold_s"):
        NoveltyConfig(hold_s=-1.0)
    with pytest.raises(ValueError, match="seasonal_weight"):
        NoveltyConfig(seasonal_weight=2.0)
    with pytest.raises(ValueError, match="stuck_min_samples"):
        NoveltyConfig(stuck_min_samples=0)
    with pytest.raises(ValueError, match="stuck_weight"):
        NoveltyConfig(stuck_weight=-0.1)


# ---- stuck runs ------------------------------------------------------------------------------


def _stuck_brute_force(x: np.ndarray, min_samples: int) -> np.ndarray:
    """Row by row: the current run's length against the longest run that ended before it."""
    out = np.zeros(x.size)
    longest, start = 0, 0
    for i in range(x.size):
        if i and x[i] != x[i - 1]:
            longest, start = max(longest, i - start), i
        if longest >= min_samples and i - start + 1 == longest + 1:
            out[i] = 1.0
    return out


@pytest.mark.parametrize("min_samples", [1, 3, 8])
def test_stuck_runs_match_a_row_by_row_count(min_samples: int) -> None:
    rng = np.random.default_rng(min_samples)
    runs = rng.integers(1, 15, 300)  # run lengths, then a value per run (repeats allowed)
    x = np.repeat(rng.integers(0, 3, runs.size).astype(np.float64), runs)
    np.testing.assert_array_equal(stuck_runs(x, min_samples), _stuck_brute_force(x, min_samples))
    assert stuck_runs(x, min_samples).sum() > 0


def test_a_frozen_series_scores_once_when_it_outlasts_every_earlier_run() -> None:
    ts, values = _daily(2000, seed=4)
    values = np.round(values)  # plateaus of a few samples, as a coarse gauge shows
    before = values[:1500]
    longest = int(np.diff(np.flatnonzero(np.diff(np.r_[np.nan, before, np.nan]) != 0)).max())
    frozen = values.copy()
    level = values[1500] if values[1500] != values[1499] else values[1500] + 1.0
    frozen[1500:] = level  # the exporter froze at an ordinary value
    stuck = stuck_runs(frozen, min_samples=2)
    assert stuck[1500 + longest] == 1.0  # the first sample past the longest earlier run
    assert stuck[1500 + longest + 1 :].sum() == 0  # a run that keeps going scores once
    on = novelty_scores(ts, frozen, NoveltyConfig(stuck_min_samples=2, stuck_weight=0.3))
    off = novelty_scores(ts, frozen, NoveltyConfig(stuck_min_samples=2, stuck_weight=0.0))
    assert on[1500 + longest] >= 0.3 > off[1500 + longest]


def test_stuck_runs_stay_quiet_until_some_run_is_long_enough() -> None:
    x = np.array([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0])
    assert stuck_runs(x, min_samples=3).tolist() == [0.0] * 9 + [1.0]
    assert stuck_runs(x, min_samples=4).sum() == 0
    assert stuck_runs(np.zeros(0), 1).size == 0


# ---- windows in time -------------------------------------------------------------------------


def test_range_max_matches_brute_force_over_arbitrary_ranges() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, 700)
    lo = rng.integers(0, 700, 2000)
    hi = np.minimum(lo + rng.integers(0, 400, 2000), 700)
    got = range_max(x, lo, hi)
    for a, b, m in zip(lo, hi, got, strict=True):
        assert m == (x[a:b].max() if b > a else -np.inf)


def test_time_windows_equal_row_windows_on_a_regular_grid() -> None:
    ts, x = _daily(2500, seed=4)
    clock = series_clock(ts)
    for rows in (1, 24, 96, 1000):
        span = rows * FIVE_MIN_NS
        np.testing.assert_allclose(mean_in_time(x, clock, span), rolling_mean(x, rows), rtol=1e-12)
        np.testing.assert_allclose(std_in_time(x, clock, span), rolling_std(x, rows), rtol=1e-9)
        want = novelty(x, rows, 0)
        got = novelty_in_time(x, clock, span)
        np.testing.assert_array_equal(got[1:], want[1:])
        s = np.random.default_rng(rows).random(x.size)
        np.testing.assert_array_equal(hold_records(s, clock, span), keep_records(s, rows))


def test_windows_are_time_so_a_gap_counts_and_an_hourly_series_matches_a_five_minute_one() -> None:
    ts, x = _daily(600, seed=5)
    gap = ts.copy()
    gap[300:] += 2 * DAY_NS  # two days without data: the 1-day window after it holds one row
    m = mean_in_time(x, series_clock(gap), DAY_NS)
    assert m[300] == pytest.approx(x[300]) and m[301] == pytest.approx(x[300:302].mean())
    hourly_ts = T0_NS + np.arange(500, dtype=np.int64) * 12 * FIVE_MIN_NS
    hourly = np.random.default_rng(6).normal(10, 1, 500)
    hourly[400] = 30.0
    fine_ts = T0_NS + np.arange(500 * 12, dtype=np.int64) * FIVE_MIN_NS
    fine = np.repeat(hourly, 12)  # the same signal sampled every five minutes
    cfg = NoveltyConfig(seasonal_weight=0.0, spread_weight=0.0, hold_s=3 * 86400.0)
    coarse_scores = novelty_scores(hourly_ts, hourly, cfg)
    fine_scores = novelty_scores(fine_ts, fine, cfg)
    np.testing.assert_allclose(fine_scores[::12], coarse_scores, atol=1e-12)
    assert int(np.argmax(coarse_scores)) == 400
