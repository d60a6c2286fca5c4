"""Helpers for the detection tests: simulator traffic through the real pipeline and engine.

`FAST` is the detector config the tests use: the global baseline warms up after
4 hours instead of a day, so a test needs hours of simulated traffic, not days.
Everything else (scoring, severity floors, lifecycle, level shifts) is default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.detection.engine import DetectionEngine
from bot.detection.events import EngineEvent
from bot.detection.tap import tap
from bot.ingest.pipeline import IngestPipeline
from bot.simulator import DAY_NS, HOUR_NS, GroundTruth, Simulator
from bot.store import SqliteStore
from detectors.config import BaselineConfig, DetectorConfig

T0 = 19_723 * DAY_NS + 6 * HOUR_NS  # Monday 2024-01-01 06:00 UTC: busy hours follow
WARM = 4 * HOUR_NS
FAST = DetectorConfig(baseline=replace(BaselineConfig(), global_min_span_s=WARM / 1e9))


@dataclass
class Run:
    events: list[EngineEvent] = field(default_factory=list)

    def kinds(self, subject: str = "anomaly") -> list[tuple[str, str]]:
        return [(e.kind, e.anomaly.key if e.anomaly else e.incident.uid)  # type: ignore[union-attr]
                for e in self.events if e.subject == subject]


async def replay(
    db: Path, sim: Simulator, start_ns: int, end_ns: int, *, step_ns: int = HOUR_NS,
    config: DetectorConfig = FAST, run: Run | None = None, pipeline: bool = True,
    final_advance_ns: int | None = None,
) -> Run:
    """Replay [start, end) through the pipeline and engine into `db`; closes the store after."""
    run = run or Run()

    async def collect(event: EngineEvent) -> None:
        run.events.append(event)

    async with SqliteStore(db) as store:
        engine = DetectionEngine(store, config)
        engine.subscribe(collect)
        await engine.start()
        pipe = IngestPipeline(store, clock=lambda: end_ns + DAY_NS) if pipeline else None
        if pipe is not None:
            tap(pipe, engine)
        for batch, _metrics in sim.batches(start_ns, end_ns - start_ns, step_ns=step_ns):
            if pipe is not None:
                await pipe.ingest(batch)
                await pipe.flush()
            else:
                engine.feed(batch)
            await engine.advance()
        if final_advance_ns is not None:
            await engine.advance(final_advance_ns)
        await engine.close()
    return run


def simulator(incidents: Iterable[GroundTruth] = (), seed: int = 3) -> Simulator:
    return Simulator(seed, incidents=list(incidents))
