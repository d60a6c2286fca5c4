"""`opsbot ingest`: stream span files through the pipeline into the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.ingest.files import load_file
from bot.ingest.pipeline import pipeline_for
from bot.settings import Settings
from bot.spans import RejectCounter
from bot.store import SqliteStore

__all__ = ["ingest_files"]


async def ingest_files(
    settings: Settings, files: Sequence[Path], progress: Console | None = None
) -> dict[str, Any]:
    """Load every file, flushing after each one so an interrupted run keeps what it read."""
    rejects = RejectCounter()
    async with SqliteStore(settings.db_path) as store:
        pipeline = pipeline_for(settings, store, rejects)
        for path in files:
            before = pipeline.stats.spans_ingested
            for batch in load_file(path, rejects):
                await pipeline.ingest(batch)
            await pipeline.flush()
            if progress is not None:
                n = pipeline.stats.spans_ingested - before
                progress.print(f"{path}: {n} spans", highlight=False)
        stats = await store.stats()
    return {
        "files": len(files),
        "spans": pipeline.stats.spans_ingested,
        "keys": stats.series,
        "aggregate_rows": stats.aggregate_rows,
        "exemplar_traces": stats.exemplar_traces,
        "rejected": rejects.as_dict(),
        "db_path": str(settings.db_path),
    }
