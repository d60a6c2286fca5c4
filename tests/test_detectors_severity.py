"""Adaptive severity: percentiles vs floors, the minimum deviation rule, and the dry-run diff."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.config import SeverityConfig
from detectors.severity import (
    Severity,
    SeverityThresholds,
    badness,
    compute_thresholds,
    deviation_ok,
    thresholds_by_group,
)
from detectors.threshold_diff import diff_thresholds

CFG = SeverityConfig()


def test_quiet_key_thresholds_are_the_floors() -> None:
    history = np.random.default_rng(0).normal(0, 1, 10_000)
    th = compute_thresholds(history, CFG, "up")
    assert [lv.threshold for lv in th.levels] == list(CFG.score_floors)
    assert all(lv.set_by == "floor" for lv in th.levels)
    # the percentile values are still kept, so a message can show both
    assert th.levels[1].percentile_value == pytest.approx(np.percentile(history, 99.0))


def test_noisy_key_thresholds_follow_its_percentiles() -> None:
    history = np.random.default_rng(1).standard_t(2, 50_000) * 3  # heavy-tailed history
    th = compute_thresholds(history, CFG, "up")
    want = np.percentile(history, CFG.percentiles)
    for lv, w, floor in zip(th.levels, want, CFG.score_floors, strict=True):
        assert lv.threshold == pytest.approx(max(w, floor))
        assert lv.set_by == ("percentile" if w > floor else "floor")
    assert th.levels[0].set_by == "percentile"


def test_classify_maps_to_the_most_severe_level_reached() -> None:
    th = compute_thresholds(np.zeros(1000), CFG, "up")  # floors 8, 6, 5, 4, 3
    cases = {
        2.99: None,
        3.0: Severity.SEV5,
        4.5: Severity.SEV4,
        5.0: Severity.SEV3,
        7.9: Severity.SEV2,
    }
    for score, sev in cases.items():
        decision = th.classify(score)
        assert (decision.severity if decision else None) is sev
    top = th.classify(100.0)
    assert top is not None and top.severity is Severity.SEV1
    assert (top.threshold, top.percentile, top.score) == (8.0, 99.9, 100.0)
    assert th.classify(math.nan) is None


def test_rank_says_where_a_score_sits_in_history() -> None:
    history = np.arange(10_000, dtype=np.float64) / 1000  # 0 .. 10
    th = compute_thresholds(history, CFG, "up")
    assert th.rank(5.0) == pytest.approx(50.0, abs=0.1)
    assert th.rank(9.995) == pytest.approx(99.95, abs=0.05)
    assert th.rank(50.0) == 100.0
    assert math.isnan(compute_thresholds([], CFG, "up").rank(1.0))


def test_short_history_uses_floors_and_cap_keeps_sev1_reachable() -> None:
    th = compute_thresholds(np.full(100, 50.0), CFG, "up")  # fewer than min_history
    assert [lv.set_by for lv in th.levels] == ["floor"] * 5
    noisy = compute_thresholds(np.full(1000, 50.0), CFG, "up", max_z=20.0)
    assert [lv.threshold for lv in noisy.levels] == [20.0] * 5
    assert noisy.levels[0].set_by == "cap"
    capped_score = 20.0  # a score capped at max_z still reaches SEV1
    assert noisy.classify(capped_score).severity is Severity.SEV1  # type: ignore[union-attr]


def test_direction() -> None:
    z = np.array([-7.0, 0.0, 7.0])
    assert list(badness(z, "up")) == [-7, 0, 7]
    assert list(badness(z, "down")) == [7, 0, -7]
    assert list(badness(z, "both")) == [7, 0, 7]
    th = compute_thresholds(np.zeros(1000), CFG, "up")
    assert th.classify(float(badness(-7.0, "up"))) is None  # faster is not an alert by default


def test_min_deviation_needs_absolute_and_relative() -> None:
    # a very stable key: p50 0.44 ms -> 0.8 ms is +82 % but only 0.36 ms: no alert
    assert not deviation_ok(0.8, 0.44, 0.5, 0.2)
    assert deviation_ok(1.0, 0.44, 0.5, 0.2)
    # a slow key: 2000 ms -> 2100 ms is 100 ms but only 5 %: no alert
    assert not deviation_ok(2100.0, 2000.0, 0.5, 0.2)
    assert deviation_ok(2400.0, 2000.0, 0.5, 0.2)
    # vectorised, symmetric, and exactly at the limits passes
    got = deviation_ok([1.5, 0.5, 1.0], [1.0, 1.0, 1.0], 0.5, 0.5)
    assert list(got) == [True, True, False]


def test_thresholds_by_group_pools_sparse_groups() -> None:
    rng = np.random.default_rng(2)
    scores = np.concatenate(
        [rng.normal(0, 1, 2000), rng.normal(0, 10, 2000), rng.normal(0, 10, 50)]
    )
    groups = np.array([0] * 2000 + [1] * 2000 + [2] * 50)
    by = thresholds_by_group(scores, groups, CFG, "both")
    assert by[0].levels[4].set_by == "floor"
    assert by[1].levels[0].threshold > 20
    assert by[2] == compute_thresholds(scores, CFG, "both")  # 50 < min_history: pooled


def test_thresholds_round_trip() -> None:
    th = compute_thresholds(np.random.default_rng(3).normal(0, 4, 5000), CFG, "both", max_z=20)
    assert SeverityThresholds.from_dict(th.to_dict()) == th


def test_dry_run_diff_reports_lost_and_new_alerts_per_severity() -> None:
    floors = compute_thresholds(np.zeros(1000), CFG, "up")  # SEV5 at 3 ... SEV1 at 8
    noisy = compute_thresholds(np.linspace(0, 7, 1000), CFG, "up")  # p80 5.6, p99.9 ~7
    recent = {"a:op": np.array([1.0, 3.5, 5.5, 9.0]), "b:op": np.array([4.0])}
    diff = diff_thresholds({"a:op": floors, "b:op": floors}, {"a:op": noisy}, recent, "up")
    summary = diff.summary()
    # a:op 3.5 (SEV5) and 5.5 (SEV3) no longer fire; 9.0 stays SEV1; b:op has no new thresholds
    assert summary["SEV5"] == {"no_longer": 1, "newly": 0}
    assert summary["SEV3"] == {"no_longer": 1, "newly": 0}
    assert summary["SEV4"] == {"no_longer": 1, "newly": 0}
    assert summary["SEV1"] == {"no_longer": 0, "newly": 0}
    assert diff.windows == 5 and diff.unchanged == 2
    lost = diff.changes[Severity.SEV4].no_longer[0]
    assert (lost.key, lost.index, lost.old, lost.new) == ("b:op", 0, Severity.SEV4, None)
    back = diff_thresholds(
        {"a:op": noisy}, {"a:op": floors}, recent, "up", times_ns={"a:op": [10, 20, 30, 40]}
    )
    assert [(w.t_ns, w.new) for w in back.changes[Severity.SEV5].newly] == [(20, Severity.SEV5)]


def test_diff_honours_the_eligibility_mask() -> None:
    floors = compute_thresholds(np.zeros(1000), CFG, "up")
    recent = {"k": np.array([9.0, 9.0])}
    diff = diff_thresholds({}, {"k": floors}, recent, "up", eligible={"k": [True, False]})
    assert diff.summary()["SEV1"] == {"no_longer": 0, "newly": 1}
