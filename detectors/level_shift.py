"""Level shifts: when a sustained one-sided deviation becomes the new normal.

The rule, per series: windows whose score is beyond +-`shift_z` in one direction
form a run; the run survives gaps shorter than `max_gap_s` and non-shifted
windows while at least `min_fraction` of its windows are shifted. When a run
has lasted `confirm_s`, and its level is stable (std of the deviation at most
`max_spread` x |mean deviation|), the shift is confirmed: the baseline is
re-anchored at the run's start, so data from before it no longer counts. A
permanent shift therefore alerts for at most `confirm_s` plus one window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from detectors.config import LevelShiftConfig

__all__ = ["LevelShift", "LevelShiftTracker"]


@dataclass(frozen=True, slots=True)
class LevelShift:
    """A confirmed shift: re-anchor the series' baseline at `anchor_ns`."""

    anchor_ns: int  # start of the run: partials from before it are superseded
    confirmed_ns: int
    direction: int  # +1 up, -1 down
    magnitude: float  # mean deviation from the old baseline, in transformed units (ln for latency)
    windows: int  # shifted windows in the run


@dataclass(slots=True)
class _Run:
    direction: int = 0  # 0: no run in progress
    start_ns: int = 0
    last_hit_ns: int = 0
    hits: int = 0
    total: int = 0
    dev_mean: float = 0.0
    dev_m2: float = 0.0

    def hit(self, t_ns: int, deviation: float) -> None:
        self.hits += 1
        self.total += 1
        self.last_hit_ns = t_ns
        delta = deviation - self.dev_mean  # Welford: the spread of the new level
        self.dev_mean += delta / self.hits
        self.dev_m2 += delta * (deviation - self.dev_mean)


class LevelShiftTracker:
    """Pure state machine of one series; `update` per scored window, state via to_dict/from_dict."""

    def __init__(self, config: LevelShiftConfig) -> None:
        self.config = config
        self.run = _Run()
        self.anchor_ns: int | None = None  # the latest confirmed anchor
        self.last_ns: int | None = None

    def update(self, t_ns: int, score: float, deviation: float) -> LevelShift | None:
        """Feed one window: its score and its deviation from the baseline center.

        Windows at or before the last one seen are ignored, so a replay after a
        restart cannot confirm a shift twice. NaN scores (no data) are skipped.
        """
        if not self.config.enabled or math.isnan(score) or math.isnan(deviation):
            return None
        if self.last_ns is not None and t_ns <= self.last_ns:
            return None
        self.last_ns = t_ns
        side = (1 if score > 0 else -1) if abs(score) >= self.config.shift_z else 0
        run = self.run
        if run.direction and t_ns - run.last_hit_ns > self.config.max_gap_s * 1e9:
            run = self.run = _Run()
        if run.direction == 0 or side == -run.direction:
            self.run = _Run()
            if side:
                self._start(t_ns, side, deviation)
            return None
        if side == run.direction:
            run.hit(t_ns, deviation)
        else:
            run.total += 1
        if run.hits < self.config.min_fraction * run.total:
            self.run = _Run()
            return None
        return self._confirm(t_ns)

    def _start(self, t_ns: int, side: int, deviation: float) -> None:
        self.run = _Run(direction=side, start_ns=t_ns)
        self.run.hit(t_ns, deviation)

    def _confirm(self, t_ns: int) -> LevelShift | None:
        run = self.run
        if t_ns - run.start_ns < self.config.confirm_s * 1e9:
            return None
        spread = math.sqrt(run.dev_m2 / run.hits)
        if spread > self.config.max_spread * abs(run.dev_mean):
            return None  # still moving: keep collecting until the new level settles
        shift = LevelShift(run.start_ns, t_ns, run.direction, run.dev_mean, run.hits)
        self.anchor_ns = run.start_ns
        self.run = _Run()
        return shift

    def to_dict(self) -> dict[str, Any]:
        return {"run": asdict(self.run), "anchor_ns": self.anchor_ns, "last_ns": self.last_ns}

    @classmethod
    def from_dict(cls, config: LevelShiftConfig, state: dict[str, Any]) -> LevelShiftTracker:
        tracker = cls(config)
        tracker.run = _Run(**state["run"])
        tracker.anchor_ns = state["anchor_ns"]
        tracker.last_ns = state["last_ns"]
        return tracker
