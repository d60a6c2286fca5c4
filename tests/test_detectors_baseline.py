"""Baselines: variance floor, warm-up gate, bucket fallback, and the streaming detector's totals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.aggregate import LatencyAggregate
from detectors.baseline import build_baseline, transformed_floor, variance_floor, warmup_ok
from detectors.buckets import DAY_NS, HOUR_NS, BucketType
from detectors.config import BaselineConfig, DetectorConfig, WarmupGate
from detectors.metric_aggregate import MetricAggregate
from detectors.series import latency_detector, metric_detector
from detectors.transforms import Transform

S = 1_000_000_000
T0 = 19_723 * DAY_NS  # 2024-01-01, a Monday


def lat(values: np.ndarray | list[float]) -> LatencyAggregate:
    agg = LatencyAggregate()
    agg.add(np.asarray(values, dtype=np.float64))
    return agg


# -- variance floor --


def test_variance_floor_is_the_hybrid_rule() -> None:
    assert variance_floor(2.0, 10.0, 0.05, 0.001) == 2.0  # real spread wins
    assert variance_floor(0.0, 10.0, 0.05, 0.001) == 0.5  # zero variance: 5 % of |mean|
    assert variance_floor(0.0, -10.0, 0.05, 0.001) == 0.5  # negative mean: |mean|
    assert variance_floor(0.0, 0.0, 0.05, 0.001) == 0.001  # zero mean: absolute floor
    assert variance_floor(0.0001, 0.01, 0.05, 0.001) == 0.001


def test_floor_in_log_space_is_relative_for_latency() -> None:
    # 5 % of the level in ms is 0.05 in ln(ms), whatever the level ...
    assert transformed_floor(200.0, Transform.LOG, 0.05, 0.001) == pytest.approx(0.05)
    # ... until 0.001 ms (1 us) is wider than 5 %: at 0.01 ms that is 10 %.
    assert transformed_floor(0.01, Transform.LOG, 0.05, 0.001) == pytest.approx(0.1)
    assert transformed_floor(-10.0, Transform.IDENTITY, 0.05, 0.001) == pytest.approx(0.5)


def test_zero_variance_series_scores_finitely() -> None:
    agg = lat(np.full(500, 3.0))
    partials = [(T0 // DAY_NS + d, h, agg) for d in range(3) for h in range(24)]
    b = build_baseline(partials, LatencyAggregate(), T0 + 3 * DAY_NS, T0, BaselineConfig())
    assert b.raw_std == pytest.approx(0.0, abs=1e-6) and b.scale == pytest.approx(0.05)
    assert b.warm and (math.log(6.0) - b.center) / b.scale == pytest.approx(math.log(2) / 0.05)


def test_metric_zero_variance_negative_level() -> None:
    agg = MetricAggregate(Transform.IDENTITY)
    agg.add(np.full(200, -40.0))
    partials = [(T0 // DAY_NS + d, h, agg) for d in range(2) for h in range(24)]
    b = build_baseline(partials, MetricAggregate(), T0 + 2 * DAY_NS, T0, BaselineConfig())
    assert b.center == -40.0 and b.scale == pytest.approx(2.0) and b.p50 == -40.0


# -- warm-up gate --

GATE = WarmupGate(min_samples=100, min_span_s=3600.0)


@pytest.mark.parametrize(
    ("count", "first_seen", "now", "warm"),
    [
        (100, 0, 3600 * S, True),  # exactly at both thresholds
        (99, 0, 3600 * S, False),  # one sample short
        (100, 0, 3600 * S - 1, False),  # one nanosecond short
        (10**6, None, 10**18, False),  # earliest sample unknown: fail closed
        (10**6, 10**18, 0, False),  # earliest sample in the future
    ],
)
def test_warmup_gate_edges(count: int, first_seen: int | None, now: int, warm: bool) -> None:
    assert warmup_ok(count, first_seen, now, GATE) is warm


def test_warmup_zero_zero_disables_and_zero_span_ignores_first_seen() -> None:
    assert warmup_ok(0, None, 0, WarmupGate(0, 0))
    assert warmup_ok(5, None, 0, WarmupGate(5, 0))
    assert not warmup_ok(4, None, 0, WarmupGate(5, 0))


# -- fallback --


def history(
    days: int, per_hour: int = 60, level: float = 1.0
) -> list[tuple[int, int, LatencyAggregate]]:
    rng = np.random.default_rng(days)
    return [
        (T0 // DAY_NS + d, h, lat(level * np.exp(rng.normal(0, 0.3, per_hour))))
        for d in range(days)
        for h in range(24)
    ]


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (0, BucketType.GLOBAL),
        (1, BucketType.GLOBAL),
        (2, BucketType.GLOBAL),
        (8, BucketType.HOUR_OF_DAY),
        (22, BucketType.HOUR_OF_WEEK),
    ],
)
def test_fallback_uses_the_most_specific_warm_bucket(days: int, bucket: BucketType) -> None:
    now = T0 + days * DAY_NS
    b = build_baseline(history(days), LatencyAggregate(), now, T0, BaselineConfig())
    assert b.bucket_type is bucket
    assert b.warm is (days >= 1)  # the global bucket needs one whole day


def test_baseline_equals_numpy_over_the_window() -> None:
    rng = np.random.default_rng(11)
    raw = {
        (T0 // DAY_NS + d, h): np.exp(rng.normal(0, 0.4, 50)) for d in range(10) for h in range(24)
    }
    partials = [(d, h, lat(x)) for (d, h), x in raw.items()]
    now = T0 + 9 * DAY_NS + 5 * HOUR_NS + 17 * S
    b = build_baseline(partials, LatencyAggregate(), now, T0, BaselineConfig())
    assert b.bucket_type is BucketType.HOUR_OF_DAY
    window = np.concatenate([x for (d, h), x in raw.items() if h == 5 and d < now // DAY_NS])
    assert b.count == window.size == 9 * 50
    assert b.center == pytest.approx(np.log(window).mean(), rel=1e-9)
    assert b.raw_std == pytest.approx(np.log(window).std(), rel=1e-9)
    ratio = 10 ** (1 / 20)
    for q, got in ((0.5, b.p50), (0.9, b.p90), (0.99, b.p99)):
        want = np.quantile(window, q)
        assert want / ratio <= got <= want * ratio


def test_unknown_first_seen_keeps_every_bucket_cold() -> None:
    b = build_baseline(history(30), LatencyAggregate(), T0 + 30 * DAY_NS, None, BaselineConfig())
    assert not b.warm and b.bucket_type is BucketType.GLOBAL


def test_anchor_restarts_the_window_and_shortens_global_warmup() -> None:
    parts = history(10, level=1.0) + [
        (T0 // DAY_NS + 10, h, lat(np.full(60, 9.0))) for h in range(24)
    ]
    anchor = T0 + 10 * DAY_NS
    now = anchor + 4 * HOUR_NS
    b = build_baseline(parts, LatencyAggregate(), now, T0, BaselineConfig(), anchor_ns=anchor)
    assert b.warm and b.bucket_type is BucketType.GLOBAL and b.count == 4 * 60
    assert b.p50 == pytest.approx(9.0)
    early = build_baseline(
        parts, LatencyAggregate(), anchor + 2 * HOUR_NS, T0, BaselineConfig(), anchor
    )
    assert not early.warm  # 2 h after the anchor is less than reanchor_min_span_s (3 h)


# -- the streaming detector keeps the same baselines --


def test_streaming_totals_equal_build_baseline() -> None:
    rng = np.random.default_rng(12)
    det = latency_detector(DetectorConfig(baseline=BaselineConfig(window_days=3)))
    step = 7 * 60 * S
    seen: set[BucketType] = set()
    for t in range(T0, T0 + 12 * DAY_NS, step):
        for d in np.exp(rng.normal(0, 0.5, 3)):
            det.learn_one(t, float(d))
        if (t - T0) % (13 * HOUR_NS) < step:
            want = build_baseline(
                det.partials(), LatencyAggregate(), t, det.first_seen_ns, det.config.baseline
            )
            got = det.baseline(t)
            assert got.bucket_type is want.bucket_type and got.count == want.count
            assert got.center == pytest.approx(want.center, rel=1e-9, abs=1e-12, nan_ok=True)
            assert got.scale == pytest.approx(want.scale, rel=1e-9, nan_ok=True)
            assert got.p50 == pytest.approx(want.p50, rel=1e-9, nan_ok=True)
            seen.add(got.bucket_type)
    assert seen == {BucketType.GLOBAL, BucketType.HOUR_OF_DAY}
    assert len(det.partials()) <= 3 * 24 + 1  # memory follows the window, not the span count


def test_streaming_metric_late_values_and_reanchor() -> None:
    det = metric_detector(Transform.IDENTITY, DetectorConfig())
    for i in range(48 * 60):
        det.learn_one(T0 + i * 60 * S, float(i % 7) - 3.0)
    t = T0 + 48 * HOUR_NS
    before = det.baseline(t)
    det.learn_one(T0 + 47 * HOUR_NS, 1000.0)  # late value of an hour already folded
    after = det.baseline(t)
    assert after.count == before.count + 1 and after.center > before.center
    det.reanchor(T0 + 40 * HOUR_NS)
    anchored = det.baseline(t)
    assert anchored.count == 8 * 60 + 1 and anchored.anchor_ns == T0 + 40 * HOUR_NS


def test_message_helpers() -> None:
    agg = lat(np.exp(np.random.default_rng(13).normal(np.log(0.44), 1.0, 20_000)))
    partials = [(T0 // DAY_NS, h, agg) for h in range(24)] + [(T0 // DAY_NS + 1, 0, agg)]
    b = build_baseline(partials, LatencyAggregate(), T0 + DAY_NS + HOUR_NS, T0, BaselineConfig())
    assert b.expected == pytest.approx(0.44, rel=0.02)  # geometric mean, not the raw mean
    lo, hi = b.band(2.0)
    assert lo == pytest.approx(0.44 * math.exp(-2 * b.scale), rel=0.05) and lo < b.p50 < hi
    assert b.describe().startswith("p50 0.44") and "(global, 500000 samples)" in b.describe()
    cold = build_baseline(
        partials, LatencyAggregate(), T0 + DAY_NS + HOUR_NS, None, BaselineConfig()
    )
    assert cold.describe().endswith("warming up)")
