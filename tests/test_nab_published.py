"""NAB harness against NAB's own published results, and opsbot's detector on the real corpus.

NAB's windowedGaussian results (numenta/NAB `results/windowedGaussian/
windowedGaussian_{standard,reward_low_FP_rate}_scores.csv`, threshold 1.0) give a
raw score per file; summed over the files present and normalised with NAB's
null/perfect rule they must equal what this harness computes. On the full 58-file
corpus the same sums give NAB's scoreboard figures 39.6 / 20.9.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.nab import (
    REWARD_LOW_FP,
    STANDARD,
    NabCorpus,
    NabFile,
    OpsbotNoveltyDetector,
    WindowedGaussianDetector,
    optimise_threshold,
    score_alerts,
)
from bench.nab.harness import run_nab_eval
from bench.nab.opsbot import OpsbotMetricDetector, with_novelty_gate
from bench.nab.published import published_scores
from bench.nab.report import render_table
from bench.nab.sweep import normalise
from tests.conftest import shared_path

# file -> (standard raw, reward_low_FP_rate raw), NAB's published windowedGaussian rows
NAB_WINDOWED_GAUSSIAN_RAW = {
    "artificialNoAnomaly/art_daily_no_noise.csv": (0.0, 0.0),
    "artificialNoAnomaly/art_daily_perfect_square_wave.csv": (0.0, 0.0),
    "artificialNoAnomaly/art_daily_small_noise.csv": (0.0, 0.0),
    "artificialNoAnomaly/art_flatline.csv": (0.0, 0.0),
    "artificialNoAnomaly/art_noisy.csv": (0.0, 0.0),
    "artificialWithAnomaly/art_daily_flatmiddle.csv": (-1.0, -1.0),
    "artificialWithAnomaly/art_daily_jumpsdown.csv": (-1.0, -1.0),
    "artificialWithAnomaly/art_daily_jumpsup.csv": (-1.0, -1.0),
    "artificialWithAnomaly/art_daily_nojump.csv": (-1.0, -1.0),
    "artificialWithAnomaly/art_increase_spike_density.csv": (-1.0, -1.0),
    "artificialWithAnomaly/art_load_balancer_spikes.csv": (-0.692444609523, -2.34244460952),
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv": (-1.26667875935, -2.39490832077),
    "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv": (-0.141423196117, -0.471217560129),
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv": (-2.0, -2.0),
    "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv": (-1.0, -1.0),
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv": (0.956537840284, 0.956537840284),
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv": (0.86067182427, 0.86067182427),
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv": (-1.32, -2.64),
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv": (0.638757791772, 0.528757791772),
    "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv": (-4.19089678552, -9.31619217025),
    "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv": (-1.09599853032, -3.0909727984),
    "realAWSCloudwatch/ec2_network_in_257a54.csv": (0.86067182427, 0.86067182427),
    "realAWSCloudwatch/ec2_network_in_5abac7.csv": (-3.52193223519, -8.9750563904),
    "realAWSCloudwatch/elb_request_count_8c0756.csv": (-0.138449197924, -0.138449197924),
    "realAWSCloudwatch/grok_asg_anomaly.csv": (2.37942230674, 2.04942230674),
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv": (-2.0, -2.0),
    "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv": (-0.138449197924, -0.138449197924),
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv": (-0.138449197924, -0.138449197924),
    "realKnownCause/ambient_temperature_system_failure.csv": (-2.0, -2.0),
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv": (-1.11, -1.22),
    "realKnownCause/ec2_request_latency_system_failure.csv": (2.02150685678, 2.02150685678),
    "realKnownCause/machine_temperature_system_failure.csv": (-4.0, -4.0),
    "realKnownCause/nyc_taxi.csv": (-5.0, -5.0),
    "realKnownCause/rogue_agent_key_hold.csv": (-2.44, -2.88),
    "realKnownCause/rogue_agent_key_updown.csv": (-1.3964908955, -2.1748083231),
}
NAB_FULL_CORPUS_WINDOWS = 116  # 58 files; the published totals are -24.0131054891 / -67.5862728866


@pytest.fixture(scope="module")
def corpus_files() -> list[NabFile]:
    corpus = NabCorpus.open(shared_path("nab"))
    return [corpus.load(key) for key in corpus.keys]


def test_nabs_own_totals_normalise_to_its_scoreboard() -> None:
    """The normalisation rule, checked on NAB's full-corpus totals (no data needed)."""
    n = NAB_FULL_CORPUS_WINDOWS
    assert normalise(-24.0131054891, -n, n) == pytest.approx(39.65, abs=0.01)
    assert normalise(-67.5862728866, -n, n) == pytest.approx(20.87, abs=0.01)


