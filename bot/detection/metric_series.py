"""Metric samples (Prometheus-style, one per series per scrape) scored as they arrive.

Each series gets a streaming `detectors.SeriesDetector` (hourly partials, the
same bucket fallback and guards as spans, transform chosen from the metric name)
and its own `AnomalyTracker` and `LevelShiftTracker`: a sample is scored on the
baseline of the hours before it, decided with the metric direction and minimum
deviation, then learnt. A sample is its own window (the scrape step); thresholds
are the severity floors. Kept in memory only: after a restart the series warm
up again (persisting them needs metric aggregates in the store).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from detectors.config import DetectorConfig
from detectors.level_shift import LevelShiftTracker
from detectors.lifecycle import AnomalyEvent, AnomalyTracker
from detectors.metric_aggregate import MetricAggregate
from detectors.series import SeriesDetector, metric_detector
from detectors.severity import badness, compute_thresholds, deviation_ok
from detectors.transforms import transform_for_metric

__all__ = ["MetricPoint", "MetricSeriesDetection", "Sample", "series_name"]


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
    inner = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class MetricSeriesDetection:
    """Per-series detectors and trackers; `observe` returns lifecycle events with details."""

    def __init__(self, config: DetectorConfig, step_s: int = 60) -> None:
        self.config = config
        self.step_s = step_s
        self.detectors: dict[str, SeriesDetector[MetricAggregate]] = {}
        self.trackers: dict[str, AnomalyTracker] = {}
        self.shifts: dict[str, LevelShiftTracker] = {}
        self.service_of: dict[str, str] = {}
        self.metric_of: dict[str, str] = {}
        self.thresholds = compute_thresholds([], config.severity, config.severity.metric_direction,
                                             config.scoring.max_z)
        self.samples_scored = 0

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
            det = self.detectors[key] = metric_detector(transform_for_metric(p.name), cfg)
            self.service_of[key] = p.labels.get("service", p.name)
            self.metric_of[key] = p.name
        if not math.isfinite(p.value):
            return []
        t, v = p.ts_ns // (self.step_s * 10**9) * self.step_s * 10**9, float(p.value)
        z = det.score_one(t, v)
        events: list[tuple[AnomalyEvent, dict[str, Any]]] = []
        if not math.isnan(z):
            self.samples_scored += 1
            base = det.baseline(t)
            bad = float(badness(z, cfg.severity.metric_direction))
            ok = bool(deviation_ok(np.asarray([v]), np.asarray([base.p50]),
                                   cfg.severity.metric_min_abs_deviation,
                                   cfg.severity.metric_min_rel_deviation)[0])
            decision = self.thresholds.classify(bad) if ok else None
            tracker = self.trackers.get(key)
            if decision is not None or tracker is not None:
                if tracker is None:
                    tracker = self.trackers[key] = AnomalyTracker(key, cfg.lifecycle, self.step_s)
                detail = {"signal": "metric", "observed": v, "expected": base.p50,
                          "baseline": {"p50": base.p50, "p95": base.p95, "p99": base.p99}}
                events += [(ev, detail) for ev in tracker.observe(t, bad, decision)]
            shift = self.shifts.setdefault(key, LevelShiftTracker(cfg.level_shift)).update(
                t, z, float(base.transform.forward(v)) - base.center)
            if shift is not None:
                det.reanchor(shift.anchor_ns)
        det.learn_one(t, v)
        return events

    def tick(self, now_ns: int) -> list[tuple[AnomalyEvent, dict[str, Any]]]:
        return [(ev, {}) for tr in self.trackers.values() for ev in tr.tick(now_ns)]
