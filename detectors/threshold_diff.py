"""Dry run of a severity recalculation: which recent windows would change severity.

Replays the last days of window scores (7 by default in the caller) through the
old and the new thresholds of every key and reports, per severity, the windows
that would no longer fire at that severity and the ones that newly would. A
window that moves from SEV3 to SEV2 appears as 'no longer SEV3' and 'new SEV2'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.config import Direction
from detectors.severity import Severity, SeverityThresholds, badness

__all__ = ["SeverityChange", "ThresholdDiff", "WindowAlert", "diff_thresholds"]


@dataclass(frozen=True, slots=True)
class WindowAlert:
    key: str
    index: int  # position in the key's score array
    t_ns: int | None
    score: float  # badness
    old: Severity | None
    new: Severity | None


@dataclass(slots=True)
class SeverityChange:
    severity: Severity
    no_longer: list[WindowAlert] = field(default_factory=list)
    newly: list[WindowAlert] = field(default_factory=list)


@dataclass(slots=True)
class ThresholdDiff:
    changes: dict[Severity, SeverityChange]
    windows: int  # windows replayed
    unchanged: int  # windows whose severity (or lack of one) is the same under both

    def summary(self) -> dict[str, dict[str, int]]:
        """{'SEV1': {'no_longer': 2, 'newly': 0}, ...} for a CLI table."""
        return {
            s.name: {"no_longer": len(c.no_longer), "newly": len(c.newly)}
            for s, c in sorted(self.changes.items())
        }


def _severities(
    thresholds: SeverityThresholds | None,
    scores: npt.NDArray[np.float64],
    eligible: npt.NDArray[np.bool_],
) -> list[Severity | None]:
    if thresholds is None:
        return [None] * scores.size
    out: list[Severity | None] = []
    for score, ok in zip(scores.tolist(), eligible.tolist(), strict=True):
        decision = thresholds.classify(score) if ok else None
        out.append(decision.severity if decision else None)
    return out


def diff_thresholds(
    old: Mapping[str, SeverityThresholds],
    new: Mapping[str, SeverityThresholds],
    recent: Mapping[str, npt.ArrayLike],
    direction: Direction,
    eligible: Mapping[str, npt.ArrayLike] | None = None,
    times_ns: Mapping[str, npt.ArrayLike] | None = None,
) -> ThresholdDiff:
    """Compare old and new thresholds on recent signed window scores, per key.

    `eligible[key]` marks windows that passed the minimum-deviation rule (all when
    absent); `times_ns[key]` labels them. A key missing from `old` or `new` never
    fires under that set.
    """
    changes = {s: SeverityChange(s) for s in Severity}
    windows = unchanged = 0
    for key, raw in recent.items():
        scores = badness(raw, direction)
        mask = None if eligible is None else eligible.get(key)
        ok = np.ones(scores.size, np.bool_) if mask is None else np.asarray(mask, np.bool_)
        stamps = None if times_ns is None else times_ns.get(key)
        times = None if stamps is None else np.asarray(stamps, np.int64)
        before = _severities(old.get(key), scores, ok)
        after = _severities(new.get(key), scores, ok)
        for i, (a, b) in enumerate(zip(before, after, strict=True)):
            windows += 1
            if a == b:
                unchanged += 1
                continue
            alert = WindowAlert(
                key, i, None if times is None else int(times[i]), float(scores[i]), a, b
            )
            if a is not None:
                changes[a].no_longer.append(alert)
            if b is not None:
                changes[b].newly.append(alert)
    return ThresholdDiff(changes, windows, unchanged)
