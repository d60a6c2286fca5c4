"""NAB harness: scoring rules by hand, sweep vs direct scoring, causal detectors, the run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.table import Table

from bench.nab import (
    REWARD_LOW_FP,
    STANDARD,
    DetectorOutputError,
    FileLabels,
    FileProgress,
    HourOfWeekZScoreDetector,
    IsolationForestDetector,
    NabCorpus,
    NabLayoutError,
    NabScoringError,
    OpsbotDetector,
    OpsbotDetectorUnavailable,
    OpsbotNoveltyDetector,
    SeriesDetector,
    WindowedGaussianDetector,
    optimise_threshold,
    render_table,
    rescore,
    run_nab_eval,
    score_alerts,
    sweep,
)
from bench.nab.corpus import window_rows
from bench.nab.opsbot import OpsbotStreamDetector, with_novelty_gate
from bench.nab.scoring import probation_length, scaled_sigmoid
from tests.conftest import shared_path
from tests.nab_support import FIVE_MIN_NS, T0_NS, daily_series


def _s(x: float) -> float:
    """NAB's scaled sigmoid, written out again for the hand cases."""
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def _alerts(n: int, *rows: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(rows)] = True
    return out


# One file of 100 rows: probation is rows 0..14, one window at rows 40..49 (width 10).
ONE = FileLabels.of(100, [(40, 49)])


def test_scaled_sigmoid_matches_nabs_landmarks() -> None:
    got = scaled_sigmoid([-1.0, -0.5, 0.0, 1.0, 3.0, 3.01])
    np.testing.assert_allclose(got, [0.98661, 0.84828, 0.0, -0.98661, _s(3.0), -1.0], atol=1e-5)


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert [probation_length(n) for n in (100, 4032, 5000, 22695)] == [15, 604, 750, 750]


def test_alert_at_the_left_edge_earns_the_full_tp_weight() -> None:
    result = score_alerts(ONE, _alerts(100, 40), STANDARD)
    assert result.raw == pytest.approx(1.0, abs=1e-12)
    assert (result.detected, result.missed, result.false_alerts) == (1, 0, 0)


def test_only_the_earliest_alert_in_a_window_counts() -> None:
    at_45 = score_alerts(ONE, _alerts(100, 45), STANDARD).raw
    assert at_45 == pytest.approx(_s(-0.5) / _s(-1.0))  # -(49 - 45 + 1) / 10 = -0.5: 0.85979
    assert score_alerts(ONE, _alerts(100, 45, 46, 48, 49), STANDARD).raw == pytest.approx(at_45)
    assert score_alerts(ONE, _alerts(100, *range(40, 50)), STANDARD).raw == pytest.approx(1.0)


def test_a_detection_at_the_right_edge_earns_almost_nothing() -> None:
    at_edge = score_alerts(ONE, _alerts(100, 49), STANDARD).raw
    assert at_edge == pytest.approx(_s(-0.1) / _s(-1.0))  # 0.2482: NAB's "+1" keeps it above 0
    assert at_edge < score_alerts(ONE, _alerts(100, 48), STANDARD).raw


def test_a_false_alert_before_any_window_costs_the_full_fp_weight() -> None:
    # the window is also missed: -1 - fp_weight
    assert score_alerts(ONE, _alerts(100, 20), STANDARD).raw == pytest.approx(-1.11)
    assert score_alerts(ONE, _alerts(100, 20), REWARD_LOW_FP).raw == pytest.approx(-1.22)


def test_a_false_alert_after_a_window_costs_by_its_distance() -> None:
    found = 1.0  # the alert at 40
    one_width_past = score_alerts(ONE, _alerts(100, 40, 58), STANDARD)  # (58 - 49) / 9 = 1
    assert one_width_past.raw == pytest.approx(found + 0.11 * _s(1.0))  # 1 - 0.10853
    right_after = score_alerts(ONE, _alerts(100, 40, 50), STANDARD).raw  # 1 / 9
    assert right_after == pytest.approx(found + 0.11 * _s(1 / 9))  # 1 - 0.02979
    far = score_alerts(ONE, _alerts(100, 40, 90), STANDARD).raw  # 41 / 9 > 3: full cost
    assert far == pytest.approx(found - 0.11)
    assert one_width_past.false_alerts == 1


