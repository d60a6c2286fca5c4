"""SQLite implementation of `Store` (aiosqlite, WAL, foreign keys, migrations at open).

Every multi-row write runs in one transaction, so a crash mid-write leaves the
file as it was before the write, never half-applied.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np

from bot.spans import Span
from bot.store.base import (
    AggregateRow,
    ExemplarTrace,
    SeriesInfo,
    SeriesKind,
    StoreError,
    StoreStats,
    StoreVersionError,
)
from bot.store.detection_state import DetectionStateMixin
from bot.store.metric_records import MetricRecordsMixin
from bot.store.migrations import MIGRATIONS, SCHEMA_VERSION
from bot.store.records import RecordsMixin
from bot.store.slack_records import SlackRecordsMixin
from detectors.aggregate import LatencyAggregate

__all__ = ["SqliteStore"]


class SqliteStore(RecordsMixin, DetectionStateMixin, SlackRecordsMixin, MetricRecordsMixin):
    """The embedded store: one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open; call `await store.open()` first")
        return self._db

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self.db.execute("PRAGMA journal_mode=WAL")
            await self.db.execute("PRAGMA foreign_keys=ON")
            await self.db.execute("PRAGMA synchronous=NORMAL")
            await self.db.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreError(
                f"cannot open store {self.path}: {exc}. Is it an opsbot database?"
            ) from exc
        except StoreError:
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _migrate(self) -> None:
        (found,) = await self._one("PRAGMA user_version")
        version = int(found)  # type: ignore[call-overload]
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path} has schema version {version}, but this opsbot knows only up to "
                f"{SCHEMA_VERSION}. Upgrade opsbot, or point OPSBOT_DB_PATH at another file."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits first, so wrap each migration in its own transaction.
            await self.db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\n"
                f"PRAGMA user_version={target};\nCOMMIT;"
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One `BEGIN IMMEDIATE` transaction on the shared connection.

        Tasks that share the store queue here: SQLite has one transaction per
        connection, and a second BEGIN would fail rather than wait.
        """
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _one(self, sql: str, params: Sequence[object] = ()) -> tuple[object, ...]:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return tuple(row) if row is not None else ()

    # -- series --

    async def touch_series(
        self, seen: Mapping[str, tuple[int, int]], kind: SeriesKind
    ) -> dict[str, int]:
        rows = []
        for name, (first, last) in seen.items():
            service, _, operation = name.partition(":") if kind == "span" else (name, "", "")
            rows.append((name, kind, service, operation, first, last))
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO series (name, kind, service, operation, first_seen_ns, last_seen_ns)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),"
                " last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)",
                rows,
            )
        ids: dict[str, int] = {}
        names = list(seen)
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found = await self._all(f"SELECT name, id FROM series WHERE name IN ({marks})", chunk)
            for name, sid in found:
                ids[name] = sid
        return ids

    async def get_series(self, name: str) -> SeriesInfo | None:
        rows = await self._all(
            "SELECT id, name, kind, service, operation, first_seen_ns, last_seen_ns FROM series"
            " WHERE name = ?",
            (name,),
        )
        return SeriesInfo(*rows[0]) if rows else None

    async def list_series(self, kind: SeriesKind | None = None) -> list[SeriesInfo]:
        sql = "SELECT id, name, kind, service, operation, first_seen_ns, last_seen_ns FROM series"
        rows = await (self._all(sql + " WHERE kind = ? ORDER BY name", (kind,)) if kind
                      else self._all(sql + " ORDER BY name"))
        return [SeriesInfo(*r) for r in rows]

    # -- aggregates --

    async def add_aggregates(self, rows: Sequence[AggregateRow]) -> None:
        if not rows:
            return
        async with self.transaction() as db:
            for row in rows:
                async with db.execute(
                    "SELECT count, sum, sumsq, min, max, errors, hist FROM aggregates"
                    " WHERE series_id = ? AND day = ? AND hour = ?",
                    (row.series_id, row.day, row.hour),
                ) as cur:
                    old = await cur.fetchone()
                merged = _agg_from_db(old).merge(row.agg) if old else row.agg
                await db.execute(
                    "INSERT OR REPLACE INTO aggregates"
                    " (series_id, day, hour, count, sum, sumsq, min, max, errors, hist)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row.series_id, row.day, row.hour, *_agg_to_db(merged)),
                )

    async def load_aggregates(
        self, series_id: int, first_day: int, last_day: int
    ) -> list[AggregateRow]:
        rows = await self._all(
            "SELECT day, hour, count, sum, sumsq, min, max, errors, hist FROM aggregates"
            " WHERE series_id = ? AND day BETWEEN ? AND ? ORDER BY day, hour",
            (series_id, first_day, last_day),
        )
        return [AggregateRow(series_id, r[0], r[1], _agg_from_db(r[2:])) for r in rows]

    async def prune_aggregates(self, before_day: int) -> int:
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM aggregates WHERE day < ?", (before_day,))
            return cur.rowcount

    # -- exemplars --

    async def save_exemplars(self, traces: Sequence[ExemplarTrace]) -> None:
        if not traces:
            return
        now = _now_ns()
        async with self.transaction() as db:
            for t in traces:
                await db.execute(
                    "INSERT INTO exemplar_traces"
                    " (trace_id, series_id, hour_ns, duration_ns, start_ns, pinned, created_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(series_id, trace_id) DO UPDATE SET"
                    " pinned = max(pinned, excluded.pinned),"
                    " duration_ns = max(duration_ns, excluded.duration_ns)",
                    (
                        t.trace_id, t.series_id, t.hour_ns, t.duration_ns, t.start_ns,
                        int(t.pinned), now,
                    ),
                )
                await _insert_spans(db, t.trace_id, t.spans)

    async def add_exemplar_spans(self, trace_id: str, spans: Sequence[Span]) -> None:
        async with self.transaction() as db:
            await _insert_spans(db, trace_id, spans)

    async def exemplar_durations(self, series_id: int, hour_ns: int) -> list[int]:
        rows = await self._all(
            "SELECT duration_ns FROM exemplar_traces WHERE series_id = ? AND hour_ns = ?"
            " AND pinned = 0 ORDER BY duration_ns DESC",
            (series_id, hour_ns),
        )
        return [r[0] for r in rows]

    async def trim_exemplars(self, series_id: int, hour_ns: int, keep: int) -> int:
        where = (
            "series_id = ? AND trace_id IN (SELECT trace_id FROM exemplar_traces"
            " WHERE series_id = ? AND hour_ns = ? AND pinned = 0"
            " ORDER BY duration_ns DESC LIMIT -1 OFFSET ?)"
        )
        return await self._delete_exemplars(where, (series_id, series_id, hour_ns, keep))

    async def _delete_exemplars(self, where: str, params: Sequence[object]) -> int:
        """Delete exemplar rows, then the spans of traces no exemplar refers to any more."""
        async with self.transaction() as db:
            async with db.execute(f"SELECT DISTINCT trace_id FROM exemplar_traces WHERE {where}",
                                  params) as cur:
                traces = [r[0] for r in await cur.fetchall()]
            cur = await db.execute(f"DELETE FROM exemplar_traces WHERE {where}", params)
            await db.executemany(
                "DELETE FROM exemplar_spans WHERE trace_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM exemplar_traces WHERE trace_id = ?)",
                [(t, t) for t in traces],
            )
            return cur.rowcount

    async def slowest_exemplars(
        self, series_id: int, since_ns: int, until_ns: int, limit: int
    ) -> list[ExemplarTrace]:
        rows = await self._all(
            "SELECT trace_id, series_id, hour_ns, duration_ns, start_ns, pinned"
            " FROM exemplar_traces WHERE series_id = ? AND start_ns BETWEEN ? AND ?"
            " ORDER BY duration_ns DESC LIMIT ?",
            (series_id, since_ns, until_ns, limit),
        )
        return [ExemplarTrace(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    async def get_trace(self, trace_id: str) -> list[Span]:
        rows = await self._all("SELECT data FROM exemplar_spans WHERE trace_id = ?", (trace_id,))
        spans = [Span.from_dict(json.loads(r[0])) for r in rows]
        return sorted(spans, key=lambda s: (s.start_ns, -s.duration_ns))

    async def pin_traces(self, trace_ids: Sequence[str]) -> None:
        async with self.transaction() as db:
            await db.executemany(
                "UPDATE exemplar_traces SET pinned = 1 WHERE trace_id = ?",
                [(t,) for t in trace_ids],
            )

    async def prune_exemplars(self, unpinned_before_ns: int, pinned_before_ns: int) -> int:
        return await self._delete_exemplars(
            "(pinned = 0 AND start_ns < ?) OR (pinned = 1 AND start_ns < ?)",
            (unpinned_before_ns, pinned_before_ns),
        )

    # -- bookkeeping --

    async def add_rejects(self, counts: Mapping[str, int]) -> None:
        if not counts:
            return
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO ingest_rejects (reason, count) VALUES (?, ?)"
                " ON CONFLICT(reason) DO UPDATE SET count = count + excluded.count",
                list(counts.items()),
            )

    async def rejects(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._all("SELECT reason, count FROM ingest_rejects")}

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def stats(self) -> StoreStats:
        counts: dict[str, int] = {}
        for table, name in (("series", "series"), ("aggregates", "aggregate_rows"),
                            ("exemplar_traces", "exemplar_traces"),
                            ("exemplar_spans", "exemplar_spans")):
            (n,) = await self._one(f"SELECT count(*) FROM {table}")
            counts[name] = int(n)  # type: ignore[call-overload]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return StoreStats(**counts, file_bytes=size, schema_version=SCHEMA_VERSION)

    async def save_exemplars_kept(
        self, traces: Sequence[ExemplarTrace], keep: int,
        spans_of: Callable[[str], Sequence[Span]], late: Sequence[str] = (),
    ) -> None:
        """What `save_exemplars(traces)` (spans: `spans_of(trace_id)`), `trim_exemplars(series,
        hour, keep)` for each (series, hour) among them, and `add_exemplar_spans(t,
        spans_of(t))` for each t in `late` leave behind, in one transaction.

        `spans_of` is called only for trace ids that still have an exemplar row after the
        trims: ingest never builds or encodes the spans of a trace the trim would delete.
        """
        now = _now_ns()
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO exemplar_traces"
                " (trace_id, series_id, hour_ns, duration_ns, start_ns, pinned, created_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(series_id, trace_id) DO UPDATE SET"
                " pinned = max(pinned, excluded.pinned),"
                " duration_ns = max(duration_ns, excluded.duration_ns)",
                [(t.trace_id, t.series_id, t.hour_ns, t.duration_ns, t.start_ns, int(t.pinned), now)
                 for t in traces],
            )
            for series_id, hour_ns in dict.fromkeys((t.series_id, t.hour_ns) for t in traces):
                where = (
                    "series_id = ? AND trace_id IN (SELECT trace_id FROM exemplar_traces"
                    " WHERE series_id = ? AND hour_ns = ? AND pinned = 0"
                    " ORDER BY duration_ns DESC LIMIT -1 OFFSET ?)"
                )
                params = (series_id, series_id, hour_ns, keep)
                select = f"SELECT DISTINCT trace_id FROM exemplar_traces WHERE {where}"
                async with db.execute(select, params) as cur:
                    dropped = [r[0] for r in await cur.fetchall()]
                if dropped:
                    await db.execute(f"DELETE FROM exemplar_traces WHERE {where}", params)
                    await db.executemany(
                        "DELETE FROM exemplar_spans WHERE trace_id = ? AND NOT EXISTS"
                        " (SELECT 1 FROM exemplar_traces WHERE trace_id = ?)",
                        [(t, t) for t in dropped],
                    )
            ids = list(dict.fromkeys([*(t.trace_id for t in traces), *late]))
            kept: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                async with db.execute("SELECT DISTINCT trace_id FROM exemplar_traces"
                                      f" WHERE trace_id IN ({marks})", chunk) as cur:
                    kept.update(r[0] for r in await cur.fetchall())
            await db.executemany(
                "INSERT OR IGNORE INTO exemplar_spans (trace_id, span_id, data) VALUES (?, ?, ?)",
                [(t, s.span_id, json.dumps(s.to_dict(), separators=(",", ":")))
                 for t in ids if t in kept for s in spans_of(t)],
            )


def _agg_to_db(a: LatencyAggregate) -> tuple[object, ...]:
    return (a.count, a.sum_log, a.sumsq_log, a.min_ms, a.max_ms, a.errors, a.hist_blob())


def _agg_from_db(r: Sequence[Any]) -> LatencyAggregate:
    hist = (LatencyAggregate.hist_from_blob(r[6]) if r[6]
            else np.zeros_like(LatencyAggregate().hist))
    return LatencyAggregate(
        count=int(r[0]), sum_log=float(r[1]), sumsq_log=float(r[2]),
        min_ms=float(r[3]), max_ms=float(r[4]), errors=int(r[5]), hist=hist,
    )


async def _insert_spans(db: aiosqlite.Connection, trace_id: str, spans: Sequence[Span]) -> None:
    """Insert spans of a trace that is (still) an exemplar.

    Late spans of traces that were already dropped are skipped.
    """
    await db.executemany(
        "INSERT OR IGNORE INTO exemplar_spans (trace_id, span_id, data) SELECT ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM exemplar_traces WHERE trace_id = ?)",
        [(trace_id, s.span_id, json.dumps(s.to_dict(), separators=(",", ":")), trace_id)
         for s in spans],
    )


def _now_ns() -> int:
    return time.time_ns()
