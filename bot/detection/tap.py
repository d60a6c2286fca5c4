"""Feeding the detection engine from an `IngestPipeline` without changing the pipeline.

`tap(pipeline, engine)` wraps the pipeline instance's `ingest` so every batch
that the pipeline accepted is also fed to the engine (OTLP receiver, poller,
files: every path goes through `ingest`). The engine scores windows when its
buffer grows past `process_every_spans` or when `advance` is called (the live
ticker, or the file loader after each file). A pipeline hook would be cleaner;
until it exists, this is the one place that knows about the wrapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.detection.engine import DetectionEngine, config_from_settings
from bot.ingest.pipeline import IngestPipeline, pipeline_for
from bot.settings import Settings
from bot.spans import RejectCounter, SpanBatch
from bot.store import SqliteStore

__all__ = ["detecting_pipeline", "run_ticker", "tap"]

log = logging.getLogger(__name__)


def tap(pipeline: IngestPipeline, engine: DetectionEngine) -> Callable[[], None]:
    """Route the pipeline's accepted batches to the engine too; returns an undo function."""
    original: Callable[[SpanBatch], Awaitable[None]] = pipeline.ingest

    async def ingest(batch: SpanBatch) -> None:
        await original(batch)  # raises when not stored: then the engine must not see it
        await engine.ingest(batch)

    pipeline.ingest = ingest  # type: ignore[method-assign]
    engine.trace_keeper = pipeline.keep_traces  # an anomaly's traces outlive the slowest-N rule

    def undo() -> None:
        pipeline.ingest = original  # type: ignore[method-assign,assignment]
        engine.trace_keeper = None

    return undo


async def detecting_pipeline(
    settings: Settings, store: SqliteStore, rejects: RejectCounter
) -> tuple[IngestPipeline, DetectionEngine]:
    """The ingest pipeline and a started detection engine tapped into it, as configured."""
    pipeline = pipeline_for(settings, store, rejects)
    engine = DetectionEngine(store, config_from_settings(settings),
                             recalc_hour_utc=settings.recalc_hour_utc,
                             lateness_s=settings.detection_lateness_s)
    await engine.start()
    tap(pipeline, engine)
    return pipeline, engine


async def run_ticker(
    engine: DetectionEngine, interval_s: float, clock: Callable[[], int] = time.time_ns
) -> None:
    """Live mode: advance the engine to the wall clock every `interval_s` until cancelled."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await engine.advance(clock())
            except Exception:
                log.exception("detection step failed; retrying on the next tick")
    finally:
        with contextlib.suppress(Exception):
            await engine.close()