def test_each_missed_window_costs_fn_weight() -> None:
    two = FileLabels.of(100, [(40, 49), (70, 79)])
    result = score_alerts(two, np.zeros(100, dtype=bool), STANDARD)
    assert result.raw == -2.0
    assert (result.detected, result.missed) == (0, 2)


def test_probation_rows_and_windows_inside_probation_are_not_scored() -> None:
    assert score_alerts(ONE, _alerts(100, *range(15)), STANDARD).raw == -1.0  # only the miss
    early = FileLabels.of(100, [(5, 10), (40, 49)])
    assert early.scored_windows == 1
    assert score_alerts(early, np.zeros(100, dtype=bool), STANDARD).raw == -1.0
    # after a window, a false alert is scaled by that window even if it sat in probation
    assert score_alerts(early, _alerts(100, 40, 16), STANDARD).raw == pytest.approx(
        1 + 0.11 * _s(6 / 5)
    )


def test_normalised_score_is_0_for_detecting_nothing_and_100_for_perfect() -> None:
    labels = [FileLabels.of(100, [(40, 49)]), FileLabels.of(200, [(50, 59), (150, 180)])]
    nothing = [np.zeros(100), np.zeros(200)]
    assert optimise_threshold(nothing, labels, STANDARD).score == 0.0
    perfect = [np.zeros(100), np.zeros(200)]
    for scores, lab in zip(perfect, labels, strict=True):
        scores[[start for start, _ in lab.windows]] = 1.0
    best = optimise_threshold(perfect, labels, STANDARD)
    assert best.score == pytest.approx(100.0)
    assert (best.threshold, best.null, best.perfect) == (1.0, -3.0, 3.0)


def test_the_sweep_equals_direct_scoring_at_every_threshold() -> None:
    rng = np.random.default_rng(7)
    labels = [
        FileLabels.of(300, [(80, 99), (200, 200), (240, 260)]),
        FileLabels.of(150, []),
        FileLabels.of(500, [(20, 40), (300, 349)]),  # first window partly in probation (75 rows)
    ]
    scores = [np.round(rng.random(lab.n_rows), 2) for lab in labels]  # rounding makes ties
    for profile in (STANDARD, REWARD_LOW_FP):
        curve = sweep(scores, labels, profile)
        assert curve.thresholds[0] == 1.1 and np.all(np.diff(curve.thresholds) < 0)
        for threshold, raw in zip(curve.thresholds, curve.raw, strict=True):
            direct = sum(
                score_alerts(lab, s >= threshold, profile).raw
                for s, lab in zip(scores, labels, strict=True)
            )
            assert raw == pytest.approx(direct, abs=1e-9)


def test_the_sweep_picks_the_best_threshold() -> None:
    lab = FileLabels.of(100, [(40, 49)])
    scores = np.full(100, 0.5)
    scores[40] = 0.9  # the window's left edge
    scores[[20, 25, 30]] = 0.95  # three false alerts before the window
    best = optimise_threshold([scores], [lab], STANDARD)
    assert best.threshold == 0.9  # 1 - 3 x 0.11 = 0.67 beats 0.95 (-1.33) and 1.1 (-1)
    assert best.raw == pytest.approx(0.67)
    assert best.score == pytest.approx(100 * (0.67 + 1) / 2)
    # at fp_weight 0.22 the same alerts still pay: 1 - 0.66 = 0.34
    assert optimise_threshold([scores], [lab], REWARD_LOW_FP).raw == pytest.approx(0.34)


def test_sweep_ties_go_to_the_highest_threshold_as_in_nab() -> None:
    lab = FileLabels.of(100, [(40, 49)])
    scores = np.zeros(100)
    scores[40], scores[41:50] = 0.9, 0.8  # lowering to 0.8 only adds later rows of a found window
    assert optimise_threshold([scores], [lab], STANDARD).threshold == 0.9


