"""NAB benchmark harness for `opsbot eval nab`: corpus loading, NAB scoring, reference detectors.

`run_nab_eval(data_dir, detectors, scores_out)` runs any `SeriesDetector` over a
NAB-layout directory and returns a `NabReport` (`to_json()`, `render_table`).
"""

from bench.nab.corpus import NabCorpus, NabFile, NabLayoutError
from bench.nab.harness import FileProgress, default_detectors, run_nab_eval, stderr_progress
from bench.nab.opsbot import (
    NAB_NOVELTY,
    OpsbotDetector,
    OpsbotDetectorUnavailable,
    OpsbotNoveltyDetector,
)
from bench.nab.protocol import DetectorOutputError, SeriesDetector
from bench.nab.reference import (
    HourOfWeekZScoreDetector,
    IsolationForestDetector,
    WindowedGaussianDetector,
)
from bench.nab.report import DetectorResult, NabReport, ProfileResult, render_table
from bench.nab.scores_out import rescore
from bench.nab.scoring import (
    PROFILES,
    REWARD_LOW_FP,
    STANDARD,
    FileLabels,
    NabScoringError,
    Profile,
    score_alerts,
)
from bench.nab.sweep import optimise_threshold, sweep

__all__ = [
    "NAB_NOVELTY",
    "PROFILES",
    "REWARD_LOW_FP",
    "STANDARD",
    "DetectorOutputError",
    "DetectorResult",
    "FileLabels",
    "FileProgress",
    "HourOfWeekZScoreDetector",
    "IsolationForestDetector",
    "NabCorpus",
    "NabFile",
    "NabLayoutError",
    "NabReport",
    "NabScoringError",
    "OpsbotDetector",
    "OpsbotDetectorUnavailable",
    "OpsbotNoveltyDetector",
    "Profile",
    "ProfileResult",
    "SeriesDetector",
    "WindowedGaussianDetector",
    "default_detectors",
    "optimise_threshold",
    "render_table",
    "rescore",
    "run_nab_eval",
    "score_alerts",
    "stderr_progress",
    "sweep",
]
