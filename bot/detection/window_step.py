"""One scoring step of the alerting unit (one span key over one window), for many keys at once.

Pure glue of the detector steps: `score_windows` (latency) and `error_scores`
(error rate) against the same hourly baselines, `decide_windows` for the
latency minimum deviation, then one badness per window: the worse of the two
signals, classified by the key's severity thresholds. It also picks the
slowest spans of each window as exemplar candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.detection.error_rate import ErrorRateConfig, error_scores
from detectors.config import DetectorConfig
from detectors.decide import decide_windows
from detectors.scoring import (
    BaselineTable,
    WindowScores,
    sample_scores,
    score_windows,
    top_per_window,
)
from detectors.severity import SeverityDecision, SeverityThresholds

__all__ = ["WindowStep", "score_step"]

FloatArray = npt.NDArray[np.float64]
_ERRORS = ErrorRateConfig()
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WindowStep:
    """One row per scored (key, window); `exemplar_rows[r]` index the input spans."""

    windows: WindowScores
    badness: FloatArray  # worse of latency (up) and error-rate badness; NaN: not scored
    eligible: npt.NDArray[np.bool_]  # passed its signal's minimum deviation
    signal: list[str]  # "latency" | "errors": which one set the badness
    observed: FloatArray  # ms (latency) or error rate
    expected: FloatArray
    decisions: list[SeverityDecision | None]
    exemplar_rows: list[list[int]]


def score_step(
    durations_ms: FloatArray, key_idx: IntArray, start_ns: IntArray, errors: npt.NDArray[np.bool_],
    table: BaselineTable, thresholds: Sequence[SeverityThresholds | None],
    base_errors: IntArray, base_counts: IntArray, config: DetectorConfig,
    error_config: ErrorRateConfig = _ERRORS, exemplars: int = 3,
) -> WindowStep:
    """Score, decide and classify every window present in the spans (base_* indexed by key)."""
    sc = config.scoring
    w = score_windows(durations_ms, key_idx, start_ns, table, sc)
    lat = decide_windows(w, table, thresholds, config.severity)
    n_err = np.bincount(w.group, weights=errors.astype(np.float64), minlength=len(w))
    ez, e_ok, rate, p = error_scores(
        n_err, w.count, base_errors[w.key_idx], base_counts[w.key_idx],
        max_effective_n=sc.max_effective_n, max_z=sc.max_z,
        min_window_count=sc.min_window_count, config=error_config,
    )
    ez = np.where(table.warm[w.key_idx], ez, np.nan)
    use_err = np.nan_to_num(ez, nan=-np.inf) > np.nan_to_num(lat.badness, nan=-np.inf)
    badness = np.where(use_err, ez, lat.badness)
    eligible = np.where(use_err, e_ok, lat.deviation_ok)
    decisions: list[SeverityDecision | None] = []
    for r, (k, b, ok) in enumerate(zip(w.key_idx.tolist(), badness.tolist(), eligible.tolist(),
                                       strict=True)):
        th = thresholds[k]
        d = th.classify(b) if ok and th is not None else None
        if d is None and not use_err[r] and lat.decisions[r] is not None:
            d = lat.decisions[r]
        decisions.append(d)
    span_z = sample_scores(durations_ms, key_idx, table, sc.max_z)
    rows: list[list[int]] = [[] for _ in range(len(w))]
    for i in top_per_window(w.group, span_z, exemplars).tolist():
        rows[int(w.group[i])].append(i)
    return WindowStep(
        windows=w, badness=badness, eligible=np.asarray(eligible, np.bool_),
        signal=["errors" if u else "latency" for u in use_err.tolist()],
        observed=np.where(use_err, rate, lat.observed),
        expected=np.where(use_err, p, lat.expected),
        decisions=decisions, exemplar_rows=rows,
    )