def test_the_sweep_rejects_scores_outside_the_unit_interval() -> None:
    with pytest.raises(NabScoringError, match=r"\[0, 1\]"):
        sweep([np.full(100, 1.5)], [ONE], STANDARD)


def test_window_rows_follow_row_order_through_repeated_and_backward_timestamps() -> None:
    # as NAB's DST artefacts: 03:00 repeated, then a step back to 02:00
    minutes = [0, 60, 120, 180, 180, 180, 240, 120, 180, 300]
    ts = np.array(minutes, dtype=np.int64) * 60 * 10**9
    windows = ((180 * 60 * 10**9, 240 * 60 * 10**9), (290 * 60 * 10**9, 400 * 60 * 10**9))
    assert window_rows(ts, windows) == [(3, 6), (9, 9)]


# ---- detectors ------------------------------------------------------------------------------


def _detectors() -> list[SeriesDetector]:
    small_forest = IsolationForestDetector(
        first_fit=200, refit_every=300, train_rows=400, n_estimators=20
    )
    return [
        WindowedGaussianDetector(),
        WindowedGaussianDetector(window=400, step=50),  # reaches the sliding part in 3000 rows
        HourOfWeekZScoreDetector(),
        IsolationForestDetector(),
        small_forest,
        OpsbotDetector(),
        OpsbotNoveltyDetector(),
        OpsbotStreamDetector(),
        with_novelty_gate(),  # the gate on: one sample beyond its range opens
    ]


_DETECTOR_IDS = [
    "gaussian",
    "gaussian_sliding",
    "hour_of_week",
    "forest",
    "forest_small",
    "opsbot_zscore",
    "opsbot_novelty",
    "opsbot_stream",
    "opsbot_metric_novelty",
]


@pytest.mark.parametrize("detector", _detectors(), ids=_DETECTOR_IDS)
def test_every_detector_is_causal_and_scores_in_the_unit_interval(detector: SeriesDetector) -> None:
    ts, values = daily_series(3000)
    values[2000] += 100  # a value beyond the whole history: even opsbot_metric's alerts fire
    try:
        full = detector.score_series(ts, values)
    except OpsbotDetectorUnavailable as exc:
        pytest.skip(f"opsbot's detector is not importable: {exc}")
    assert full.shape == (3000,) and np.all(np.isfinite(full))
    assert full.min() >= 0.0 and full.max() <= 1.0 and np.ptp(full) > 0
    for cut in (700, 1500, 2345):  # inside the first fit, across refits, mid-block
        truncated = detector.score_series(ts[:cut], values[:cut])
        np.testing.assert_allclose(truncated, full[:cut], rtol=0, atol=1e-11)
        future = values.copy()
        future[cut:] = 1e6 - 50 * future[cut:]  # a wild future must not move the past
        np.testing.assert_allclose(
            detector.score_series(ts, future)[:cut], full[:cut], rtol=0, atol=1e-11
        )