def test_windowed_gaussian_reproduces_every_published_file_and_the_corpus_score(
    corpus_files: list[NabFile],
) -> None:
    present = [f for f in corpus_files if f.key in NAB_WINDOWED_GAUSSIAN_RAW]
    if not present:
        pytest.skip("none of NAB's published files is in the shared corpus")
    windows = sum(f.labels.scored_windows for f in present)
    for k, profile in enumerate((STANDARD, REWARD_LOW_FP)):
        total = 0.0
        for f in present:
            scores = WindowedGaussianDetector().score_series(f.timestamps_ns, f.values)
            raw = score_alerts(f.labels, scores >= 1.0, profile).raw
            assert raw == pytest.approx(NAB_WINDOWED_GAUSSIAN_RAW[f.key][k], abs=1e-9), f.key
            total += raw
        published = sum(NAB_WINDOWED_GAUSSIAN_RAW[f.key][k] for f in present)
        assert normalise(total, -windows, windows) == pytest.approx(
            normalise(published, -windows, windows), abs=1e-7
        )
    if len(present) == 35:  # the shared subset: NAB's own results score 21.93 / 4.87 on it
        for k, expected in enumerate((21.93, 4.87)):
            raw = sum(NAB_WINDOWED_GAUSSIAN_RAW[f.key][k] for f in present)
            assert normalise(raw, -windows, windows) == pytest.approx(expected, abs=0.01)


def test_opsbot_novelty_beats_the_windowed_gaussian_on_the_real_corpus(
    corpus_files: list[NabFile],
) -> None:
    labels = [f.labels for f in corpus_files]
    ours = [OpsbotNoveltyDetector().score_series(f.timestamps_ns, f.values) for f in corpus_files]
    theirs = [
        WindowedGaussianDetector().score_series(f.timestamps_ns, f.values) for f in corpus_files
    ]
    for profile in (STANDARD, REWARD_LOW_FP):
        a = optimise_threshold(ours, labels, profile).score
        b = optimise_threshold(theirs, labels, profile).score
        assert a > b + 10, (profile.name, a, b)
    assert all(np.all((s >= 0) & (s < 1)) for s in ours)


def test_the_leaders_published_results_are_summed_over_the_files_present(
    corpus_files: list[NabFile],
) -> None:
    keys = [f.key for f in corpus_files]
    windows = sum(f.labels.scored_windows for f in corpus_files)
    got = published_scores(keys, windows)
    assert got is not None, "every shared file has a published row"
    assert published_scores([*keys, "realTweets/Twitter_volume_AAPL.csv"], windows) is None
    assert published_scores(keys, 0) is None
    if len(keys) == 35:  # the shared subset, at the thresholds NAB's leaders chose on all 58
        assert got["numenta"]["standard"] == pytest.approx(67.11, abs=0.01)
        assert got["numenta"]["reward_low_FP_rate"] == pytest.approx(61.31, abs=0.01)
        assert got["ARTime"]["standard"] == pytest.approx(67.54, abs=0.01)
        assert got["ARTime"]["reward_low_FP_rate"] == pytest.approx(56.59, abs=0.01)
    report = run_nab_eval(shared_path("nab"), [OpsbotNoveltyDetector()], progress=None)
    caption = str(render_table(report).caption)
    assert f"numenta {got['numenta']['standard']:.1f} / " in caption


def test_the_engines_own_metric_path_beats_the_windowed_gaussian_on_the_real_corpus(
    corpus_files: list[NabFile],
) -> None:
    """opsbot_metric is what `opsbot run` alerts on a metric series (z path + lifecycle; the
    novelty gate when enabled): its 0/1 decisions, scored as they are."""
    labels = [f.labels for f in corpus_files]
    ours = [OpsbotMetricDetector().score_series(f.timestamps_ns, f.values) for f in corpus_files]
    assert all(set(np.unique(s).tolist()) <= {0.0, 1.0} for s in ours)
    theirs = [
        WindowedGaussianDetector().score_series(f.timestamps_ns, f.values) for f in corpus_files
    ]
    gated = [with_novelty_gate().score_series(f.timestamps_ns, f.values) for f in corpus_files]
    for profile in (STANDARD, REWARD_LOW_FP):
        a = optimise_threshold(ours, labels, profile)
        b = optimise_threshold(theirs, labels, profile).score
        assert a.threshold == 1.0 and a.score > b + 10, (profile.name, a.score, b)
        c = optimise_threshold(gated, labels, profile)  # the novelty gate finds more windows
        assert c.score > a.score + 5, (profile.name, c.score, a.score)
