"""What the detection engine persists: score histograms, thresholds and its own state.

`DetectionStateMixin` holds the SQL; `SqliteStore` mixes it in. A detection step
writes its score rows and its state in one transaction (`save_detection_step`),
so a crash either keeps both or neither, and a restart replays the step exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
import numpy as np
import numpy.typing as npt

from bot.detection.score_hist import hist_from_blob, hist_to_blob
from bot.store._connected import Connected

__all__ = ["DetectionStateMixin", "EngineState", "ScoreHistRow", "add_score_rows"]


@dataclass(slots=True)
class ScoreHistRow:
    """Window badness of one series in one UTC hour, as histograms (see score_hist)."""

    series_id: int
    day: int
    hour: int
    windows: int
    hist: npt.NDArray[np.int64]
    eligible: npt.NDArray[np.int64]


@dataclass(slots=True)
class EngineState:
    data: dict[str, Any]
    pending: bytes | None
    updated_ns: int


async def add_score_rows(db: aiosqlite.Connection, rows: Sequence[ScoreHistRow]) -> None:
    """Add histograms to the stored rows of their series and hour, inside the caller's
    transaction (span keys with the engine state, metric series with their baselines)."""
    for r in rows:
        async with db.execute(
            "SELECT windows, hist, eligible FROM score_hist"
            " WHERE series_id = ? AND day = ? AND hour = ?",
            (r.series_id, r.day, r.hour),
        ) as cur:
            old = await cur.fetchone()
        windows, hist, eligible = r.windows, r.hist, r.eligible
        if old is not None:
            windows += int(old[0])
            hist = hist + hist_from_blob(old[1])
            eligible = eligible + hist_from_blob(old[2])
        await db.execute(
            "INSERT OR REPLACE INTO score_hist"
            " (series_id, day, hour, windows, hist, eligible) VALUES (?, ?, ?, ?, ?, ?)",
            (r.series_id, r.day, r.hour, windows, hist_to_blob(hist), hist_to_blob(eligible)),
        )


class DetectionStateMixin(Connected):
    """Detection SQL over the store's connection; every write is one transaction."""

    async def save_detection_step(
        self, rows: Sequence[ScoreHistRow], name: str, state: dict[str, Any],
        pending: bytes | None, now_ns: int,
    ) -> None:
        """Add score histograms and replace the engine state, atomically."""
        async with self.transaction() as db:
            await add_score_rows(db, rows)
            await db.execute(
                "INSERT INTO detector_state (name, data, pending, updated_ns) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET data = excluded.data,"
                " pending = excluded.pending, updated_ns = excluded.updated_ns",
                (name, json.dumps(state, separators=(",", ":")), pending, now_ns),
            )

    async def load_detection_state(self, name: str) -> EngineState | None:
        rows = await self._all(
            "SELECT data, pending, updated_ns FROM detector_state WHERE name = ?", (name,)
        )
        if not rows:
            return None
        data, pending, updated = rows[0]
        return EngineState(json.loads(data), pending, int(updated))

    async def load_score_hist(
        self, first_day: int, last_day: int, series_ids: Sequence[int] | None = None
    ) -> list[ScoreHistRow]:
        """Rows of days [first_day, last_day], for the given series (all when None)."""
        rows = await self._hourly_rows(
            "SELECT series_id, day, hour, windows, hist, eligible FROM score_hist",
            first_day, last_day, series_ids)
        return [ScoreHistRow(r[0], r[1], r[2], r[3], hist_from_blob(r[4]), hist_from_blob(r[5]))
                for r in rows]

    async def prune_score_hist(self, before_day: int) -> int:
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM score_hist WHERE day < ?", (before_day,))
            return cur.rowcount

    async def save_thresholds(
        self, thresholds: dict[int, dict[str, Any]], computed_ns: int
    ) -> None:
        """Replace the global-bucket severity thresholds of the given series (JSON each)."""
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO thresholds (series_id, bucket_type, bucket, data, computed_at)"
                " VALUES (?, 'global', 0, ?, ?) ON CONFLICT(series_id, bucket_type, bucket)"
                " DO UPDATE SET data = excluded.data, computed_at = excluded.computed_at",
                [(sid, json.dumps(d, separators=(",", ":")), computed_ns)
                 for sid, d in thresholds.items()],
            )

    async def load_thresholds(self) -> dict[int, tuple[dict[str, Any], int]]:
        """series id -> (thresholds JSON, computed at) of the global bucket."""
        rows = await self._all(
            "SELECT series_id, data, computed_at FROM thresholds WHERE bucket_type = 'global'"
            " AND bucket = 0"
        )
        return {int(r[0]): (json.loads(r[1]), int(r[2])) for r in rows}

    async def newest_span_ns(self) -> int | None:
        """The newest span time the store has seen: 'now' for historical data."""
        rows = await self._all("SELECT max(last_seen_ns) FROM series WHERE kind = 'span'")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None
