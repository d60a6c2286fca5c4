"""`opsbot ingest`: stream span files through the pipeline and the detection engine.

The engine runs on the spans' own timestamps (a simulated clock), so recorded
traffic is scored window by window as if it were live, a week in seconds; the
anomalies it finds are in the store for `opsbot anomalies` afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.detection.tap import detecting_pipeline
from bot.ingest.files import load_file
from bot.settings import Settings
from bot.spans import RejectCounter
from bot.store import SqliteStore

__all__ = ["ingest_files"]


async def ingest_files(
    settings: Settings, files: Sequence[Path], progress: Console | None = None
) -> dict[str, Any]:
    """Load every file, flushing and scoring after each one so an interrupted run keeps it."""
    rejects = RejectCounter()
    async with SqliteStore(settings.db_path) as store:
        pipeline, engine = await detecting_pipeline(settings, store, rejects)
        for path in files:
            before = pipeline.stats.spans_ingested
            for batch in load_file(path, rejects):
                await pipeline.ingest(batch)
            await pipeline.flush()
            await engine.advance()
            if progress is not None:
                n = pipeline.stats.spans_ingested - before
                progress.print(f"{path}: {n} spans", highlight=False)
        await engine.close()
        stats = await store.stats()
    return {
        "files": len(files),
        "spans": pipeline.stats.spans_ingested,
        "keys": stats.series,
        "aggregate_rows": stats.aggregate_rows,
        "exemplar_traces": stats.exemplar_traces,
        "windows_scored": engine.stats.windows_scored,
        "anomalies_opened": engine.stats.anomalies_opened,
        "rejected": rejects.as_dict(),
        "db_path": str(settings.db_path),
    }
