"""Reference detectors of the NAB harness: each against a direct, row-by-row computation."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nab import HourOfWeekZScoreDetector, IsolationForestDetector
from bench.nab.reference import DAY_S, HOUR_NS, BucketLevel
from tests.nab_support import FIVE_MIN_NS, T0_NS, daily_series

# Gates small enough that four weeks of 30-minute rows reach every level.
SMALL_LEVELS = (
    BucketLevel("hour_of_week", 168, 4, 14 * DAY_S),
    BucketLevel("hour_of_day", 24, 10, 3 * DAY_S),
    BucketLevel("global", 1, 20, 1 * DAY_S),
)


def _direct_hour_of_week(
    ts: np.ndarray, values: np.ndarray, levels: tuple[BucketLevel, ...], window_days: int
) -> tuple[np.ndarray, list[str]]:
    """Row by row: the first warm level's mean/std over earlier whole hours, floored spread."""
    hours = ts // HOUR_NS
    week_hour = (ts // (86400 * 10**9) + 3) % 7 * 24 + hours % 24  # 1970-01-01 was a Thursday
    expected, used = np.zeros(values.size), []
    for i in range(values.size):
        past = (hours < hours[i]) & (hours >= hours[i] - window_days * 24)
        past[i:] = False
        age_s = (ts[i] - ts[0]) / 1e9
        for level in levels:
            same = past & (week_hour % level.buckets == week_hour[i] % level.buckets)
            if same.sum() >= level.min_samples and age_s >= level.min_span_s:
                mean, std = values[same].mean(), values[same].std()
                z = abs(values[i] - mean) / max(std, abs(mean) * 0.05, 0.001)
                expected[i] = z / (1 + z)
                used.append(level.name)
                break
        else:
            used.append("cold")
    return expected, used


def test_hour_of_week_zscore_matches_a_direct_computation_through_every_fallback_level() -> None:
    # four weeks, 30-minute steps
    ts, values = daily_series(4 * 7 * 48, seed=5, step_ns=1800 * 10**9)
    detector = HourOfWeekZScoreDetector(levels=SMALL_LEVELS, window_days=20)
    expected, used = _direct_hour_of_week(ts, values, SMALL_LEVELS, window_days=20)
    np.testing.assert_allclose(detector.score_series(ts, values), expected, rtol=0, atol=1e-9)
    assert {"cold", "global", "hour_of_day", "hour_of_week"} <= set(used)


def test_default_gates_fall_back_to_hour_of_day_on_a_two_week_series() -> None:
    """opsbot's gates: global after a day, hour-of-day after a week, never hour-of-week."""
    ts, values = daily_series(14 * 288, seed=7, step_ns=FIVE_MIN_NS)
    levels = HourOfWeekZScoreDetector().levels
    expected, used = _direct_hour_of_week(ts, values, levels, window_days=30)
    got = HourOfWeekZScoreDetector().score_series(ts, values)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert "hour_of_week" not in used
    assert used.index("global") == 288 and used.index("hour_of_day") == 7 * 288


def test_a_flat_series_scores_finite_and_a_step_off_it_scores_high() -> None:
    """The spread floor: no infinite z (score 1) off a zero-variance bucket."""
    ts = T0_NS + np.arange(10 * 288, dtype=np.int64) * FIVE_MIN_NS
    values = np.full(ts.size, 40.0)
    values[9 * 288] = 80.0  # 40 above a level of 40: z = 40 / (5% of 40) = 20
    scores = HourOfWeekZScoreDetector().score_series(ts, values)
    assert scores.max() < 1.0 and np.count_nonzero(scores) == 1
    assert scores[9 * 288] == 20 / 21


def test_repeated_and_backward_timestamps_only_see_earlier_rows() -> None:
    """NAB's clocks repeat at DST and step back: the running max of time decides the past."""
    ts, values = daily_series(3 * 288, seed=3, step_ns=FIVE_MIN_NS)
    ts = ts.copy()
    ts[500:512] -= HOUR_NS  # an hour replayed
    full = HourOfWeekZScoreDetector().score_series(ts, values)
    for cut in (505, 600):
        part = HourOfWeekZScoreDetector().score_series(ts[:cut], values[:cut])
        np.testing.assert_array_equal(part, full[:cut])


def test_isolation_forest_ranks_a_spike_first_and_scores_nothing_before_its_first_fit() -> None:
    rng = np.random.default_rng(2)
    values = 20 + rng.normal(0, 1, 1500)
    values[1200] += 12
    ts = T0_NS + np.arange(values.size, dtype=np.int64) * FIVE_MIN_NS
    scores = IsolationForestDetector(n_estimators=50).score_series(ts, values)
    assert np.all(scores[:250] == 0.0) and np.all(scores[250:] > 0.0)
    assert int(np.argmax(scores)) == 1200 and scores.max() <= 1.0
    assert scores[1200] - np.quantile(scores[250:], 0.99) > 0.05


def test_isolation_forest_refuses_settings_it_cannot_fit_with() -> None:
    with pytest.raises(ValueError, match="first_fit > diffs"):
        IsolationForestDetector(diffs=3, first_fit=4)
    with pytest.raises(ValueError, match="train_rows"):
        IsolationForestDetector(train_rows=1)
