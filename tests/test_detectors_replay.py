"""End-to-end replays of the detection core: a young store must not flood; a level shift adapts.

`MiniLoop` is the detector loop in miniature, made only of the public pure
steps (build_baseline -> score_windows -> decide_windows -> AnomalyTracker,
LevelShiftTracker); it stands in for the real loop, which does IO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from detectors.aggregate import LatencyAggregate
from detectors.baseline import Baseline, build_baseline
from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import DetectorConfig, LevelShiftConfig
from detectors.decide import decide_windows
from detectors.level_shift import LevelShiftTracker
from detectors.lifecycle import AnomalyEvent, AnomalyTracker
from detectors.scoring import BaselineTable, score_windows
from detectors.severity import compute_thresholds

T0 = 19_723 * DAY_NS  # Monday 2024-01-01 00:00 UTC
MIN_NS = 60 * 1_000_000_000


def heavy_tailed(rng: np.random.Generator, median_ms: float, n: int) -> np.ndarray:
    """Log-normal body plus a 1 % Pareto tail: raw std many times the raw mean."""
    d = median_ms * np.exp(rng.normal(0.0, 0.6, n))
    tail = rng.random(n) < 0.01
    d[tail] = median_ms * 15 * (1 + rng.pareto(1.1, int(tail.sum())))
    return d


@dataclass
class MiniLoop:
    config: DetectorConfig
    keys: list[str]
    partials: list[list[tuple[int, int, LatencyAggregate]]] = field(default_factory=list)
    first_seen: list[int | None] = field(default_factory=list)
    anchors: list[int | None] = field(default_factory=list)
    trackers: list[AnomalyTracker] = field(default_factory=list)
    shifts: list[LevelShiftTracker] = field(default_factory=list)
    events: list[AnomalyEvent] = field(default_factory=list)
    candidates: list[tuple[int, int]] = field(default_factory=list)  # (key, window start)
    max_abs_score: float = 0.0

    def __post_init__(self) -> None:
        n, cfg = len(self.keys), self.config
        self.partials = [[] for _ in range(n)]
        self.first_seen, self.anchors = [None] * n, [None] * n
        self.trackers = [AnomalyTracker(k, cfg.lifecycle, cfg.scoring.window_s) for k in self.keys]
        self.shifts = [LevelShiftTracker(cfg.level_shift) for _ in self.keys]

    def baselines(self, t_ns: int) -> list[Baseline]:
        return [
            build_baseline(p, LatencyAggregate(), t_ns, f, self.config.baseline, a)
            for p, f, a in zip(self.partials, self.first_seen, self.anchors, strict=True)
        ]

    def ingest(self, hour_ns: int, key: np.ndarray, start: np.ndarray, dur: np.ndarray) -> None:
        """The store's side: fold one hour of spans into (day, hour) partials."""
        for k in range(len(self.keys)):
            agg = LatencyAggregate()
            agg.add(dur[key == k])
            self.partials[k].append((hour_ns // DAY_NS, (hour_ns // HOUR_NS) % 24, agg))
            seen = self.first_seen[k]
            self.first_seen[k] = hour_ns if seen is None else seen

    def detect(self, hour_ns: int, key: np.ndarray, start: np.ndarray, dur: np.ndarray) -> None:
        """Score the hour window by window; a confirmed shift re-scores the rest of the hour."""
        cut = hour_ns
        while cut < hour_ns + HOUR_NS:
            sel = start >= cut
            cut = self._detect_from(cut, key[sel], start[sel], dur[sel])

    def _detect_from(
        self, from_ns: int, key: np.ndarray, start: np.ndarray, dur: np.ndarray
    ) -> int:
        cfg = self.config
        table = BaselineTable.from_baselines(self.baselines(from_ns))
        w = score_windows(dur, key, start, table, cfg.scoring)
        th = [
            compute_thresholds([], cfg.severity, cfg.severity.latency_direction, cfg.scoring.max_z)
        ]
        d = decide_windows(w, table, th * len(self.keys), cfg.severity)
        self.max_abs_score = max(self.max_abs_score, float(np.nanmax(np.abs(w.score), initial=0)))
        for r in np.argsort(w.window_start_ns, kind="stable"):
            k, t = int(w.key_idx[r]), int(w.window_start_ns[r])
            if d.decisions[r] is not None:
                self.candidates.append((k, t))
            self.events += self.trackers[k].observe(t, float(d.badness[r]), d.decisions[r])
            shift = self.shifts[k].update(t, float(w.score[r]), float(w.deviation[r]))
            if shift is not None:
                self.anchors[k] = shift.anchor_ns
                return t + MIN_NS
        return from_ns + HOUR_NS


def run(
    loop: MiniLoop,
    hours: range,
    medians: list[float],
    factor: Callable[[int, int], float],
    per_min: list[int] | None = None,
    seed: int = 0,
) -> None:
    """Replay whole hours of spans: detect on the hour, then store it (as the real loop would)."""
    rng = np.random.default_rng(seed)
    rates = [20] * len(medians) if per_min is None else per_min
    for h in hours:
        hour_ns = T0 + h * HOUR_NS
        key = np.repeat(np.arange(len(medians)), [r * 60 for r in rates])
        start = hour_ns + rng.integers(0, HOUR_NS, key.size)
        dur = np.concatenate(
            [
                heavy_tailed(rng, m * factor(k, hour_ns), r * 60)
                for k, (m, r) in enumerate(zip(medians, rates, strict=True))
            ]
        )
        if any(f is not None for f in loop.first_seen):
            loop.detect(hour_ns, key, start, dur)
        loop.ingest(hour_ns, key, start, dur)


def diurnal(_: int, t_ns: int) -> float:
    return 1.0 + 0.2 * math.sin(2 * math.pi * ((t_ns // HOUR_NS) % 24) / 24)


MEDIANS = [0.3, 0.3, 2.0, 2.0, 30.0, 30.0, 120.0, 120.0, 400.0, 400.0]
RATES = [100, 10, 100, 10, 100, 20, 60, 20, 50, 5]  # spans per minute per key


def naive_raw_z_candidates(
    medians: list[float], rates: list[int], seed: int = 0
) -> tuple[int, float]:
    """The failure the issue describes: raw z per span against a one-hour 'bucket', no guards."""
    rng = np.random.default_rng(seed)
    first = [heavy_tailed(rng, m, r * 60) for m, r in zip(medians, rates, strict=True)]
    count, peak = 0, 0.0  # `first`: the only same-hour history a 26-hour store has
    for _ in range(24):
        for m, r, ref in zip(medians, rates, first, strict=True):
            z = (heavy_tailed(rng, m, r * 60) - ref.mean()) / max(ref.std(), 1e-9)
            count += int((np.abs(z) > 3).sum())
            peak = max(peak, float(np.abs(z).max()))
    return count, peak


def test_young_store_does_not_flood() -> None:
    """A 26-hour-old store of heavy-tailed spans: the naive rule floods, the detectors do not."""
    naive, naive_peak = naive_raw_z_candidates(MEDIANS, RATES)
    assert naive > 1000 and naive_peak > 100  # the flood is real on this data

    loop = MiniLoop(DetectorConfig(), [f"svc{k}:op" for k in range(len(MEDIANS))])
    run(loop, range(0, 26), MEDIANS, diurnal, RATES)
    assert all(t >= T0 + DAY_NS for _, t in loop.candidates)  # cold for the first day
    run(loop, range(26, 50), MEDIANS, diurnal, RATES, seed=1)  # the next 24 hours, same behaviour
    windows = 26 * 60 * len(MEDIANS)
    assert len(loop.candidates) <= windows * 0.001, len(loop.candidates)
    assert [e for e in loop.events if e.kind == "opened"] == []
    assert loop.max_abs_score <= loop.config.scoring.max_z


def test_cold_store_scores_nothing_before_a_day() -> None:
    loop = MiniLoop(DetectorConfig(), ["a:op"])
    run(loop, range(0, 23), [30.0], lambda k, t: 3.0 if t > T0 + 12 * HOUR_NS else 1.0)
    assert loop.max_abs_score == 0.0 and not loop.candidates  # fail closed while warming up


def shift_at(t_shift: int, x: float) -> Callable[[int, int], float]:
    return lambda k, t: x if t >= t_shift else 1.0


def test_level_shift_stops_alerting_within_the_confirm_bound() -> None:
    cfg = DetectorConfig()
    t_shift = T0 + 10 * DAY_NS + 9 * HOUR_NS
    loop = MiniLoop(cfg, ["pay:charge"])
    run(loop, range(0, 10 * 24 + 9), [30.0], shift_at(t_shift, 2.5))
    assert loop.events == [] and len(loop.candidates) <= 10  # ten quiet days: stray windows only
    quiet = len(loop.candidates)
    run(loop, range(10 * 24 + 9, 13 * 24), [30.0], shift_at(t_shift, 2.5), seed=2)
    bound = t_shift + int(cfg.level_shift.confirm_s * 1e9) + 2 * MIN_NS
    assert loop.anchors[0] is not None and t_shift <= loop.anchors[0] < t_shift + 10 * MIN_NS
    assert [e.kind for e in loop.events if e.kind != "updated"] == ["opened", "resolved"]
    assert loop.events[0].anomaly.opened_ns < t_shift + 10 * MIN_NS
    resolved = loop.events[-1].anomaly.resolved_ns
    assert resolved is not None
    assert resolved <= bound + int(cfg.lifecycle.quiet_period_s * 1e9)
    late = [t for _, t in loop.candidates[quiet:] if t > bound]
    assert len(late) <= 0.001 * (13 * 24 * 60 - (bound - T0) // MIN_NS) + 3


def test_without_the_level_shift_rule_a_permanent_shift_keeps_firing() -> None:
    cfg = DetectorConfig(level_shift=LevelShiftConfig(enabled=False))
    t_shift = T0 + 10 * DAY_NS + 9 * HOUR_NS
    loop = MiniLoop(cfg, ["pay:charge"])
    run(loop, range(0, 13 * 24), [30.0], shift_at(t_shift, 2.5))
    assert [e.kind for e in loop.events if e.kind != "updated"] == ["opened"]  # never resolves
    last_day = [t for _, t in loop.candidates if t >= T0 + 12 * DAY_NS]
    assert len(last_day) > 0.5 * 24 * 60  # two days on, most windows still fire
