"""What the detection engine persists per metric series: hourly partials and detector state.

`MetricRecordsMixin` holds the SQL; `SqliteStore` mixes it in. Rows are written
whole (replace, not add): the engine holds the authoritative copy of each hour
in memory, so a step that is replayed after a crash rewrites the same rows. The
exception is the series' score histograms (`score_hist`, beside the span keys'):
they are added, in the same transaction as the source cursor, so each sample's
score counts exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.store._connected import Connected
from bot.store.detection_state import ScoreHistRow, add_score_rows
from detectors.metric_aggregate import MetricAggregate
from detectors.transforms import Transform

__all__ = ["MetricAggregateRow", "MetricRecordsMixin", "MetricSeriesSeen", "MetricStateRow"]


@dataclass(frozen=True, slots=True)
class MetricSeriesSeen:
    """A metric series as the `series` table names it: service label and metric name."""

    service: str
    metric: str
    first_seen_ns: int
    last_seen_ns: int


@dataclass(slots=True)
class MetricAggregateRow:
    """The folded partial of one metric series for one UTC day and hour."""

    series_id: int
    day: int
    hour: int
    agg: MetricAggregate


@dataclass(slots=True)
class MetricStateRow:
    """Where one series' detector stands; `pending` are raw values of `clock_hour`."""

    series_id: int
    transform: Transform
    first_seen_ns: int | None
    anchor_ns: int | None
    last_sample_ns: int
    clock_hour: int | None
    pending: list[float]
    tracker: dict[str, Any] | None
    shift: dict[str, Any] | None
    novelty: bytes | None = None  # NoveltyStream state; None on save keeps the stored one


class MetricRecordsMixin(Connected):
    """Metric baseline SQL over the store's connection; every write is one transaction."""

    async def touch_metric_series(self, seen: Mapping[str, MetricSeriesSeen]) -> dict[str, int]:
        """Insert or widen `series` rows (kind 'metric'); returns name -> id."""
        if not seen:
            return {}
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO series (name, kind, service, operation, first_seen_ns, last_seen_ns)"
                " VALUES (?, 'metric', ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " service = excluded.service, operation = excluded.operation,"
                " first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),"
                " last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)",
                [(n, s.service, s.metric, s.first_seen_ns, s.last_seen_ns)
                 for n, s in seen.items()],
            )
        ids: dict[str, int] = {}
        names = list(seen)
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._all(
                f"SELECT name, id FROM series WHERE name IN ({marks})", chunk)
            ids.update({str(r[0]): int(r[1]) for r in rows})
        return ids

    async def save_metric_step(
        self, aggregates: Sequence[MetricAggregateRow], states: Sequence[MetricStateRow],
        now_ns: int, meta: Mapping[str, str] | None = None,
        scores: Sequence[ScoreHistRow] = (),
    ) -> None:
        """Replace the given hourly partials, detector states and `meta` values and add the
        score histograms, atomically (a source's cursor is saved with the baselines and the
        severity history that its samples went into, so a re-fed sample counts once)."""
        if not aggregates and not states and not meta and not scores:
            return
        async with self.transaction() as db:
            await add_score_rows(db, scores)
            await db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list((meta or {}).items()),
            )
            await db.executemany(
                "INSERT OR REPLACE INTO metric_aggregates"
                " (series_id, day, hour, transform, count, mean, m2, min, max, hist)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.series_id, r.day, r.hour, r.agg.transform.value, r.agg.count, r.agg.mean,
                  r.agg.m2, r.agg.min, r.agg.max, r.agg.hist_blob()) for r in aggregates],
            )
            await db.executemany(
                "INSERT INTO metric_state (series_id, transform, first_seen_ns, anchor_ns,"
                " last_sample_ns, clock_hour, pending, tracker, shift, novelty, updated_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(series_id) DO UPDATE SET"
                " transform = excluded.transform, first_seen_ns = excluded.first_seen_ns,"
                " anchor_ns = excluded.anchor_ns, last_sample_ns = excluded.last_sample_ns,"
                " clock_hour = excluded.clock_hour, pending = excluded.pending,"
                " tracker = excluded.tracker, shift = excluded.shift,"
                " novelty = coalesce(excluded.novelty, metric_state.novelty),"
                " updated_ns = excluded.updated_ns",
                [(s.series_id, s.transform.value, s.first_seen_ns, s.anchor_ns, s.last_sample_ns,
                  s.clock_hour, np.asarray(s.pending, "<f8").tobytes() if s.pending else None,
                  _json(s.tracker), _json(s.shift), s.novelty, now_ns) for s in states],
            )

    async def load_metric_aggregates(
        self, first_day: int, last_day: int, series_ids: Sequence[int] | None = None
    ) -> list[MetricAggregateRow]:
        """Partials of days [first_day, last_day], ordered by series, day, hour."""
        rows = await self._hourly_rows(
            "SELECT series_id, day, hour, transform, count, mean, m2, min, max, hist"
            " FROM metric_aggregates", first_day, last_day, series_ids)
        return [MetricAggregateRow(int(r[0]), int(r[1]), int(r[2]), _aggregate(r[3:]))
                for r in rows]

    async def load_metric_states(self) -> list[MetricStateRow]:
        rows = await self._all(
            "SELECT series_id, transform, first_seen_ns, anchor_ns, last_sample_ns, clock_hour,"
            " pending, tracker, shift, novelty FROM metric_state ORDER BY series_id")
        return [
            MetricStateRow(
                int(r[0]), Transform(r[1]), _int(r[2]), _int(r[3]), int(r[4]), _int(r[5]),
                np.frombuffer(r[6], "<f8").tolist() if r[6] else [],
                json.loads(r[7]) if r[7] else None, json.loads(r[8]) if r[8] else None,
                bytes(r[9]) if r[9] is not None else None,
            )
            for r in rows
        ]

    async def metric_cursors(self, prefix: str) -> dict[str, int]:
        """Integer `meta` values whose key starts with `prefix`, keyed by the rest of the key."""
        rows = await self._all(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {str(r[0])[len(prefix):]: int(r[1]) for r in rows}

    async def prune_metric_aggregates(self, before_day: int) -> int:
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM metric_aggregates WHERE day < ?", (before_day,))
            return cur.rowcount


def _aggregate(r: Sequence[Any]) -> MetricAggregate:
    return MetricAggregate(
        Transform(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]),
        MetricAggregate.hist_from_blob(r[6]),
    )


def _json(d: dict[str, Any] | None) -> str | None:
    return None if d is None else json.dumps(d, separators=(",", ":"))


def _int(v: Any) -> int | None:
    return None if v is None else int(v)
