"""Corpus-wide threshold sweep and normalisation (NAB v1.1 `Sweeper.calcScoreByThreshold`).

Every distinct anomaly score in the scored rows of the corpus is a candidate
threshold (alert when score >= threshold); one sorted pass gives the raw corpus
score at all of them. The best one is kept, and the raw score is normalised as
100 x (raw - null) / (perfect - null).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.nab.scoring import FileLabels, NabScoringError, Profile, row_weights

__all__ = [
    "NO_ALERT_THRESHOLD",
    "SweepResult",
    "ThresholdCurve",
    "normalise",
    "optimise_threshold",
    "sweep",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NO_ALERT_THRESHOLD = 1.1  # NAB's starting threshold: above every score in [0, 1], so nothing alerts


@dataclass(frozen=True, slots=True)
class ThresholdCurve:
    """Raw corpus score at each candidate threshold, thresholds in decreasing order."""

    thresholds: FloatArray  # thresholds[0] is NO_ALERT_THRESHOLD
    raw: FloatArray
    null: float  # no alert at all: every scored window missed
    perfect: float  # every scored window found at its left edge, no false alert


@dataclass(frozen=True, slots=True)
class SweepResult:
    """The best threshold of one detector under one profile."""

    profile: Profile
    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def score(self) -> float:
        """Normalised NAB score: 0 for the null detector, 100 for the perfect one."""
        return normalise(self.raw, self.null, self.perfect)


def normalise(raw: float, null: float, perfect: float) -> float:
    """100 x (raw - null) / (perfect - null), NAB's `Runner.normalize`."""
    if perfect <= null:
        raise NabScoringError("the corpus has no scored window, so no NAB score can be normalised")
    return 100.0 * (raw - null) / (perfect - null)


def sweep(
    scores: Sequence[npt.ArrayLike], labels: Sequence[FileLabels], profile: Profile
) -> ThresholdCurve:
    """Raw corpus score at every distinct score value, in one sorted pass over the scored rows."""
    if len(scores) != len(labels):
        raise NabScoringError(f"{len(scores)} score arrays for {len(labels)} files")
    score, weight, window = _scored_rows(scores, labels, profile)
    n_windows = int(np.unique(window[window >= 0]).size)
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    order = np.argsort(-score, kind="stable")
    score, weight, window = score[order], weight[order], window[order]
    outside = window < 0
    delta = np.where(outside, weight, 0.0) + _window_deltas(window, weight, profile.fn_weight)
    total = null + np.cumsum(delta)
    last_of_value = np.flatnonzero(np.diff(score) != 0)
    if score.size:
        last_of_value = np.append(last_of_value, score.size - 1)
    thresholds = np.concatenate(([NO_ALERT_THRESHOLD], score[last_of_value]))
    raw = np.concatenate(([null], total[last_of_value]))
    return ThresholdCurve(thresholds, raw, null, perfect)


def optimise_threshold(
    scores: Sequence[npt.ArrayLike], labels: Sequence[FileLabels], profile: Profile
) -> SweepResult:
    """The threshold with the best raw corpus score; ties go to the highest threshold, as in NAB."""
    curve = sweep(scores, labels, profile)
    best = int(np.argmax(curve.raw))
    return SweepResult(
        profile, float(curve.thresholds[best]), float(curve.raw[best]), curve.null, curve.perfect
    )


def _scored_rows(
    scores: Sequence[npt.ArrayLike], labels: Sequence[FileLabels], profile: Profile
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Scores, sweep weights and corpus-wide window ids of every row after probation."""
    parts: list[tuple[FloatArray, FloatArray, IntArray]] = []
    offset = 0
    for file_scores, file_labels in zip(scores, labels, strict=True):
        s = np.asarray(file_scores, dtype=np.float64)
        if s.shape != (file_labels.n_rows,):
            raise NabScoringError(f"{s.shape} scores for a file of {file_labels.n_rows} rows")
        if s.size and not (np.all(np.isfinite(s)) and s.min() >= 0.0 and s.max() <= 1.0):
            raise NabScoringError("anomaly scores must be finite and within [0, 1]")
        rw = row_weights(file_labels, profile)
        ids = np.where(rw.window >= 0, rw.window + offset, -1)
        parts.append((s[rw.scored], rw.weight[rw.scored], ids[rw.scored]))
        offset += len(file_labels.windows)
    if not parts:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _window_deltas(window: IntArray, weight: FloatArray, fn_weight: float) -> FloatArray:
    """Change in a window's part of the score as each of its rows starts alerting (sweep order).

    A window is worth -fn_weight until its first alert, then the best (earliest) alert's
    weight so far: a running maximum per window.
    """
    delta = np.zeros(window.size)
    rows = np.flatnonzero(window >= 0)
    if rows.size == 0:
        return delta
    grouped = rows[np.argsort(window[rows], kind="stable")]  # by window, sweep order kept inside
    bounds = np.flatnonzero(np.diff(window[grouped])) + 1
    for members in np.split(grouped, bounds):
        best = np.maximum.accumulate(np.concatenate(([-fn_weight], weight[members])))
        delta[members] = np.diff(best)
    return delta
