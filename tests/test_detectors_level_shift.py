"""The level-shift rule as a state machine: confirm time, gaps, direction, stability, replay."""

from __future__ import annotations

import json

import numpy as np

from detectors.config import LevelShiftConfig
from detectors.level_shift import LevelShiftTracker

M = 60 * 1_000_000_000
CFG = LevelShiftConfig(confirm_s=3600.0)  # an hour, to keep the runs short


def test_confirms_after_confirm_s_with_the_run_start_as_anchor() -> None:
    tr = LevelShiftTracker(CFG)
    events = [tr.update(t * M, 6.0, 0.9) for t in range(10, 71)]
    assert all(e is None for e in events[:-1])
    shift = events[-1]
    assert shift is not None and shift.anchor_ns == 10 * M and shift.confirmed_ns == 70 * M
    assert (shift.direction, shift.windows) == (1, 61) and abs(shift.magnitude - 0.9) < 1e-12
    assert tr.anchor_ns == 10 * M and tr.update(71 * M, 6.0, 0.9) is None  # a new run starts


def test_tolerates_a_minority_of_normal_windows_but_not_a_majority() -> None:
    tr = LevelShiftTracker(CFG)
    shifts = [tr.update(t * M, 0.5 if t % 10 == 0 else 5.0, 0.8) for t in range(1, 62)]
    assert shifts[-1] is not None  # 10 % normal windows: still one run
    tr = LevelShiftTracker(CFG)
    shifts = [tr.update(t * M, 0.5 if t % 3 == 0 else 5.0, 0.8) for t in range(1, 200)]
    assert all(s is None for s in shifts)  # a third normal: below min_fraction 0.8, never confirms


def test_a_long_gap_or_a_reversal_restarts_the_run() -> None:
    tr = LevelShiftTracker(CFG)
    for t in range(0, 50):
        assert tr.update(t * M, 5.0, 0.8) is None
    assert tr.update(90 * M, 5.0, 0.8) is None  # 41 minutes without a window > max_gap_s
    assert tr.run.start_ns == 90 * M
    assert tr.update(91 * M, -5.0, -0.8) is None  # the other way: a new, downward run
    assert tr.run.direction == -1 and tr.run.start_ns == 91 * M


def test_an_unstable_level_is_not_a_shift() -> None:
    rng = np.random.default_rng(0)
    tr = LevelShiftTracker(CFG)
    devs = rng.uniform(0.1, 3.0, 300)  # drifting all over the place
    assert all(tr.update(t * M, 5.0, float(devs[t])) is None for t in range(300))


def test_disabled_and_nan_windows_do_nothing() -> None:
    tr = LevelShiftTracker(LevelShiftConfig(enabled=False, confirm_s=0))
    assert tr.update(M, 50.0, 3.0) is None and tr.run.direction == 0
    tr = LevelShiftTracker(CFG)
    assert tr.update(M, float("nan"), 1.0) is None and tr.last_ns is None


def test_replay_after_restart_does_not_confirm_twice() -> None:
    tr = LevelShiftTracker(CFG)
    confirmed = [t for t in range(0, 100) if tr.update(t * M, 5.0, 1.0) is not None]
    assert confirmed == [60]
    state = json.loads(json.dumps(tr.to_dict()))
    again = LevelShiftTracker.from_dict(CFG, state)
    assert all(again.update(t * M, 5.0, 1.0) is None for t in range(0, 100))
    assert again.to_dict() == tr.to_dict()
