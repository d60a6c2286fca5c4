"""NAB's scoring rules for one file (numenta/NAB v1.1 `nab/sweeper.py`, `nab/scorer.py`).

A labelled window counts once, by its earliest alert, weighted by a scaled sigmoid
of that alert's position; alerts outside windows cost `fp_weight` scaled by their
distance past the previous window; a missed window costs `fn_weight`. The first
15% of a file (at most 750 rows) is probation and is not scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROFILES",
    "REWARD_LOW_FP",
    "STANDARD",
    "FileLabels",
    "FileScore",
    "NabScoringError",
    "Profile",
    "RowWeights",
    "probation_length",
    "row_weights",
    "scaled_sigmoid",
    "score_alerts",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000  # NAB: min(floor(0.15 n), 0.15 x 5000), i.e. at most 750 rows


class NabScoringError(ValueError):
    """Inputs to the scorer are inconsistent; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One NAB application profile (cost matrix, NAB's `config/profiles.json`)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float
    tn_weight: float = 1.0  # part of NAB's cost matrix; NAB's scorer never reads it


STANDARD = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
REWARD_LOW_FP = Profile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0)
PROFILES: tuple[Profile, ...] = (STANDARD, REWARD_LOW_FP)


def scaled_sigmoid(x: npt.ArrayLike) -> FloatArray:
    """NAB's `2 * sigmoid(-5x) - 1`, and exactly -1 beyond x = 3.

    x = -1 is a window's left edge (0.9866), 0 its right edge (0), x > 0 lies past it.
    """
    a = np.asarray(x, dtype=np.float64)
    bounded = np.minimum(a, 4.0)  # keeps exp finite; the branch below overrides it anyway
    return np.where(a > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * bounded)) - 1.0)


_MAX_TP = float(
    scaled_sigmoid(-1.0)
)  # NAB divides TP weights by it: a left-edge alert earns tp_weight


def probation_length(n_rows: int) -> int:
    """Rows at the start of a file that are never scored: min(floor(15% n), 750)."""
    return int(
        min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_FRACTION * PROBATION_CAP_ROWS)
    )


@dataclass(frozen=True, slots=True)
class FileLabels:
    """Ground truth of one file: row count, inclusive window row ranges, probation rows."""

    n_rows: int
    windows: tuple[tuple[int, int], ...]
    probation: int

    @classmethod
    def of(
        cls, n_rows: int, windows: list[tuple[int, int]] | tuple[tuple[int, int], ...]
    ) -> FileLabels:
        """Labels with NAB's probation for `n_rows` rows."""
        return cls(n_rows, tuple((int(a), int(b)) for a, b in windows), probation_length(n_rows))

    def __post_init__(self) -> None:
        prev_end = -1
        for start, end in self.windows:
            if not 0 <= start <= end < self.n_rows:
                raise NabScoringError(f"window rows [{start}, {end}] outside 0..{self.n_rows - 1}")
            if start <= prev_end:
                raise NabScoringError(
                    f"window rows [{start}, {end}] overlap or precede the previous one"
                )
            prev_end = end

    @property
    def scored_windows(self) -> int:
        """Windows with at least one row after probation: the ones that can be found or missed."""
        return sum(1 for _, end in self.windows if end >= self.probation)


@dataclass(frozen=True, slots=True)
class RowWeights:
    """Per row: an alert's worth, its window index (-1 outside), whether it is scored."""

    weight: FloatArray
    window: IntArray
    scored: BoolArray


def row_weights(labels: FileLabels, profile: Profile) -> RowWeights:
    """NAB's per-row sweep score (`Sweeper.calcSweepScore`) for every row of a file.

    Inside a window of width W ending at row r, row i is worth
    tp_weight x S(-(r - i + 1) / W) / S(-1). Outside, a row before any window costs
    the full -fp_weight; after a window it is worth fp_weight x S((i - r) / (W - 1)).
    NAB divides by zero after a one-row window; such rows cost the full -fp_weight here.
    """
    n = labels.n_rows
    rows = np.arange(n, dtype=np.int64)
    weight = np.full(n, -profile.fp_weight)
    window = np.full(n, -1, dtype=np.int64)
    for k, (start, end) in enumerate(labels.windows):
        width = end - start + 1
        inside = rows[start : end + 1]
        weight[start : end + 1] = (
            profile.tp_weight * scaled_sigmoid(-(end - inside + 1) / width) / _MAX_TP
        )
        window[start : end + 1] = k
        stop = labels.windows[k + 1][0] if k + 1 < len(labels.windows) else n
        past = (rows[end + 1 : stop] - end) / (width - 1) if width > 1 else np.inf
        weight[end + 1 : stop] = profile.fp_weight * scaled_sigmoid(past)
    return RowWeights(weight, window, rows >= labels.probation)


@dataclass(frozen=True, slots=True)
class FileScore:
    """Raw NAB score of one file at fixed alerts, and what made it."""

    raw: float
    detected: int  # windows with an alert
    missed: int  # scored windows without one
    false_alerts: int  # scored alerts outside every window


def score_alerts(labels: FileLabels, alerts: npt.ArrayLike, profile: Profile) -> FileScore:
    """Score one file's boolean alerts directly, window by window (NAB's `Scorer.getScore`).

    Written apart from the threshold sweep, so each checks the other.
    """
    flags = np.asarray(alerts, dtype=np.bool_)
    if flags.shape != (labels.n_rows,):
        raise NabScoringError(f"{flags.shape} alerts for a file of {labels.n_rows} rows")
    hits = np.flatnonzero(flags)
    hits = hits[hits >= labels.probation]
    window_raw, detected, missed = _score_windows(labels, hits, profile)
    false_raw, false_alerts = _score_false_alerts(labels, hits, profile)
    return FileScore(window_raw + false_raw, detected, missed, false_alerts)


def _score_windows(labels: FileLabels, hits: IntArray, profile: Profile) -> tuple[float, int, int]:
    raw, detected, missed = 0.0, 0, 0
    for start, end in labels.windows:
        if end < labels.probation:
            continue
        inside = hits[(hits >= start) & (hits <= end)]
        if inside.size == 0:
            raw -= profile.fn_weight
            missed += 1
            continue
        position = -(end - int(inside[0]) + 1) / (end - start + 1)  # only the earliest alert counts
        raw += profile.tp_weight * float(scaled_sigmoid(position)) / _MAX_TP
        detected += 1
    return raw, detected, missed


def _score_false_alerts(labels: FileLabels, hits: IntArray, profile: Profile) -> tuple[float, int]:
    starts = np.array([start for start, _ in labels.windows], dtype=np.int64)
    ends = np.array([end for _, end in labels.windows], dtype=np.int64)
    raw, count = 0.0, 0
    for row in hits.tolist():
        k = int(np.searchsorted(ends, row)) - 1  # last window ending before this row
        if k + 1 < ends.size and starts[k + 1] <= row:
            continue  # inside window k + 1: scored with that window
        count += 1
        if k < 0 or starts[k] == ends[k]:
            raw -= profile.fp_weight  # no previous window (or NAB's 0/0 after a one-row window)
        else:
            past = (row - int(ends[k])) / int(ends[k] - starts[k])
            raw += profile.fp_weight * float(scaled_sigmoid(past))
    return raw, count