def test_windowed_gaussian_matches_a_row_by_row_port_of_nabs_detector() -> None:
    _, values = daily_series(400, seed=3)
    window, step = 50, 10
    data: list[float] = []
    buffer: list[float] = []
    mean, std, expected = 0.0, 1.0, []
    for x in values.tolist():  # NAB's handleRecord, literally
        expected.append(1 - 0.5 * math.erfc(abs(x - mean) / std / math.sqrt(2)) if data else 0.0)
        if len(data) < window:
            data.append(x)
        else:
            buffer.append(x)
            if len(buffer) < step:
                continue
            data, buffer = data[step:] + buffer, []
        mean, std = float(np.mean(data)), float(np.std(data)) or 1e-6
    got = WindowedGaussianDetector(window=window, step=step, significant_digits=None).score_series(
        np.zeros(400, dtype=np.int64), values
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


# ---- the harness ----------------------------------------------------------------------------


def _stamp(t_ns: int) -> str:
    return str(np.datetime64(int(t_ns), "ns").astype("datetime64[s]")).replace("T", " ")


def _write_corpus(
    root: Path, files: dict[str, np.ndarray], windows: dict[str, list[tuple[int, int]]]
) -> Path:
    """A NAB-layout directory: 5-minute series with windows given as row ranges."""
    labels = {}
    for key, values in files.items():
        path = root / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        ts = T0_NS + np.arange(values.size, dtype=np.int64) * FIVE_MIN_NS
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "value"])
            writer.writerows(
                (_stamp(t), repr(v)) for t, v in zip(ts.tolist(), values.tolist(), strict=True)
            )
        labels[key] = [
            [_stamp(ts[a]) + ".000000", _stamp(ts[b]) + ".000000"] for a, b in windows[key]
        ]
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    return root


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    spiky = 50 + rng.normal(0, 1, 2000)
    spiky[1500:1511] += 15  # the planted anomaly, inside window rows 1480..1580
    quiet = 20 + rng.normal(0, 1, 1200)
    return _write_corpus(
        tmp_path / "nab",
        {"synthetic/planted.csv": spiky, "synthetic/quiet.csv": quiet},
        {"synthetic/planted.csv": [(1480, 1580)], "synthetic/quiet.csv": []},
    )


def test_the_harness_finds_a_planted_anomaly_and_reports_it(planted: Path) -> None:
    events: list[FileProgress] = []
    detectors: list[SeriesDetector] = [
        WindowedGaussianDetector(),
        HourOfWeekZScoreDetector(),
        IsolationForestDetector(),
    ]
    names = [d.name for d in detectors]
    report = run_nab_eval(planted, detectors, None, progress=events.append)
    assert [e.key for e in events] == ["synthetic/planted.csv", "synthetic/quiet.csv"]
    assert list(events[0].seconds) == names
    assert (report.files, report.rows, report.windows) == (2, 3200, 1)
    for name in names:  # every detector beats the null detector on a 15-sigma step
        assert report.result(name).profiles["standard"].score > 0, name
    gaussian = report.result("windowed_gaussian").profiles["standard"]
    assert gaussian.score > 90 and gaussian.detected == 1 and gaussian.false_alerts == 0
    doc = json.loads(json.dumps(report.to_json()))
    assert list(doc) == names
    for name in names:
        assert isinstance(doc[name]["standard"], float)
        assert isinstance(doc[name]["reward_low_FP_rate"], float)
    table = render_table(report)
    assert isinstance(table, Table) and table.row_count == 3


