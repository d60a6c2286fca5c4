"""Deciding scored windows and samples: direction, minimum deviation, severity per key."""

from __future__ import annotations

import numpy as np

from detectors.aggregate import LatencyAggregate
from detectors.baseline import baseline_from_aggregate
from detectors.buckets import DAY_NS, BucketType
from detectors.config import BaselineConfig, ScoringConfig, SeverityConfig
from detectors.decide import decide_samples, decide_windows
from detectors.metric_aggregate import MetricAggregate
from detectors.scoring import BaselineTable, sample_scores, score_windows
from detectors.severity import Severity, compute_thresholds
from detectors.transforms import Transform

NOW = 19_800 * DAY_NS
SEV = SeverityConfig()
FLOORS = compute_thresholds(np.zeros(1000), SEV, "up")  # SEV5 at 3 ... SEV1 at 8


def latency_table(medians: list[float], sigma: float) -> BaselineTable:
    rng = np.random.default_rng(0)
    rows = []
    for m in medians:
        agg = LatencyAggregate()
        agg.add(m * np.exp(rng.normal(0, sigma, 20_000)))
        rows.append(baseline_from_aggregate(agg, BucketType.GLOBAL, NOW, 0, BaselineConfig()))
    return BaselineTable.from_baselines(rows)


def test_a_stable_sub_millisecond_key_does_not_alert_on_a_trivial_change() -> None:
    table = latency_table([0.44, 40.0], sigma=0.05)  # very stable keys
    durs = np.concatenate([np.full(100, 0.44 * 1.5), np.full(100, 40.0 * 1.5)])  # both +50 %
    keys = np.repeat([0, 1], 100)
    w = score_windows(durs, keys, np.full(200, NOW), table, ScoringConfig())
    d = decide_windows(w, table, [FLOORS, FLOORS], SEV)
    assert (w.score > 8).all()  # both move by many standard errors ...
    assert d.deviation_ok.tolist() == [False, True]  # ... but +0.22 ms is under 0.5 ms
    assert d.decisions[0] is None
    assert d.decisions[1] is not None and d.decisions[1].severity is Severity.SEV1
    assert abs(d.observed[1] - 60.0) < 1e-9 and abs(d.expected[1] - 40.0) < 40.0 * 0.12


def test_faster_is_not_an_alert_and_missing_thresholds_decide_nothing() -> None:
    table = latency_table([40.0, 40.0], sigma=0.3)
    durs = np.concatenate([np.full(100, 10.0), np.full(100, 200.0)])
    keys = np.repeat([0, 1], 100)
    w = score_windows(durs, keys, np.full(200, NOW), table, ScoringConfig())
    d = decide_windows(w, table, [FLOORS, None], SEV)
    assert w.score[0] < -8 and d.decisions == [None, None]


def test_metric_samples_alert_both_ways_with_their_own_deviation_rule() -> None:
    agg = MetricAggregate(Transform.IDENTITY)
    agg.add(np.random.default_rng(1).normal(100.0, 2.0, 5000))
    b = baseline_from_aggregate(agg, BucketType.GLOBAL, NOW, 0, BaselineConfig())
    table = BaselineTable.from_baselines([b])
    both = compute_thresholds(np.zeros(1000), SEV, "both")
    values = np.array([100.0, 160.0, 40.0, 108.0])
    idx = np.zeros(4, np.int64)
    z = sample_scores(values, idx, table, max_z=20.0)
    d = decide_samples(values, idx, z, table, [both], SEV)
    sev = [None if x is None else x.severity for x in d.decisions]
    assert sev == [
        None,
        Severity.SEV1,
        Severity.SEV1,
        None,
    ]  # 108: inside the 5 % floor and under 10 %
    assert d.deviation_ok.tolist() == [False, True, True, False]
