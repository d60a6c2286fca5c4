"""A real store for a seeded simulator incident: spans through ingest and detection.

The eval asks its questions over what opsbot would really hold: simulator traffic
(a short quiet history, then the incident) goes through the real `IngestPipeline`
(hourly aggregates, exemplar traces) tapped into the real `DetectionEngine`
(anomalies, incidents, call graph), into a SQLite file. The engine's warm-up is
shortened (`FAST_CONFIG`) so a few hours of history are enough; everything else is
the default detector. Stores are built once per (scenario, seed, magnitude) and
reused by every case that asks about the same incident.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from bot.detection.engine import DetectionEngine
from bot.detection.tap import tap
from bot.ingest.pipeline import IngestPipeline
from bot.simulator import (
    DAY_NS,
    HOUR_NS,
    MINUTE_NS,
    GroundTruth,
    Profile,
    Simulator,
    TrafficModel,
    make_incident,
)
from bot.simulator.metrics import CPU_PERCENT, MEMORY_MB, REQUEST_RATE
from bot.store import SqliteStore
from bot.store.records import AnomalyRecord
from detectors.config import BaselineConfig, DetectorConfig

__all__ = ["FAST_CONFIG", "INCIDENT_T0_NS", "BuiltIncident", "StoreCache", "build_incident_store"]

INCIDENT_T0_NS = 1_717_408_800 * 10**9  # 2024-06-03 10:00 UTC, a Monday morning
HISTORY_HOURS = 5  # the engine's global baseline warms up after 4 (FAST_CONFIG)
SAMPLED_PER_MINUTE = 30.0  # traced requests per minute: enough spans per key, half the cost
FAST_CONFIG = DetectorConfig(baseline=replace(BaselineConfig(), global_min_span_s=4 * 3600.0))
# Resource metrics go through the engine's metric path, as `opsbot run`'s poller feeds them.
_RESOURCE_METRICS = frozenset({CPU_PERCENT, MEMORY_MB, REQUEST_RATE})
_STEP_NS = 10 * MINUTE_NS


@dataclass(frozen=True, slots=True)
class BuiltIncident:
    """A filled store and what the eval needs to ask about it."""

    path: Path
    truth: GroundTruth
    simulator: Simulator
    now_ns: int  # the moment the question is asked (the incident is under way)
    anomaly: AnomalyRecord | None  # the anomaly the engine opened for the incident


def ask_time(truth: GroundTruth) -> int:
    """When an on-call engineer asks: a few minutes after a step or a decay starts (the
    alert has fired), near the end of a ramp (when it finally shows)."""
    length_min = (truth.end_ns - truth.start_ns) // MINUTE_NS
    if truth.spec.profile is Profile.RAMP:
        return truth.end_ns - MINUTE_NS
    if truth.spec.profile is Profile.DECAY:
        return truth.start_ns + min(4, length_min - 1) * MINUTE_NS
    return truth.start_ns + min(12, length_min - 1) * MINUTE_NS


def simulator_for(truth: GroundTruth, seed: int) -> Simulator:
    return Simulator(seed, traffic=TrafficModel(sampled_per_minute=SAMPLED_PER_MINUTE),
                     incidents=[truth])


def pick_anomaly(anomalies: list[AnomalyRecord], truth: GroundTruth, prefer: str | None
                 ) -> AnomalyRecord | None:
    """The engine's anomaly for the incident: on the preferred key, else the root key, else
    the root service's first, else the first one on an affected key or service's metric."""
    services = {k.split(":", 1)[0] for k in truth.affected_keys}
    slack = 5 * MINUTE_NS
    during = [a for a in anomalies if truth.start_ns - slack <= a.started_ns <= truth.end_ns
              and (a.key in truth.affected_keys or ("{" in a.key and a.service in services))]
    for key in (prefer, truth.root_operation):
        on_key = [a for a in during if a.key == key]
        if on_key:
            return min(on_key, key=lambda a: a.started_ns)
    # The root service's own alerts (span keys first, then its metrics), else the first one.
    return min(during, key=lambda a: (a.service != truth.root_service, "{" in a.key,
                                      a.started_ns), default=None)


async def build_incident_store(path: Path, scenario: str, seed: int, magnitude: float,
                               prefer_key: str | None = None) -> BuiltIncident:
    """Replay history and the incident up to the ask time into `path` (a new SQLite file)."""
    truth = make_incident(scenario, INCIDENT_T0_NS, magnitude=magnitude)
    sim = simulator_for(truth, seed)
    start, now = truth.start_ns - HISTORY_HOURS * HOUR_NS, ask_time(truth)
    async with SqliteStore(path) as store:
        engine = DetectionEngine(store, FAST_CONFIG, wall_clock=lambda: now)
        await engine.start()
        pipe = IngestPipeline(store, clock=lambda: now + DAY_NS)
        tap(pipe, engine)
        for batch, samples in sim.batches(start, now - start, step_ns=_STEP_NS):
            await pipe.ingest(batch)
            await pipe.flush()
            engine.feed_metrics([s for s in samples if s.name in _RESOURCE_METRICS])
            await engine.advance()
        await engine.advance(now)
        await engine.close()
        anomalies = await store.list_anomalies()
    return BuiltIncident(path, truth, sim, now, pick_anomaly(anomalies, truth, prefer_key))


class StoreCache:
    """Built stores of one eval run, by (scenario, seed, magnitude), in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._built: dict[tuple[str, int, float], BuiltIncident] = {}

    async def get(self, scenario: str, seed: int = 1, magnitude: float = 1.0,
                  prefer_key: str | None = None) -> BuiltIncident:
        k = (scenario, int(seed), float(magnitude))
        if k not in self._built:
            path = self.folder / f"{scenario}-s{seed}-m{magnitude:g}.db"
            self._built[k] = await build_incident_store(path, scenario, int(seed),
                                                        float(magnitude), prefer_key)
        built = self._built[k]
        if prefer_key and (built.anomaly is None or built.anomaly.key != prefer_key):
            async with SqliteStore(built.path) as store:
                found = await store.list_anomalies()
            return replace(built, anomaly=pick_anomaly(found, built.truth, prefer_key))
        return built


def build_sync(path: Path, scenario: str, seed: int = 1, magnitude: float = 1.0
               ) -> BuiltIncident:
    """For scripts: build one store outside an event loop."""
    return asyncio.run(build_incident_store(path, scenario, seed, magnitude))