def test_scores_out_csvs_rescore_to_the_reported_scores(planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores"
    detectors: list[SeriesDetector] = [WindowedGaussianDetector(), HourOfWeekZScoreDetector()]
    report = run_nab_eval(planted, detectors, out, progress=None)
    for result in report.detectors:
        threshold = result.profiles["standard"].threshold
        with (out / result.name / "synthetic" / "planted.csv").open() as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["timestamp", "value", "score", "alert"]
        assert len(rows) == 2001 and rows[1][0] == "2014-01-06 00:00:00"
        scores = np.array([float(r[2]) for r in rows[1:]])
        alerts = np.array([r[3] for r in rows[1:]])
        assert scores.min() >= 0 and scores.max() <= 1 and set(alerts) <= {"0", "1"}
        np.testing.assert_array_equal(alerts == "1", scores >= threshold)
    rescored = rescore(out, planted)
    for name, profiles in rescored.items():
        for profile, score in profiles.items():
            assert score == pytest.approx(report.result(name).profiles[profile].score, abs=1e-9)


def test_layout_errors_name_the_missing_path(tmp_path: Path) -> None:
    with pytest.raises(NabLayoutError, match="nowhere"):
        NabCorpus.open(tmp_path / "nowhere")
    root = _write_corpus(tmp_path / "nab", {"a/x.csv": np.ones(10)}, {"a/x.csv": []})
    (root / "labels" / "combined_windows.json").unlink()
    with pytest.raises(NabLayoutError, match="combined_windows.json"):
        NabCorpus.open(root)
    (root / "labels" / "combined_windows.json").write_text("{}")
    with pytest.raises(NabLayoutError, match="a/x.csv"):
        NabCorpus.open(root)
    (root / "labels" / "combined_windows.json").write_text('{"a/x.csv": []}')
    (root / "data" / "a" / "x.csv").write_text("timestamp,value\n2014-01-01 00:00:00,oops\n")
    with pytest.raises(NabLayoutError, match=r"x.csv line 2"):
        NabCorpus.open(root).load("a/x.csv")


class _OutOfRange:
    name = "out_of_range"

    def score_series(self, timestamps_ns: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.full(values.size, 2.0)


def test_unusable_detector_output_is_refused_with_its_name(planted: Path) -> None:
    with pytest.raises(DetectorOutputError, match="out_of_range.*planted.csv"):
        run_nab_eval(planted, [_OutOfRange()], None, progress=None)


# ---- real NAB data ----------------------------------------------------------------------------

# NAB's published per-file raw scores of its windowedGaussian at threshold 1.0
# (numenta/NAB results/windowedGaussian/windowedGaussian_{standard,reward_low_FP_rate}_scores.csv).
NAB_WINDOWED_GAUSSIAN = {
    "realKnownCause/ec2_request_latency_system_failure.csv": (2.02150685678, 2.02150685678),
    "realAWSCloudwatch/grok_asg_anomaly.csv": (2.37942230674, 2.04942230674),
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv": (-1.26667875935, -2.39490832077),
}


def test_windowed_gaussian_reproduces_nabs_published_file_scores() -> None:
    corpus = NabCorpus.open(shared_path("nab"))
    for key, expected in NAB_WINDOWED_GAUSSIAN.items():
        nab_file = corpus.load(key)
        scores = WindowedGaussianDetector().score_series(nab_file.timestamps_ns, nab_file.values)
        for profile, raw in zip((STANDARD, REWARD_LOW_FP), expected, strict=True):
            got = score_alerts(nab_file.labels, scores >= 1.0, profile).raw
            assert got == pytest.approx(raw, abs=1e-9), (key, profile.name)


def test_every_real_file_loads_with_all_its_windows_after_probation() -> None:
    root = shared_path("nab")
    corpus = NabCorpus.open(root)
    labelled = json.loads((root / "labels" / "combined_windows.json").read_text())
    assert corpus.window_count == sum(len(labelled[k]) for k in corpus.keys)
    for key in corpus.keys:
        labels = corpus.load(key).labels
        assert len(labels.windows) == len(labelled[key]) == labels.scored_windows, key


def test_real_smoke_two_files_end_to_end(tmp_path: Path) -> None:
    source = shared_path("nab")
    keys = [
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
        "realKnownCause/rogue_agent_key_hold.csv",
    ]
    root = tmp_path / "nab"
    labelled = json.loads((source / "labels" / "combined_windows.json").read_text())
    for key in keys:  # links, not copies: the data is read in place
        (root / "data" / key).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / key).symlink_to(source / "data" / key)
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({k: labelled[k] for k in keys})
    )
    detectors: list[SeriesDetector] = [
        WindowedGaussianDetector(),
        HourOfWeekZScoreDetector(),
        IsolationForestDetector(),
    ]
    report = run_nab_eval(root, detectors, tmp_path / "scores", progress=None)
    assert report.files == 2 and report.windows == sum(len(labelled[k]) for k in keys)
    for result in report.detectors:
        for profile in result.profiles.values():
            assert math.isfinite(profile.score) and profile.score <= 100.0
            assert profile.detected + profile.missed == report.windows
    rescored = rescore(tmp_path / "scores", root)
    for result in report.detectors:
        assert rescored[result.name]["standard"] == pytest.approx(result.profiles["standard"].score)
