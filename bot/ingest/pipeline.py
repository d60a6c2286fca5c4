"""From decoded span batches to the store: hourly aggregates and exemplar traces.

The hot path is columnar: a batch is grouped by (span key, UTC hour) with numpy
and folded into in-memory deltas; only exemplar candidates (the slowest few per
key and hour) are turned back into full spans. Deltas are merged into the store
every flush, so memory and store size follow keys x hours, not span volume.
A crash loses at most the deltas of one flush interval; a failed flush keeps them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.ingest._exemplars import ExemplarPicker
from bot.settings import Settings
from bot.spans import MAX_DURATION_NS, RejectCounter, RejectReason, SpanBatch
from bot.store.base import AggregateRow, Store
from detectors.aggregate import LatencyAggregate

__all__ = ["HOUR_NS", "IngestPipeline", "IngestStats", "pipeline_for"]

log = logging.getLogger(__name__)

HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
_FUTURE_SLACK_NS = DAY_NS  # spans dated more than a day ahead of the wall clock are clock bugs


@dataclass(slots=True)
class IngestStats:
    spans_ingested: int = 0
    batches: int = 0
    flushes: int = 0
    latest_span_ns: int = 0  # the simulated clock: newest span start seen


class IngestPipeline:
    """Folds span batches into aggregates and exemplars, and flushes them to a Store."""

    def __init__(
        self,
        store: Store,
        rejects: RejectCounter | None = None,
        *,
        exemplars_per_key_hour: int = 5,
        trace_buffer_spans: int = 200_000,
        max_series: int = 20_000,
        window_days: int = 30,
        exemplar_retention_days: int = 7,
        anomaly_exemplar_retention_days: int = 30,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.rejects = rejects if rejects is not None else RejectCounter()
        self.stats = IngestStats()
        self._clock = clock
        self._max_series = max_series
        self._window_days = window_days
        self._retention_ns = (exemplar_retention_days * DAY_NS, anomaly_exemplar_retention_days * DAY_NS)
        self._key_index: dict[str, int] = {}
        self._key_names: list[str] = []
        self._pending: dict[tuple[int, int], LatencyAggregate] = {}  # (key idx, hour) -> delta
        self._seen: dict[int, list[int]] = {}  # key idx -> [first start, last start]
        self._rejects_flushed: dict[str, int] = {}
        self._exemplars = ExemplarPicker(store, exemplars_per_key_hour, trace_buffer_spans)
        self._lock = asyncio.Lock()
        self._pruned_day = -1

    @property
    def keys(self) -> list[str]:
        return list(self._key_names)

    async def ingest(self, batch: SpanBatch) -> None:
        """Fold one batch in. Rows that would corrupt a baseline are counted and dropped."""
        if len(batch) == 0:
            return
        ok = self._valid_rows(batch)
        key_idx = self._key_indices(batch.keys)
        ok &= key_idx >= 0
        if not ok.all():
            rows = np.flatnonzero(ok)
            key_idx = key_idx[rows]
        else:
            rows = None
        starts = batch.start_ns if rows is None else batch.start_ns[rows]
        if starts.size == 0:
            return
        durs = batch.duration_ns if rows is None else batch.duration_ns[rows]
        errs = batch.error if rows is None else batch.error[rows]
        hours = starts // HOUR_NS
        async with self._lock:
            self._exemplars.remember(batch)
            for g in _groups(key_idx, hours):
                k, h = int(key_idx[g[0]]), int(hours[g[0]])
                self._fold(k, h, durs[g], errs[g], starts[g])
                src = g if rows is None else rows[g]
                await self._exemplars.consider(self._key_names[k], h * HOUR_NS, src, batch)
            self.stats.spans_ingested += int(starts.size)
            self.stats.batches += 1
            self.stats.latest_span_ns = max(self.stats.latest_span_ns, int(starts.max()))

    def _fold(self, k: int, hour: int, durs: np.ndarray, errs: np.ndarray, starts: np.ndarray) -> None:
        agg = self._pending.get((k, hour))
        if agg is None:
            agg = self._pending[(k, hour)] = LatencyAggregate()
        agg.add(durs / 1e6, errors=int(np.count_nonzero(errs)))
        lo, hi = int(starts.min()), int(starts.max())
        seen = self._seen.get(k)
        if seen is None:
            self._seen[k] = [lo, hi]
        else:
            seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)

    def _valid_rows(self, batch: SpanBatch) -> np.ndarray:
        """Last line of defence; decoders should already have rejected these."""
        d, s = batch.duration_ns, batch.start_ns
        future = self._clock() + _FUTURE_SLACK_NS
        checks = (
            (d < 0, RejectReason.NEGATIVE_DURATION),
            (d > MAX_DURATION_NS, RejectReason.TOO_LONG),
            ((s <= 0) | (s > future), RejectReason.BAD_TIMESTAMP),
        )
        ok = np.ones(len(batch), np.bool_)
        for bad, reason in checks:
            n = int(np.count_nonzero(bad & ok))
            if n:
                self.rejects.add(reason, "dropped by the ingest pipeline", n)
                ok &= ~bad
        return ok

    def _key_indices(self, keys: list[str]) -> np.ndarray:
        index = self._key_index
        get = index.get
        out = np.fromiter((get(k, -1) for k in keys), np.int64, len(keys))
        missing = np.flatnonzero(out < 0)
        for i in missing:
            key = keys[i]
            idx = index.get(key)
            if idx is None:
                if len(self._key_names) >= self._max_series:
                    self.rejects.add(RejectReason.SERIES_LIMIT, f"{key} (limit {self._max_series})")
                    continue
                idx = index[key] = len(self._key_names)
                self._key_names.append(key)
            out[i] = idx
        return out

    async def flush(self) -> None:
        """Merge pending deltas into the store. On failure the deltas are kept for the next try."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            seen, self._seen = self._seen, {}
        try:
            await self._write(pending, seen)
        except BaseException:
            async with self._lock:
                for (k, h), agg in pending.items():
                    cur = self._pending.get((k, h))
                    self._pending[(k, h)] = agg if cur is None else agg.merge(cur)
                for k, (lo, hi) in seen.items():
                    cur_seen = self._seen.setdefault(k, [lo, hi])
                    cur_seen[0], cur_seen[1] = min(cur_seen[0], lo), max(cur_seen[1], hi)
            raise
        self.stats.flushes += 1

    async def _write(self, pending: dict[tuple[int, int], LatencyAggregate], seen: dict[int, list[int]]) -> None:
        names = self._key_names
        touched = {names[k]: (lo, hi) for k, (lo, hi) in seen.items()}
        ids = await self.store.touch_series(touched, "span") if touched else {}
        rows = [
            AggregateRow(ids[names[k]], h // 24, h % 24, agg) for (k, h), agg in pending.items()
        ]
        await self.store.add_aggregates(rows)
        await self._exemplars.flush(ids)
        await self._flush_rejects()
        await self._prune()

    async def _flush_rejects(self) -> None:
        now = self.rejects.as_dict()
        delta = {r: n - self._rejects_flushed.get(r, 0) for r, n in now.items()}
        delta = {r: n for r, n in delta.items() if n}
        await self.store.add_rejects(delta)
        self._rejects_flushed = now

    async def _prune(self) -> None:
        """Slide the window by the newest span time (works for live and replayed clocks)."""
        latest = self.stats.latest_span_ns
        day = latest // DAY_NS
        if latest == 0 or day == self._pruned_day:
            return
        self._pruned_day = day
        await self.store.prune_aggregates(day - self._window_days)
        plain, pinned = self._retention_ns
        await self.store.prune_exemplars(latest - plain, latest - pinned)

    async def run_flusher(self, interval_s: float) -> None:
        """Flush every `interval_s` until cancelled; a final flush runs on cancellation."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.flush()
                except Exception:
                    log.exception("flush failed; keeping %d pending aggregates", len(self._pending))
        finally:
            await self.flush()


def _groups(key_idx: np.ndarray, hours: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by (key, hour)."""
    code = key_idx * (1 << 24) + (hours - hours.min())
    order = np.argsort(code, kind="stable")
    sc = code[order]
    cuts = np.flatnonzero(sc[1:] != sc[:-1]) + 1
    return np.split(order, cuts)



def pipeline_for(settings: Settings, store: Store, rejects: RejectCounter) -> IngestPipeline:
    """The pipeline configured from settings (one place, used by every entry point)."""
    return IngestPipeline(
        store,
        rejects,
        exemplars_per_key_hour=settings.exemplars_per_key_hour,
        trace_buffer_spans=settings.trace_buffer_spans,
        window_days=settings.baseline_window_days,
        exemplar_retention_days=settings.exemplar_retention_days,
        anomaly_exemplar_retention_days=settings.anomaly_exemplar_retention_days,
    )
