"""`score_series`, the NAB entry point: prequential, warm-up, spikes, and level-shift adaptation."""

from __future__ import annotations

import numpy as np

from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import DetectorConfig
from detectors.series import score_series
from detectors.transforms import Transform

T0 = 19_723 * DAY_NS
STEP = 5 * 60 * 1_000_000_000  # NAB's usual 5-minute spacing


def series(days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = days * 288
    ts = T0 + np.arange(n, dtype=np.int64) * STEP
    hour = (ts // HOUR_NS) % 24
    values = 50 + 10 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 2, n)  # CPU-like, daily cycle
    return ts, values


def test_cold_first_day_then_quiet_then_a_spike_stands_out() -> None:
    ts, x = series(10)
    x[2500] += 40  # one spike on day 8, when hour-of-day baselines are warm
    z = score_series(ts, x, DetectorConfig())
    assert np.isnan(z[:288]).all()  # the first day is warm-up
    assert np.isfinite(z[300:]).all()
    assert np.nanargmax(np.abs(z)) == 2500 and z[2500] > 8
    calm = np.delete(np.abs(z[300:]), 2500 - 300)
    assert np.mean(calm > 4) < 0.005


def test_prequential_scores_do_not_see_the_point_itself() -> None:
    ts, x = series(3)
    z = score_series(ts, x, DetectorConfig())
    x2 = x.copy()
    x2[-1] = 1e6
    z2 = score_series(ts, x2, DetectorConfig())
    assert np.array_equal(z[:-1], z2[:-1], equal_nan=True)


def test_a_permanent_level_shift_stops_scoring_high_after_confirm() -> None:
    ts, x = series(12, seed=1)
    start = 9 * 288
    x[start:] += 25
    cfg = DetectorConfig()
    z = score_series(ts, x, cfg)
    confirm = int(cfg.level_shift.confirm_s * 1e9 // STEP)
    assert np.median(z[start : start + confirm // 2]) > 4  # the shift is seen at first
    after = z[start + confirm + 2 :]  # NaN while the re-anchored baseline re-warms: fail closed
    assert np.mean(np.abs(after) > 4) < 0.02  # then it is the new normal
    off = DetectorConfig.from_flat({"level_shift_enabled": False})
    still = score_series(ts, x, off)[start + confirm + 2 :]
    assert np.mean(np.abs(still) > 4) > 0.2  # without the rule it keeps scoring high for days


def test_unsorted_read_only_input() -> None:
    ts, x = series(4)
    ts[600:] -= HOUR_NS  # a daylight-saving step back, as in NAB's files
    ts.setflags(write=False)
    x.setflags(write=False)
    z = score_series(ts, x, DetectorConfig())
    assert np.isfinite(z[300:]).all() and np.nanmax(np.abs(z)) < 5


def test_log1p_counter_series() -> None:
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(3 * 288, dtype=np.int64) * STEP
    counts = rng.poisson(20, ts.size).astype(float)
    counts[-1] = 200
    z = score_series(ts, counts, DetectorConfig(), Transform.LOG1P)
    assert z[-1] > 5 and np.nanmax(np.abs(z[:-1])) < 5
