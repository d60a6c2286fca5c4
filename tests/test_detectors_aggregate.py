"""Streaming aggregates against numpy over the whole array: moments, quantiles, merge, subtract."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from detectors.aggregate import (
    _LOG10_MIN,
    BINS_PER_DECADE,
    N_BINS,
    LatencyAggregate,
    bin_edges_ms,
    bin_index,
)
from detectors.metric_aggregate import METRIC_BINS_PER_DECADE, MetricAggregate
from detectors.transforms import Transform, transform_for_metric

BIN_RATIO = 10 ** (1 / BINS_PER_DECADE)  # one bin of the latency histogram, ~1.122
METRIC_BIN_RATIO = 10 ** (1 / METRIC_BINS_PER_DECADE)
QS = (0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999)


def heavy_tailed_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Log-normal body around 0.44 ms plus a Pareto tail: std ~ 20x the mean, like the issue's."""
    body = np.exp(rng.normal(math.log(0.3), 0.6, n))
    tail = rng.random(n) < 0.01
    body[tail] = 5.0 * (1 + rng.pareto(1.1, tail.sum()))
    return body


def latency_of(x: np.ndarray) -> LatencyAggregate:
    agg = LatencyAggregate()
    agg.add(x)
    return agg


def metric_of(x: np.ndarray, transform: Transform) -> MetricAggregate:
    agg = MetricAggregate(transform)
    agg.add(x)
    return agg


def test_latency_moments_match_numpy() -> None:
    x = heavy_tailed_ms(np.random.default_rng(1), 50_000)
    agg = latency_of(x)
    logs = np.log(x)
    assert agg.count == x.size
    assert agg.mean_log == pytest.approx(logs.mean(), rel=1e-12)
    assert agg.std_log == pytest.approx(logs.std(), rel=1e-9)
    assert (agg.min_ms, agg.max_ms) == (x.min(), x.max())
    assert (agg.mean_t, agg.std_t, agg.transform) == (agg.mean_log, agg.std_log, Transform.LOG)


@pytest.mark.parametrize("q", QS)
def test_latency_quantile_within_one_bin_of_numpy(q: float) -> None:
    x = heavy_tailed_ms(np.random.default_rng(2), 50_000)
    got, want = latency_of(x).quantile(q), float(np.quantile(x, q))
    assert want / BIN_RATIO <= got <= want * BIN_RATIO


def test_latency_merge_equals_concatenation() -> None:
    rng = np.random.default_rng(3)
    parts = [heavy_tailed_ms(rng, n) for n in (1, 17, 1000, 5000)]
    merged = LatencyAggregate()
    for p in parts:
        merged.merge(latency_of(p))
    whole = latency_of(np.concatenate(parts))
    assert merged.count == whole.count
    assert np.array_equal(merged.hist, whole.hist)
    assert merged.mean_log == pytest.approx(whole.mean_log, rel=1e-12)
    assert merged.std_log == pytest.approx(whole.std_log, rel=1e-9)
    assert [merged.quantile(q) for q in QS] == pytest.approx([whole.quantile(q) for q in QS])


def test_latency_subtract_undoes_merge() -> None:
    rng = np.random.default_rng(4)
    a, b = heavy_tailed_ms(rng, 3000), heavy_tailed_ms(rng, 2000)
    total = latency_of(a).merge(latency_of(b))
    total.subtract(latency_of(b))
    only_a = latency_of(a)
    assert total.count == only_a.count and np.array_equal(total.hist, only_a.hist)
    assert total.mean_log == pytest.approx(only_a.mean_log, rel=1e-9)
    assert total.std_log == pytest.approx(only_a.std_log, rel=1e-9)
    with pytest.raises(ValueError):
        total.subtract(latency_of(np.concatenate([a, b])))


def test_latency_copy_is_independent() -> None:
    agg = latency_of(np.array([1.0, 2.0]))
    twin = agg.copy()
    twin.add(np.array([100.0]))
    assert agg.count == 2 and agg.hist.sum() == 2 and twin.count == 3


@pytest.mark.parametrize("transform", list(Transform))
def test_metric_moments_match_numpy(transform: Transform) -> None:
    rng = np.random.default_rng(5)
    x = (
        rng.gamma(2.0, 30.0, 20_000)
        if transform is not Transform.IDENTITY
        else rng.normal(-3, 7, 20_000)
    )
    agg = metric_of(x, transform)
    y = transform.forward(x)
    assert agg.count == x.size
    assert agg.mean_t == pytest.approx(y.mean(), rel=1e-12, abs=1e-12)
    assert agg.std_t == pytest.approx(y.std(), rel=1e-9)
    assert (agg.min, agg.max) == (x.min(), x.max())


def test_metric_moments_stay_exact_when_mean_dwarfs_spread() -> None:
    """A gauge at 1e6 +- 0.01: naive sum-of-squares would lose the variance entirely."""
    x = 1e6 + np.random.default_rng(6).normal(0, 0.01, 10_000)
    chunks = np.array_split(x, 37)
    agg = MetricAggregate(Transform.IDENTITY)
    for c in chunks:
        agg.merge(metric_of(c, Transform.IDENTITY))
    assert agg.std_t == pytest.approx(x.std(), rel=1e-6)


