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

from bot.ingest._deltas import Deltas, Groups
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
_NOT_SEEN = np.iinfo(np.int64).max


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
        self._retention_ns = (exemplar_retention_days * DAY_NS,
                              anomaly_exemplar_retention_days * DAY_NS)
        self._key_index: dict[str, int] = {}
        self._key_names: list[str] = []
        self._deltas = Deltas()  # (key idx, hour) -> pending aggregate
        # first and last span start of every key since the last flush (_NOT_SEEN: none)
        self._seen_lo = np.full(64, _NOT_SEEN)
        self._seen_hi = np.full(64, -_NOT_SEEN)
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
        first, last, shortest, longest = batch.bounds()
        future = self._clock() + _FUTURE_SLACK_NS
        sane = shortest >= 0 and longest <= MAX_DURATION_NS and first > 0 and last <= future
        ok = None if sane else self._valid_rows(batch, future)
        names, codes = batch.key_codes()
        lut = self._key_lookup(names, codes)
        key_idx = lut[codes]
        if lut.min(initial=0) < 0:
            ok = key_idx >= 0 if ok is None else ok & (key_idx >= 0)
        rows = None if ok is None or ok.all() else np.flatnonzero(ok)
        starts, durs, errs = batch.start_ns, batch.duration_ns, batch.error
        if rows is not None:
            key_idx, starts, durs, errs = key_idx[rows], starts[rows], durs[rows], errs[rows]
            if starts.size == 0:
                return
            first, last = int(starts.min()), int(starts.max())
        groups = Groups.of(key_idx, starts // HOUR_NS, first // HOUR_NS, last // HOUR_NS)
        slowest = groups.max(durs)
        async with self._lock:
            self._exemplars.remember(batch)
            self._deltas.add(groups, durs, errs, slowest)
            self._see(key_idx, starts)
            names_of = self._key_names
            await self._exemplars.consider_groups(
                [names_of[k] for k in groups.keys.tolist()], (groups.hours * HOUR_NS).tolist(),
                groups, durs, rows, batch, slowest)
            self.stats.spans_ingested += int(starts.size)
            self.stats.batches += 1
            self.stats.latest_span_ns = max(self.stats.latest_span_ns, last)

    def _see(self, key_idx: np.ndarray, starts: np.ndarray) -> None:
        """Widen the first/last start of every key in the batch."""
        if self._seen_lo.size < len(self._key_names):
            self._grow_seen(len(self._key_names))
        np.minimum.at(self._seen_lo, key_idx, starts)
        np.maximum.at(self._seen_hi, key_idx, starts)

    def _grow_seen(self, need: int) -> None:
        size = max(need, 2 * self._seen_lo.size, 64)
        lo, hi = np.full(size, _NOT_SEEN), np.full(size, -_NOT_SEEN)
        lo[: self._seen_lo.size], hi[: self._seen_hi.size] = self._seen_lo, self._seen_hi
        self._seen_lo, self._seen_hi = lo, hi

    def _take_seen(self) -> dict[int, list[int]]:
        touched = np.flatnonzero(self._seen_lo != _NOT_SEEN).tolist()
        seen = {k: [int(self._seen_lo[k]), int(self._seen_hi[k])] for k in touched}
        self._seen_lo[touched], self._seen_hi[touched] = _NOT_SEEN, -_NOT_SEEN
        return seen

    def _valid_rows(self, batch: SpanBatch, future: int) -> np.ndarray:
        """Last line of defence, run when the batch's bounds show a bad row (decoders should
        already have rejected these): the rows to keep; the others are counted."""
        d, s = batch.duration_ns, batch.start_ns
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

    def _key_lookup(self, names: list[str], codes: np.ndarray) -> np.ndarray:
        """Key index of each distinct batch key, -1 beyond the series cap (counted per row).

        New keys are numbered in the order their first row comes, as a row-by-row loop would.
        """
        get = self._key_index.get
        lut = np.fromiter((get(k, -1) for k in names), np.int64, len(names))
        if lut.min(initial=0) >= 0:
            return lut
        distinct, first, counts = np.unique(codes, return_index=True, return_counts=True)
        over: list[tuple[int, int]] = []  # (last row, code) of keys beyond the cap
        for j in np.argsort(first, kind="stable").tolist():
            code = int(distinct[j])
            if lut[code] >= 0:
                continue
            key = names[code]
            idx = self._key_index.get(key)
            if idx is None and len(self._key_names) >= self._max_series:
                over.append((int(np.flatnonzero(codes == code)[-1]), code))
                continue
            if idx is None:
                idx = self._key_index[key] = len(self._key_names)
                self._key_names.append(key)
            lut[code] = idx
        for _, code in sorted(over):  # the last detail names the last row's key
            n = int(counts[np.searchsorted(distinct, code)])
            self.rejects.add(RejectReason.SERIES_LIMIT,
                             f"{names[code]} (limit {self._max_series})", n)
        return lut

    async def keep_traces(self, wanted: dict[str, str]) -> int:
        """Keep the whole traces of an anomaly (trace id -> its key) as pinned exemplars."""
        async with self._lock:
            return await self._exemplars.keep(wanted)

    async def flush(self) -> None:
        """Merge pending deltas into the store. On failure the deltas are kept for the next try."""
        async with self._lock:
            pending = self._deltas.take()
            seen = self._take_seen()
        try:
            await self._write(pending, seen)
        except BaseException:
            async with self._lock:
                self._deltas.merge(pending)
                for k, (lo, hi) in seen.items():
                    self._seen_lo[k] = min(int(self._seen_lo[k]), lo)
                    self._seen_hi[k] = max(int(self._seen_hi[k]), hi)
            raise
        self.stats.flushes += 1

    async def _write(self, pending: dict[tuple[int, int], LatencyAggregate],
                     seen: dict[int, list[int]]) -> None:
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
                    log.exception("flush failed; keeping %d pending aggregates", len(self._deltas))
        finally:
            await self.flush()


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
