"""The detector benchmark: its two paths agree, and it reports every figure (not their values)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.table import Table

from bench.detect import (
    cli,
    fast_scores,
    make_partials,
    make_spans,
    make_table,
    recalculate,
    reference_baseline,
    reference_scores,
    reference_windows,
    render_table,
    run_detect_bench,
)
from detectors import BaselineConfig, ScoringConfig, score_windows


def test_reference_loop_and_sample_scores_compute_the_same_numbers() -> None:
    durations, key_idx, _ = make_spans(5000, 20)
    durations[:3] = [0.0, 1e9, 1e-9]  # clamp and cap edges
    table = make_table(20)
    ref, ref_alerts = reference_scores(
        durations.tolist(), key_idx.tolist(), table.center.tolist(), table.scale.tolist(), 20.0
    )
    fast, fast_alerts = fast_scores(durations, key_idx, table, 20.0)
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
    assert ref_alerts == fast_alerts


def test_reference_window_loop_and_score_windows_compute_the_same_numbers() -> None:
    durations, key_idx, start_ns = make_spans(20_000, 30)
    durations[:3] = [0.0, 1e9, 1e-9]  # clamp and cap edges
    durations[3:200] = np.round(durations[3:200])  # ties
    start_ns[-1] += 3600 * 10**9  # a window of one span
    table, config = make_table(30), ScoringConfig(min_tail_count=40)
    ref = reference_windows(
        durations.tolist(), key_idx.tolist(), start_ns.tolist(), table, config
    )
    fast = score_windows(durations, key_idx, start_ns, table, config)
    assert len(ref) == len(fast) and sorted(ref) == list(
        zip(fast.key_idx.tolist(), fast.window_start_ns.tolist(), strict=True)
    )
    rows = np.array([ref[(k, w)] for k, w in zip(
        fast.key_idx.tolist(), fast.window_start_ns.tolist(), strict=True)])
    want = np.column_stack([fast.count, fast.median, fast.p90, fast.score])
    assert np.array_equal(rows[:, 0], want[:, 0])
    # the same arithmetic; math.log/exp and numpy's vector log/exp may differ in the last bit
    np.testing.assert_allclose(rows[:, 1:], want[:, 1:], rtol=1e-12, atol=1e-12)
    assert np.isnan(rows[:, 3]).any() and (rows[:, 3] == 20.0).any()  # a gate and the cap


def test_array_recalculation_equals_build_baseline_over_hour_objects() -> None:
    part = make_partials(3, 10, seed=4)
    config = BaselineConfig(window_days=10)
    for k, fast in enumerate(recalculate(part, config)):
        slow = reference_baseline(part, k, config)
        assert (fast.bucket_type, fast.count, fast.warm) == (slow.bucket_type, slow.count, True)
        assert fast.center == pytest.approx(slow.center, rel=1e-12)
        assert fast.scale == pytest.approx(slow.scale, rel=1e-9)
        assert (fast.p50, fast.p99) == pytest.approx((slow.p50, slow.p99), rel=1e-12)


def test_bench_reports_positive_figures_in_table_and_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_detect_bench(spans=3000, keys=7, days=2)
    tp, rc = result["throughput"], result["recalculation"]
    assert tp["reference"]["per_s"] > 0 and tp["sample_scores"]["samples_per_s"] > 0
    assert tp["score_windows"]["spans_per_s"] > 0 and tp["score_windows"]["windows"] > 0
    assert tp["sample_scores"]["vs_reference"] > 0 and tp["score_windows"]["vs_reference"] > 0
    assert tp["window_reference"]["windows"] > 0 and tp["score_windows"]["vs_span_loop"] > 0
    assert rc["total_s"] > 0 and rc["reference_baselines_s"] > 0
    assert (rc["partials"], rc["thresholds"]) == (7 * 2 * 24, 7)
    table = render_table(result)
    assert isinstance(table, Table) and table.row_count == 8
    assert cli(spans=2000, keys=5, days=1, as_json=True) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"throughput", "recalculation"}
    assert cli(spans=0) == 2
