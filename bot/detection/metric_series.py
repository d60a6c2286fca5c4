"""Metric samples (Prometheus-style, one per series per scrape) scored as they arrive.

Each series gets a streaming `detectors.SeriesDetector` (hourly partials, the
same bucket fallback and guards as spans, transform chosen from the metric name)
and its own `AnomalyTracker` and `LevelShiftTracker`: a sample is scored on the
baseline of the hours before it, decided with the metric direction and minimum
deviation, then learnt. A sample is its own window (the scrape step). Its badness
goes into the series' hourly score histograms, from which the recalculation sets
the series' own severity thresholds (`thresholds`; the floors until it has
history). A second signal runs beside the z path: each series' `NoveltyStream`
(the novelty scorer `opsbot eval nab` measures) says when a value leaves the range
of the series' own history; such a sample, if its z also reaches `novelty.min_z`,
opens an anomaly at once (`config.novelty`). `snapshots` hands the store what
changed since the last save (folded hours, the unfolded values of the current
hour, score histograms, trackers, the novelty state) and `restore` puts a series
back exactly there, so a restart resumes warm.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bot.detection.score_hist import HourScores
from detectors.buckets import HOUR_NS
from detectors.config import DetectorConfig
from detectors.level_shift import LevelShiftTracker
from detectors.lifecycle import AnomalyEvent, AnomalyTracker
from detectors.metric_aggregate import MetricAggregate
from detectors.novelty import NoveltyConfig
from detectors.novelty_stream import NoveltyStream
from detectors.series import SeriesDetector
from detectors.severity import (
    Severity,
    SeverityDecision,
    SeverityThresholds,
    badness,
    compute_thresholds,
    deviation_ok,
)
from detectors.transforms import Transform, transform_for_metric, unit_for_metric

__all__ = [
    "MetricDetector",
    "MetricPoint",
    "MetricSeriesDetection",
    "Sample",
    "SeriesSnapshot",
    "series_name",
]

log = logging.getLogger(__name__)


class Sample(Protocol):
    """What a metric sample must have (MetricPoint, the simulator's MetricSample, ...)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def ts_ns(self) -> int: ...
    @property
    def value(self) -> float: ...


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One sample: metric name, labels, time (ns), value. `service` labels name the service."""

    name: str
    labels: Mapping[str, str]
    ts_ns: int
    value: float


def series_name(name: str, labels: Mapping[str, str]) -> str:
    """Prometheus' own text form, labels sorted: `cpu{pod="a-1",service="a"}`.

    Values are quoted and escaped as in the exposition format, so two different
    label sets never print the same (a value may hold ',' or '=').
    """
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricDetector(SeriesDetector[MetricAggregate]):
    """A series detector that can say where it stands and be put back there."""

    @property
    def transform(self) -> Transform:
        return self._empty.transform

    @property
    def clock_hour(self) -> int | None:
        """Hour index of the newest sample time seen; hours before it are folded."""
        return self._clock_h

    def pending_values(self) -> list[float]:
        """Raw values of the clock hour, not folded yet (no other hour is ever pending)."""
        return [] if self._clock_h is None else list(self._pending.get(self._clock_h, []))

    def folded(self, from_hour: int) -> list[tuple[int, MetricAggregate]]:
        """Copies of the folded partials of hours >= from_hour, in hour order."""
        return [(h, a.copy()) for h, a in sorted(self._partials.items()) if h >= from_hour]

    def restore(
        self, partials: Iterable[tuple[int, MetricAggregate]], clock_hour: int | None,
        pending: list[float], first_seen_ns: int | None, anchor_ns: int | None,
    ) -> None:
        """Back to a saved position: partials outside the window or before the anchor are
        dropped, as the running detector would have dropped them. Totals are rebuilt in
        hour order, the order a running detector folds them."""
        self.first_seen_ns, self.anchor_ns, self._clock_h = first_seen_ns, anchor_ns, clock_hour
        self._partials, self._totals, self._cache, self._pending = {}, {}, None, {}
        if clock_hour is None:
            return
        oldest = clock_hour - self._window_h
        for h, agg in sorted(partials, key=lambda p: p[0]):
            if oldest <= h < clock_hour and (anchor_ns is None or h * HOUR_NS >= anchor_ns):
                self._partials[h] = agg.copy()
                self._add_to_totals(h, agg)
        if pending:
            self._pending[clock_hour] = list(pending)


@dataclass(slots=True)
class SeriesSnapshot:
    """What the store keeps of one series: changed partials, position and trackers."""

    key: str
    service: str
    metric: str
    transform: Transform
    partials: list[tuple[int, MetricAggregate]]  # (hour index, aggregate), changed ones only
    clock_hour: int | None
    pending: list[float]
    first_seen_ns: int | None
    anchor_ns: int | None
    last_sample_ns: int
    tracker: dict[str, Any] | None
    shift: dict[str, Any] | None
    scores: list[HourScores] = field(default_factory=list)  # scored since the last save
    novelty: bytes | None = None  # NoveltyStream state; None: unchanged since the last save


class MetricSeriesDetection:
    """Per-series detectors and trackers; `observe` returns lifecycle events with details."""

    def __init__(self, config: DetectorConfig, step_s: int = 60) -> None:
        self.config = config
        self.step_s = step_s
        self.detectors: dict[str, MetricDetector] = {}
        self.trackers: dict[str, AnomalyTracker] = {}
        self.shifts: dict[str, LevelShiftTracker] = {}
        self.service_of: dict[str, str] = {}
        self.metric_of: dict[str, str] = {}
        self.default_thresholds = compute_thresholds(
            [], config.severity, config.severity.metric_direction, config.scoring.max_z)
        self.thresholds: dict[str, SeverityThresholds] = {}  # series -> recalculated ones
        self.samples_scored = 0
        self.last_sample_ns: dict[str, int] = {}
        self.cursors: dict[str, int] = {}  # positions of the sources feeding us, saved with us
        self.saved_cursors: dict[str, int] = {}
        self._dirty: dict[str, int] = {}  # key -> first hour whose partial changed since a save
        self._saved_trackers: dict[str, str] = {}  # key -> JSON of trackers at the last save
        self._scores: dict[str, dict[int, HourScores]] = {}  # key -> hour -> unsaved scores
        self.novelty: dict[str, NoveltyStream] = {}
        self.novelty_config = NoveltyConfig()  # the windows `opsbot eval nab` measures

    def observe(self, points: Iterable[Sample]) -> list[tuple[AnomalyEvent, dict[str, Any]]]:
        events: list[tuple[AnomalyEvent, dict[str, Any]]] = []
        for p in sorted(points, key=lambda p: p.ts_ns):
            events += self._one(p)
        return events

    def _one(self, p: Sample) -> list[tuple[AnomalyEvent, dict[str, Any]]]:
        cfg = self.config
        key = series_name(p.name, p.labels)
        det = self.detectors.get(key)
        if det is None:
            det = self._new_detector(key, transform_for_metric(p.name))
            self.service_of[key] = p.labels.get("service", p.name)
            self.metric_of[key] = p.name
        if not math.isfinite(p.value):
            return []
        t, v = p.ts_ns // (self.step_s * 10**9) * self.step_s * 10**9, float(p.value)
        h, clock = t // HOUR_NS, det.clock_hour
        first = h if clock is None else min(h, clock)  # this hour, or the one it folds
        self._dirty[key] = min(self._dirty.get(key, first), first)
        self.last_sample_ns[key] = max(self.last_sample_ns.get(key, p.ts_ns), p.ts_ns)
        novelty = self._novelty_score(key, t, v)
        z = det.score_one(t, v)
        events: list[tuple[AnomalyEvent, dict[str, Any]]] = []
        if not math.isnan(z):
            self.samples_scored += 1
            base = det.baseline(t)
            bad = float(badness(z, cfg.severity.metric_direction))
            ok = bool(deviation_ok(np.asarray([v]), np.asarray([base.p50]),
                                   cfg.severity.metric_min_abs_deviation,
                                   cfg.severity.metric_min_rel_deviation)[0])
            self._record_score(key, h, bad, ok)
            th = self.thresholds.get(key, self.default_thresholds)
            decision = th.classify(bad) if ok else None
            age_ns = t - (det.first_seen_ns if det.first_seen_ns is not None else t)
            new_range = self._novelty_decision(novelty, bad, age_ns) if ok else None
            if new_range is not None:
                decision = new_range if decision is None else min(
                    decision, new_range, key=lambda d: (d.severity, -d.score))
            tracker = self.trackers.get(key)
            if decision is not None or tracker is not None:
                if tracker is None:
                    tracker = self.trackers[key] = AnomalyTracker(
                        key, cfg.lifecycle.for_metrics(), self.step_s)
                unit = unit_for_metric(key)
                detail = {"signal": "metric", "observed": v, "expected": base.p50,
                          "unit": unit, "baseline": {
                              "bucket": base.bucket_type.value, "bucket_id": base.bucket_id,
                              "p50": base.p50, "p90": base.p90, "p95": base.p95,
                              "p99": base.p99, "expected": base.expected,
                              "count": base.count, "unit": unit}}
                if new_range is not None:
                    detail["novelty"] = novelty
                events += [(ev, detail) for ev in tracker.observe(
                    t, bad, decision, decisive=new_range is not None)]
            shift = self.shifts.setdefault(key, LevelShiftTracker(cfg.level_shift)).update(
                t, z, float(base.transform.forward(v)) - base.center)
            if shift is not None:
                det.reanchor(shift.anchor_ns)
        det.learn_one(t, v)
        return events

    def _novelty_score(self, key: str, t_ns: int, value: float) -> float:
        """The sample's novelty in [0, 1] (0 with the novelty signal off)."""
        if not self.config.novelty.enabled:
            return 0.0
        stream = self.novelty.get(key)
        if stream is None:
            stream = self.novelty[key] = NoveltyStream(self.novelty_config)
        return stream.update(t_ns, value)

    def _novelty_decision(
        self, novelty: float, bad: float, age_ns: int
    ) -> SeverityDecision | None:
        """A value beyond its history's range (and unusual for its hour, in a series old
        enough to have a history): the gate's severity, reported as the top of the series'
        history (p100)."""
        gate = self.config.novelty
        if (not gate.enabled or novelty < gate.threshold or bad < gate.min_z
                or age_ns < gate.min_history_s * 1e9):
            return None
        return SeverityDecision(Severity(gate.severity), bad, gate.threshold, 100.0, "novelty",
                                100.0)

    def _record_score(self, key: str, hour: int, bad: float, eligible: bool) -> None:
        hours = self._scores.setdefault(key, {})
        acc = hours.get(hour)
        if acc is None:
            acc = hours[hour] = HourScores.empty(hour)
        acc.add(bad, eligible)

    def tick(self, now_ns: int) -> list[tuple[AnomalyEvent, dict[str, Any]]]:
        return [(ev, {}) for tr in self.trackers.values() for ev in tr.tick(now_ns)]

    # -- persistence (the IO is in bot.detection._metric_persist) --

    def snapshots(self) -> list[SeriesSnapshot]:
        """Series whose data or trackers changed since the last call, with only the partials
        that changed; the dirty marks are cleared (call it when the save is about to run)."""
        out: list[SeriesSnapshot] = []
        for key in sorted(set(self._dirty) | set(self.trackers)):
            tracker, shift = self.trackers.get(key), self.shifts.get(key)
            t_dict = None if tracker is None else tracker.to_dict()
            s_dict = None if shift is None else shift.to_dict()
            mark = json.dumps([t_dict, s_dict], sort_keys=True)
            if key not in self._dirty and self._saved_trackers.get(key) == mark:
                continue
            self._saved_trackers[key] = mark
            det = self.detectors[key]
            from_hour = self._dirty.pop(key, None)
            stream = self.novelty.get(key) if from_hour is not None else None
            out.append(SeriesSnapshot(
                key, self.service_of[key], self.metric_of[key], det.transform,
                det.folded(from_hour) if from_hour is not None else [], det.clock_hour,
                det.pending_values(), det.first_seen_ns, det.anchor_ns,
                self.last_sample_ns.get(key, 0), t_dict, s_dict,
                sorted(self._scores.pop(key, {}).values(), key=lambda s: s.hour),
                None if stream is None else stream.to_bytes()))
        return out

    def remark(self, snaps: Iterable[SeriesSnapshot]) -> None:
        """Snapshots that could not be saved: mark their series dirty again."""
        for snap in snaps:
            hours = [h for h, _ in snap.partials]
            if snap.clock_hour is not None:
                hours.append(snap.clock_hour)
            if hours:
                self._dirty[snap.key] = min(self._dirty.get(snap.key, min(hours)), min(hours))
            self._saved_trackers.pop(snap.key, None)
            for scores in snap.scores:
                self._scores.setdefault(snap.key, {}).setdefault(
                    scores.hour, HourScores.empty(scores.hour)).merge(scores)

    def restore(self, snap: SeriesSnapshot) -> None:
        """Put one series back where a snapshot (and the partials saved before it) left it."""
        cfg, key = self.config, snap.key
        det = self._new_detector(key, snap.transform)
        det.restore(snap.partials, snap.clock_hour, snap.pending, snap.first_seen_ns,
                    snap.anchor_ns)
        self.service_of[key], self.metric_of[key] = snap.service, snap.metric
        self.last_sample_ns[key] = snap.last_sample_ns
        if snap.tracker is not None:
            self.trackers[key] = AnomalyTracker.from_dict(snap.tracker, cfg.lifecycle.for_metrics(),
                                                         self.step_s)
        if snap.shift is not None:
            self.shifts[key] = LevelShiftTracker.from_dict(cfg.level_shift, snap.shift)
        if snap.novelty is not None and cfg.novelty.enabled:
            try:
                self.novelty[key] = NoveltyStream.from_bytes(self.novelty_config, snap.novelty)
            except ValueError as exc:  # saved by another version or config: start afresh
                log.warning("metric series %s: novelty state not restored (%s); it restarts "
                            "empty and scores again after its warm-up", key, exc)
        self._saved_trackers[key] = json.dumps([snap.tracker, snap.shift], sort_keys=True)

    def _new_detector(self, key: str, transform: Transform) -> MetricDetector:
        det = self.detectors[key] = MetricDetector(MetricAggregate(transform), self.config)
        return det
