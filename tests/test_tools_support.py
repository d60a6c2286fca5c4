"""Shared by the tool tests (no tests here): real SQLite stores filled by the simulator.

Spans go through the real ingestion pipeline (`pipeline_for`), so aggregates and
exemplar traces are exactly what production would store. Built once per session
in a temporary folder and copied for tests that write.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.ingest.pipeline import pipeline_for
from bot.settings import Settings, load_settings
from bot.simulator import HOUR_NS, MINUTE_NS, Simulator, TrafficModel, make_incident
from bot.simulator.incidents import GroundTruth
from bot.spans import RejectCounter
from bot.store import SqliteStore
from tools.base import ToolContext

__all__ = ["INCIDENT_START", "NOW", "T0", "SimStore", "build_sim_store", "context", "settings_for"]

T0 = 1_714_953_600 * 10**9  # Monday 2024-05-06 00:00 UTC
HISTORY_HOURS = 26
NOW = T0 + HISTORY_HOURS * HOUR_NS
INCIDENT_START = NOW - 50 * MINUTE_NS  # 25h10m: inside the last simulated hour
SEED = 7
RPM = 8.0


@dataclass(frozen=True)
class SimStore:
    path: Path
    incident: GroundTruth
    simulator: Simulator


def settings_for(db: Path, **overrides: Any) -> Settings:
    return load_settings(db_path=db, simulator_seed=SEED,
                         simulator_requests_per_minute=int(RPM), **overrides)


def build_sim_store(folder: Path) -> SimStore:
    """26 hours of simulated traffic, a connection-pool exhaustion in the last hour."""
    incident = make_incident("connection_pool_exhaustion", INCIDENT_START, 30 * MINUTE_NS,
                             magnitude=1.0)
    sim = Simulator(SEED, traffic=TrafficModel(sampled_per_minute=RPM), incidents=[incident])
    path = folder / "sim.db"

    async def fill() -> None:
        async with SqliteStore(path) as store:
            pipeline = pipeline_for(settings_for(path), store, RejectCounter())
            for batch, _metrics in sim.batches(T0, HISTORY_HOURS * HOUR_NS, step_ns=HOUR_NS):
                await pipeline.ingest(batch)
                await pipeline.flush()

    asyncio.run(fill())
    return SimStore(path, incident, sim)


def copy_store(sim: SimStore, folder: Path) -> Path:
    target = folder / "copy.db"
    shutil.copyfile(sim.path, target)
    return target


def context(store: SqliteStore, settings: Settings, **kwargs: object) -> ToolContext:
    return ToolContext(store=store, settings=settings, now_ns=NOW, **kwargs)  # type: ignore[arg-type]
