"""bench.nab.split: categories, fixed-threshold scoring, coordinate descent, held-out rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bench.nab import REWARD_LOW_FP, STANDARD, FileLabels, optimise_threshold
from bench.nab.corpus import NabFile
from bench.nab.split import (
    ARTIFICIAL,
    AWS,
    KNOWN_CAUSE,
    ScoreCache,
    category,
    main,
    run_splits,
    scored_at,
    tune,
)
from detectors.novelty import NoveltyConfig

FIVE_MIN_NS = 300 * 10**9
T0_NS = 1_400_000_000 * 10**9


def _file(key: str, seed: int, step_at: int, n: int = 2000) -> NabFile:
    """A daily cycle with noise and one level step, its window centred on the step."""
    rng = np.random.default_rng(seed)
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    values[step_at:] += 25
    ts = T0_NS + np.arange(n, dtype=np.int64) * FIVE_MIN_NS
    return NabFile(key, ts, values, FileLabels.of(n, [(step_at - 50, step_at + 50)]))


FILES = [
    _file("artificialWithAnomaly/a.csv", 1, 1200),
    _file("realAWSCloudwatch/b.csv", 2, 1500),
    _file("realKnownCause/c.csv", 3, 1700),
]
SPACE = {"hold_s": (3600.0, 50 * 3600.0), "seasonal_weight": (0.0, 0.3)}


def test_categories_merge_the_two_artificial_folders() -> None:
    assert category("artificialNoAnomaly/x.csv") == category("artificialWithAnomaly/y.csv")
    assert [category(f.key) for f in FILES] == [ARTIFICIAL, AWS, KNOWN_CAUSE]


def test_a_fixed_threshold_scores_as_the_sweep_does_at_its_best_threshold() -> None:
    cache = ScoreCache()
    scores = cache(FILES, NoveltyConfig())
    labels = [f.labels for f in FILES]
    for profile in (STANDARD, REWARD_LOW_FP):
        best = optimise_threshold(scores, labels, profile)
        assert scored_at(scores, FILES, profile, best.threshold) == pytest.approx(best.score)
        assert scored_at(scores, FILES, profile, 1.1) == pytest.approx(0.0)  # no alert: null


def test_tuning_never_ends_worse_than_it_starts_and_scores_each_config_once() -> None:
    calls: list[tuple[NoveltyConfig, str]] = []

    def counting(f: NabFile, config: NoveltyConfig) -> np.ndarray:
        calls.append((config, f.key))
        return ScoreCache()([f], config)[0]

    cache = ScoreCache(counting)
    start = dataclasses.replace(NoveltyConfig(), hold_s=3600.0, seasonal_weight=0.0)
    config, scored, n = tune(FILES, cache, start, SPACE)
    _, start_scored, _ = tune(FILES, cache, start, {})
    mean = np.mean([s.score for s in scored.values()])
    assert mean >= np.mean([s.score for s in start_scored.values()])
    assert config.hold_s in SPACE["hold_s"] and 1 <= n <= 4
    assert len(calls) == len(set(calls))  # the cache scored every (config, file) once


def test_held_out_files_are_scored_with_the_tuning_sets_thresholds() -> None:
    splits = [(frozenset({ARTIFICIAL, AWS}), frozenset({KNOWN_CAUSE}))]
    split, everything = run_splits(FILES, splits, SPACE)
    assert (split.tune_on, split.score_on) == ((ARTIFICIAL, AWS), (KNOWN_CAUSE,))
    test = [FILES[2]]
    scores = ScoreCache()(test, split.config)
    for profile in (STANDARD, REWARD_LOW_FP):
        threshold = split.tuned[profile.name].threshold
        assert split.held_out[profile.name].threshold == threshold
        want = scored_at(scores, test, profile, threshold)
        assert split.held_out[profile.name].score == pytest.approx(want)
        assert split.held_out_refit[profile.name].score >= want - 1e-9  # refit can only help
    assert everything.tune_on == everything.score_on == (ARTIFICIAL, AWS, KNOWN_CAUSE)
    assert set(split.to_json()) >= {"config", "tuned", "held_out", "held_out_refit"}


def test_cli_says_what_is_wrong_with_a_missing_corpus(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--data", str(tmp_path / "nab")]) == 2
    assert "error:" in capsys.readouterr().err
