"""The engine's pure parts against whole-array references: rolling baselines, score histograms,
error-rate scores, incident bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.detection.error_rate import ErrorRateConfig, error_scores
from bot.detection.incident_book import IncidentBook
from bot.detection.rolling import RollingBaselines
from bot.detection.score_hist import (
    BIN_WIDTH,
    hist_from_blob,
    hist_to_blob,
    score_histogram,
    scores_from_hist,
)
from detectors.aggregate import LatencyAggregate
from detectors.baseline import build_baseline
from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import BaselineConfig, GroupingConfig
from detectors.grouping import CallGraph, IncidentMember

T0 = 19_723 * DAY_NS


def _partials(rng: np.random.Generator, hours: range) -> list[tuple[int, int, LatencyAggregate]]:
    out = []
    for h in hours:
        agg = LatencyAggregate()
        agg.add(np.exp(rng.normal(3 + 0.3 * math.sin(h / 4), 0.5, int(rng.integers(20, 80)))))
        out.append((h // 24, h % 24, agg))
    return out


@pytest.mark.parametrize("anchor_hours", [None, 24 * 30 + 5])
def test_rolling_baselines_equal_build_baseline_over_the_same_partials(
    anchor_hours: int | None,
) -> None:
    rng = np.random.default_rng(1)
    config = BaselineConfig(window_days=14)
    start_h = T0 // HOUR_NS
    parts = _partials(rng, range(start_h, start_h + 40 * 24))
    rolling = RollingBaselines(config)
    first = T0
    anchor = None if anchor_hours is None else T0 + anchor_hours * HOUR_NS + HOUR_NS // 2
    for i, (day, hour, agg) in enumerate(parts):
        rolling.add(0, day * 24 + hour, agg, first)
        t = (day * 24 + hour) * HOUR_NS
        if anchor is not None and t == anchor - HOUR_NS // 2 + HOUR_NS:
            rolling.reanchor(0, anchor)
        if i % 37 == 0 or i == len(parts) - 1:
            got = rolling.baseline(0, t)
            want = build_baseline(parts[:i + 1], LatencyAggregate(), t, first, config,
                                  anchor if anchor is not None and t > anchor else None)
            assert (got.bucket_type, got.warm, got.count) == (
                want.bucket_type, want.warm, want.count)
            if want.count:
                assert got.center == pytest.approx(want.center, rel=1e-9)
                assert got.scale == pytest.approx(want.scale, rel=1e-9)
                assert got.p99 == pytest.approx(want.p99, rel=1e-9)


def test_score_histogram_round_trip_and_percentiles_within_half_a_bin() -> None:
    rng = np.random.default_rng(2)
    scores = np.concatenate([rng.normal(0, 1.2, 5000), rng.uniform(4, 30, 40), [np.nan]])
    hist = score_histogram(scores)
    assert hist.sum() == 5040
    assert np.array_equal(hist_from_blob(hist_to_blob(hist)), hist)
    values = scores_from_hist(hist)
    finite = np.clip(scores[np.isfinite(scores)], -25, 25)
    for q in (50, 80, 95, 99, 99.9):
        assert abs(np.percentile(values, q) - np.percentile(finite, q)) <= BIN_WIDTH / 2 + 0.05
    assert scores_from_hist(hist, at_least=4.0).size == int((finite >= 3.95).sum())


def test_error_scores_against_the_binomial_formula() -> None:
    z, ok, rate, p = error_scores([0, 1, 6, 30], [13, 13, 20, 100], [10] * 4, [2000] * 4,
                                  max_effective_n=30, max_z=20, min_window_count=5)
    base = (10 + 0.5) / 2001
    assert p == pytest.approx([base] * 4)
    want = (np.array([0, 1, 6, 30]) / [13, 13, 20, 100] - base) * np.sqrt(
        [13, 13, 20, 30]) / math.sqrt(base * (1 - base))
    assert z == pytest.approx(np.clip(want, -20, 20))
    assert ok.tolist() == [False, False, True, True]  # one failure in 13 is not an incident
    z2, *_ = error_scores([5], [4], [0], [0], max_effective_n=30, max_z=20, min_window_count=5)
    assert math.isnan(z2[0])  # no baseline, and too few spans
    strict = ErrorRateConfig(min_errors=10)
    _, ok2, *_ = error_scores([6], [20], [10], [2000], max_effective_n=30, max_z=20,
                              min_window_count=5, config=strict)
    assert not ok2[0]


def test_incident_book_opens_updates_merges_and_forgets() -> None:
    graph = CallGraph(GroupingConfig())
    graph.edges = {("gw", "api"): 5, ("api", "db"): 5}
    book = IncidentBook(slack_ns=300 * 10**9)
    book.put(IncidentMember("api:x@1", "api", 1 * 10**9, None, 5.0), "api:x", 3)
    [c] = book.regroup(graph, 2 * 10**9)
    assert c.kind == "opened" and c.uid == "api:x@1"
    book.forget(2 * 10**9)
    book.put(IncidentMember("db:q@2", "db", 2 * 10**9, None, 9.0), "db:q", 1)
    [c] = book.regroup(graph, 3 * 10**9)
    assert c.kind == "updated" and c.incident is not None
    assert c.incident.origin.service == "db" and book.peak_severity(c.incident) == 1
    book.forget(3 * 10**9)
    for uid, svc, key in (("api:x@1", "api", "api:x"), ("db:q@2", "db", "db:q")):
        book.put(IncidentMember(uid, svc, int(uid[-1]) * 10**9, 10 * 10**9, 9.0), key, 1)
    [c] = book.regroup(graph, 11 * 10**9)
    assert c.kind == "resolved"
    book.forget(11 * 10**9)
    assert book.members  # within the slack a new anomaly could still join
    assert book.regroup(graph, 10**12) == []
    book.forget(10**12)
    assert not book.members and not book.seen
    restored = IncidentBook.from_dict(book.to_dict(), book.slack_ns)
    assert restored.to_dict() == book.to_dict()
