"""Deciding a scored window: direction, minimum deviation, then severity.

Scores come from `scoring`; this step turns them into what the lifecycle eats.
The minimum deviation compares the statistic that produced the window's score
with its baseline counterpart: the window median with the baseline p50, or the
window p90 with the baseline p90, in raw units (ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.config import SeverityConfig
from detectors.scoring import BaselineTable, WindowScores
from detectors.severity import SeverityDecision, SeverityThresholds, badness, deviation_ok

__all__ = ["WindowDecisions", "decide_windows"]


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
    decisions: list[SeverityDecision | None] = []
    for k, b, passed in zip(windows.key_idx.tolist(), bad.tolist(), ok.tolist(), strict=True):
        th = thresholds[k]
        decisions.append(th.classify(b) if passed and th is not None else None)
    return WindowDecisions(bad, observed, expected, ok, decisions)
