"""Deciding a scored window or metric sample: direction, minimum deviation, then severity.

Scores come from `scoring`; this step turns them into what the lifecycle eats.
The minimum deviation compares the statistic that produced a window's score
with its baseline counterpart: the window median with the baseline p50, or the
window p90 with the baseline p90, in raw units (ms); a metric sample is compared
with its baseline p50 in the metric's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.config import SeverityConfig
from detectors.scoring import BaselineTable, WindowScores
from detectors.severity import SeverityDecision, SeverityThresholds, badness, deviation_ok

__all__ = ["WindowDecisions", "decide_samples", "decide_windows"]


@dataclass(frozen=True, slots=True)
class WindowDecisions:
    """Per row of a WindowScores: how bad, whether it moved enough, and its severity."""

    badness: npt.NDArray[np.float64]  # direction-adjusted score (NaN: not scored)
    observed: npt.NDArray[np.float64]  # the statistic behind the score, raw units
    expected: npt.NDArray[np.float64]  # its baseline counterpart
    deviation_ok: npt.NDArray[np.bool_]
    decisions: list[SeverityDecision | None]


def decide_windows(
    windows: WindowScores,
    table: BaselineTable,
    thresholds: Sequence[SeverityThresholds | None],
    config: SeverityConfig,
) -> WindowDecisions:
    """Severity of every latency window; `thresholds[k]` belongs to key index k (None: none yet)."""
    bad = badness(windows.score, config.latency_direction)
    use_median = np.abs(windows.z_median) >= np.nan_to_num(np.abs(windows.z_p90))
    observed = np.where(use_median, windows.median, windows.p90)
    expected = np.where(use_median, table.p50[windows.key_idx], table.p90[windows.key_idx])
    ok = deviation_ok(
        observed, expected, config.latency_min_abs_deviation_ms, config.latency_min_rel_deviation
    )
    return WindowDecisions(
        bad, observed, expected, ok, _classify(windows.key_idx, bad, ok, thresholds)
    )


def decide_samples(
    values: npt.ArrayLike,
    idx: npt.ArrayLike,
    scores: npt.ArrayLike,
    table: BaselineTable,
    thresholds: Sequence[SeverityThresholds | None],
    config: SeverityConfig,
) -> WindowDecisions:
    """Severity of every metric sample scored by `sample_scores` (same rows as `values`)."""
    i = np.asarray(idx, dtype=np.int64)
    bad = badness(scores, config.metric_direction)
    observed = np.asarray(values, dtype=np.float64)
    expected = table.p50[i]
    ok = deviation_ok(
        observed, expected, config.metric_min_abs_deviation, config.metric_min_rel_deviation
    )
    return WindowDecisions(bad, observed, expected, ok, _classify(i, bad, ok, thresholds))


def _classify(
    idx: npt.NDArray[np.int64],
    bad: npt.NDArray[np.float64],
    ok: npt.NDArray[np.bool_],
    thresholds: Sequence[SeverityThresholds | None],
) -> list[SeverityDecision | None]:
    decisions: list[SeverityDecision | None] = []
    for k, b, passed in zip(idx.tolist(), bad.tolist(), ok.tolist(), strict=True):
        th = thresholds[k]
        decisions.append(th.classify(b) if passed and th is not None else None)
    return decisions
