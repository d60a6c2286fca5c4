"""One contract every streaming detector honours (river's learn_one / score_one shape)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import DetectorConfig
from detectors.series import SeriesDetector, latency_detector, metric_detector
from detectors.transforms import Transform

T0 = 19_723 * DAY_NS
STEP = 5 * 60 * 1_000_000_000
CFG = DetectorConfig()

Factory = Callable[[DetectorConfig], SeriesDetector]  # type: ignore[type-arg]
Sampler = Callable[[np.random.Generator, int], np.ndarray]

DETECTORS: list[tuple[str, Factory, Sampler, float]] = [
    ("latency", latency_detector, lambda r, n: np.exp(r.normal(3, 0.4, n)), 10.0),
    (
        "metric-identity",
        lambda c: metric_detector(Transform.IDENTITY, c),
        lambda r, n: r.normal(-20, 3, n),
        30.0,
    ),
    (
        "metric-log1p",
        lambda c: metric_detector(Transform.LOG1P, c),
        lambda r, n: r.poisson(400, n).astype(float),
        6.0,
    ),
]


def feed(det: SeriesDetector, sample: Sampler, hours: int, seed: int = 0) -> int:  # type: ignore[type-arg]
    """Learn `hours` of points every 5 minutes; return the next timestamp."""
    rng = np.random.default_rng(seed)
    n = hours * 12
    values = sample(rng, n)
    for i in range(n):
        det.learn_one(T0 + i * STEP, float(values[i]))
    return T0 + n * STEP


@pytest.mark.parametrize(
    ("name", "make", "sample", "jump"), DETECTORS, ids=[d[0] for d in DETECTORS]
)
def test_detector_contract(name: str, make: Factory, sample: Sampler, jump: float) -> None:
    det = make(CFG)
    assert math.isnan(det.score_one(T0, 1.0))  # nothing learnt: cold
    t = feed(det, sample, 20)
    assert math.isnan(det.score_one(t, float(sample(np.random.default_rng(1), 1)[0])))  # < 1 day
    det = make(CFG)
    t = feed(det, sample, 3 * 24)
    normal = sample(np.random.default_rng(2), 200)
    scores = np.array([det.score_one(t, float(v)) for v in normal])
    assert np.isfinite(scores).all() and np.abs(scores).mean() < 1.5
    assert (
        det.score_one(t, float(np.median(normal)) * jump if name != "metric-identity" else jump) > 5
    )

    before = det.baseline(t)
    det.score_one(t, 1e9)  # scoring never learns
    assert det.baseline(t) == before
    det.learn_one(t, math.nan)  # non-finite values are ignored
    assert det.baseline(t) == before
    assert abs(det.score_one(t, 1e300)) <= CFG.scoring.max_z  # the cap holds on both sides
    assert abs(det.score_one(t, -1e300)) <= CFG.scoring.max_z

    twin = make(CFG)
    feed(twin, sample, 3 * 24)
    assert [twin.score_one(t, float(v)) for v in normal] == scores.tolist()  # deterministic


@pytest.mark.parametrize(
    ("name", "make", "sample", "jump"), DETECTORS, ids=[d[0] for d in DETECTORS]
)
def test_detector_memory_follows_the_window(
    name: str, make: Factory, sample: Sampler, jump: float
) -> None:
    det = make(DetectorConfig.from_flat({"baseline_window_days": 2}))
    feed(det, sample, 5 * 24)
    assert len(det.partials()) <= 48 + 1
    assert det.baseline(T0 + 5 * DAY_NS + HOUR_NS).count <= 48 * 12
