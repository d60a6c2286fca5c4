"""Adaptive severity: a key's historical window scores set its SEV1..SEV5 thresholds.

Threshold of SEVk = max(percentile_k of history, floor_k), clipped to max_z so a
capped score can still reach it. A window gets the most severe level it reaches,
but only when it also passes the minimum deviation (observed vs expected differ
by at least an absolute AND a relative amount), so a very stable key does not
alert on trivial changes. Each decision keeps the percentile, threshold and
score that set it, for the message.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from detectors.config import Direction, SeverityConfig

__all__ = [
    "Severity",
    "SeverityDecision",
    "SeverityLevel",
    "SeverityThresholds",
    "badness",
    "compute_thresholds",
    "deviation_ok",
    "thresholds_by_group",
]

FloatArray = npt.NDArray[np.float64]
_GRID_PCTS = np.concatenate([np.arange(0.0, 100.0, 1.0), [99.5, 99.9, 99.99, 100.0]])


class Severity(enum.IntEnum):
    """SEV1 is the most severe; a smaller number wins."""

    SEV1 = 1
    SEV2 = 2
    SEV3 = 3
    SEV4 = 4
    SEV5 = 5


@dataclass(frozen=True, slots=True)
class SeverityLevel:
    severity: Severity
    percentile: float  # e.g. 99.0
    percentile_value: float  # the history's score at that percentile (NaN: too little history)
    floor: float
    threshold: float  # what a window's badness must reach
    set_by: Literal["percentile", "floor", "cap"]


@dataclass(frozen=True, slots=True)
class SeverityDecision:
    """Why a window got its severity: enough for 'SEV2: 6.4 >= p99 threshold 5.1'."""

    severity: Severity
    score: float  # the window's badness (direction-adjusted score)
    threshold: float
    percentile: float
    set_by: str
    rank: float  # where the score sits in the key's history, 0..100


@dataclass(frozen=True, slots=True)
class SeverityThresholds:
    """Thresholds of one key (and bucket), plus a compact quantile grid of its history."""

    levels: tuple[SeverityLevel, ...]  # SEV1 first
    history_count: int
    grid: tuple[float, ...]  # badness at _GRID_PCTS; empty when there is no history

    def classify(self, score: float) -> SeverityDecision | None:
        """Most severe level whose threshold `score` (a badness) reaches; None below SEV5."""
        if math.isnan(score):
            return None
        for level in self.levels:
            if score >= level.threshold:
                return SeverityDecision(
                    level.severity,
                    score,
                    level.threshold,
                    level.percentile,
                    level.set_by,
                    self.rank(score),
                )
        return None

    def rank(self, score: float) -> float:
        """Approximate percentile rank of `score` within the history (NaN without history)."""
        if not self.grid:
            return math.nan
        return float(np.interp(score, np.asarray(self.grid), _GRID_PCTS))

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": [
                [
                    lv.severity.value,
                    lv.percentile,
                    lv.percentile_value,
                    lv.floor,
                    lv.threshold,
                    lv.set_by,
                ]
                for lv in self.levels
            ],
            "history_count": self.history_count,
            "grid": list(self.grid),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeverityThresholds:
        levels = tuple(
            SeverityLevel(Severity(s), p, pv, f, t, sb) for s, p, pv, f, t, sb in d["levels"]
        )
        return cls(levels, int(d["history_count"]), tuple(float(g) for g in d["grid"]))


def badness(score: npt.ArrayLike, direction: Direction) -> FloatArray:
    """How bad a signed score is for a direction: up -> z, down -> -z, both -> |z|."""
    z = np.asarray(score, dtype=np.float64)
    if direction == "up":
        return z
    if direction == "down":
        return -z
    return np.abs(z)


def compute_thresholds(
    history: npt.ArrayLike, config: SeverityConfig, direction: Direction, max_z: float = 0.0
) -> SeverityThresholds:
    """Thresholds from signed historical window scores of one key (and bucket); NaN ignored."""
    b = badness(history, direction)
    b = b[np.isfinite(b)]
    enough = b.size >= max(config.min_history, 1)
    pct_values = np.percentile(b, config.percentiles) if enough else np.full(5, np.nan)
    levels: list[SeverityLevel] = []
    for i, (p, floor) in enumerate(zip(config.percentiles, config.score_floors, strict=True)):
        value = float(pct_values[i])
        threshold: float = floor
        set_by: Literal["percentile", "floor", "cap"] = "floor"
        if enough and value > floor:
            threshold, set_by = value, "percentile"
        if max_z > 0 and threshold > max_z:
            threshold, set_by = max_z, "cap"
        levels.append(SeverityLevel(Severity(i + 1), p, value, floor, threshold, set_by))
    grid = tuple(float(v) for v in np.percentile(b, _GRID_PCTS)) if b.size else ()
    return SeverityThresholds(tuple(levels), int(b.size), grid)


def thresholds_by_group(
    history: npt.ArrayLike,
    groups: npt.ArrayLike,
    config: SeverityConfig,
    direction: Direction,
    max_z: float = 0.0,
) -> dict[int, SeverityThresholds]:
    """Thresholds per group id (e.g. one key's hour-of-day buckets).

    A group with fewer than `min_history` scores gets the thresholds of all groups
    pooled, so a sparse bucket does not fall back to floors alone.
    """
    h = np.asarray(history, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    pooled = compute_thresholds(h, config, direction, max_z)
    out: dict[int, SeverityThresholds] = {}
    for gid in np.unique(g):
        part = h[g == gid]
        n = int(np.isfinite(badness(part, direction)).sum())
        out[int(gid)] = (
            compute_thresholds(part, config, direction, max_z)
            if n >= config.min_history
            else pooled
        )
    return out


def deviation_ok(
    observed: npt.ArrayLike, expected: npt.ArrayLike, min_abs: float, min_rel: float
) -> npt.NDArray[np.bool_]:
    """|observed - expected| >= min_abs AND >= min_rel x |expected| (raw units, vectorised).

    For latency the defaults read: the window's median (or p90) differs from the
    baseline's p50 (or p90) by at least 0.5 ms and 20 %.
    """
    o = np.asarray(observed, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    gap = np.abs(o - e)
    return np.asarray((gap >= min_abs) & (gap >= min_rel * np.abs(e)))