@pytest.mark.parametrize("q", QS)
def test_metric_quantile_within_one_bin_of_numpy(q: float) -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(-50, 10, 5000), rng.normal(20, 5, 5000), np.zeros(500)])
    got, want = metric_of(x, Transform.IDENTITY).quantile(q), float(np.quantile(x, q))
    if want == 0:
        assert abs(got) <= 1e-6
    else:
        assert np.sign(got) == np.sign(want)
        assert abs(want) / METRIC_BIN_RATIO <= abs(got) <= abs(want) * METRIC_BIN_RATIO


def test_metric_quantile_of_constant_and_single_values() -> None:
    assert metric_of(np.full(10, -4.0), Transform.IDENTITY).quantile(0.5) == -4.0
    assert metric_of(np.zeros(3), Transform.LOG1P).quantile(0.99) == 0.0
    assert math.isnan(MetricAggregate().quantile(0.5))


def test_metric_merge_and_subtract_match_concatenation() -> None:
    rng = np.random.default_rng(8)
    parts = [rng.exponential(5.0, n) for n in (1, 9, 400, 3000)]
    merged = MetricAggregate(Transform.LOG1P)
    for p in parts:
        merged.merge(metric_of(p, Transform.LOG1P))
    whole = metric_of(np.concatenate(parts), Transform.LOG1P)
    assert merged.count == whole.count and np.array_equal(merged.hist, whole.hist)
    assert merged.mean_t == pytest.approx(whole.mean_t, rel=1e-12)
    assert merged.std_t == pytest.approx(whole.std_t, rel=1e-9)
    merged.subtract(metric_of(parts[3], Transform.LOG1P))
    rest = metric_of(np.concatenate(parts[:3]), Transform.LOG1P)
    assert merged.count == rest.count and np.array_equal(merged.hist, rest.hist)
    assert merged.mean_t == pytest.approx(rest.mean_t, rel=1e-9)
    assert merged.std_t == pytest.approx(rest.std_t, rel=1e-6)
    merged.subtract(rest)
    assert merged.count == 0 and math.isnan(merged.mean_t)


def test_metric_rejects_mixed_transforms_and_skips_nan() -> None:
    agg = metric_of(np.array([1.0, np.nan, np.inf, 2.0]), Transform.IDENTITY)
    assert agg.count == 2
    with pytest.raises(ValueError, match="one transform"):
        agg.merge(MetricAggregate(Transform.LOG1P))


@pytest.mark.parametrize("make", [latency_of, lambda x: metric_of(x - 1.0, Transform.IDENTITY)])
def test_hist_blob_round_trip(make: object) -> None:
    x = heavy_tailed_ms(np.random.default_rng(9), 5000)
    agg = make(x)  # type: ignore[operator]
    blob = agg.hist_blob()
    assert np.array_equal(type(agg).hist_from_blob(blob), agg.hist)
    assert len(blob) < agg.hist.size * 8  # sparse: bytes per occupied bin


def test_transform_for_metric_follows_prometheus_names() -> None:
    assert transform_for_metric("http_requests_total") is Transform.LOG1P
    assert transform_for_metric('http_request_duration_seconds_bucket{le="0.1"}') is Transform.LOG1P
    assert transform_for_metric("node_cpu_utilisation") is Transform.IDENTITY
    assert transform_for_metric("temperature_celsius") is Transform.IDENTITY


def _bin_index_formula(duration_ms: np.ndarray) -> np.ndarray:
    """The plain expression bin_index must equal (its in-place form is only faster)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (np.log10(np.maximum(duration_ms, 1e-12)) - _LOG10_MIN) * BINS_PER_DECADE
    return np.asarray(np.clip(np.floor(pos).astype(np.int64) + 1, 0, N_BINS - 1))


def test_bin_index_equals_the_formula_on_every_edge() -> None:
    edges = bin_edges_ms()[1:]
    ulps = np.arange(-300, 301)  # every float within 300 ulps of each bin edge
    near = (edges.view(np.int64)[:, None] + ulps).ravel().view(np.float64)
    rng = np.random.default_rng(3)
    cases = [near, np.exp(rng.uniform(-40, 40, 200_000)), np.array([0.0, -1.0, 1e-13, 1e300]),
             near.astype(np.float32), np.arange(1000), near[::7]]
    for values in cases:
        got, want = bin_index(values), _bin_index_formula(values)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want), values.dtype
    scalar: Any = 5.0  # a plain float works too, though the signature says array
    assert bin_index(np.array([5.0]))[0] == bin_index(scalar) == _bin_index_formula(scalar)
    with np.errstate(invalid="ignore"):
        special = np.array([np.nan, np.inf, -np.inf, 1.0])
        assert np.array_equal(bin_index(special), _bin_index_formula(special))
