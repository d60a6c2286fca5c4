"""Choosing and keeping exemplar traces: the slowest few per span key and UTC hour.

Recent batches stay in a bounded buffer so that the rest of a chosen span's
trace (children usually end, and are exported, before their parent) can be
rebuilt. Gathering is one pass over the buffer per flush, plus one pass over a
batch as it leaves the buffer; both test every row's trace-id hash against the
chosen ones at once, so per-span cost is numpy's, not Python's. Spans of chosen
traces wait as `SpanBatch.deferred` builders: most chosen traces are pushed out
of the top N before the flush, and only the ones the store keeps are built.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from bot.ingest._deltas import Groups
from bot.spans import Span, SpanBatch, trace_id_hash
from bot.store.base import ExemplarTrace, Store

__all__ = ["ExemplarPicker"]

_SELECTED_CAP = 20_000  # trace ids whose late spans are still collected
_MASK64 = (1 << 64) - 1
_HOUR_NS = 3_600_000_000_000


SpanBuilder = Callable[[], Span]


@dataclass(slots=True)
class _Pending:
    key: str
    hour_ns: int
    duration_ns: int
    start_ns: int
    spans: dict[str, SpanBuilder] = field(default_factory=dict)  # span id -> builder


class ExemplarPicker:
    def __init__(self, store: Store, per_key_hour: int, buffer_spans: int) -> None:
        self._store = store
        self._n = per_key_hour
        self._buffer_cap = buffer_spans
        self._buffer: deque[SpanBatch] = deque()
        self._buffer_len = 0
        self._top: dict[tuple[str, int], list[int]] = {}  # durations, descending
        self._selected: OrderedDict[str, None] = OrderedDict()
        self._filter = _HashFilter()  # hashes of (at least) the selected trace ids
        self._new: dict[tuple[str, str], _Pending] = {}  # (key, trace id)
        self._waiting: dict[str, list[dict[str, SpanBuilder]]] = {}  # trace id -> its _new spans
        self._late: dict[str, dict[str, SpanBuilder]] = {}

    async def consider_groups(self, keys: list[str], hours_ns: list[int], groups: Groups,
                              durations_ns: np.ndarray, rows: np.ndarray | None,
                              batch: SpanBatch, slowest_ns: np.ndarray | None = None) -> None:
        """`consider` every group of a batch whose slowest span beats its group's floor.

        `durations_ns` are the batch's valid rows (`rows` of the batch, or all of it when
        None), as `groups` numbers them; `slowest_ns` their `groups.max`, when the caller
        has it. Groups that cannot place a span among the slowest N cost one comparison,
        and none of their spans is built.
        """
        if self._n == 0:
            return
        slowest = (groups.max(durations_ns) if slowest_ns is None else slowest_ns).tolist()
        for g, (key, hour_ns) in enumerate(zip(keys, hours_ns, strict=True)):
            top = self._top.get((key, hour_ns))
            if top is None:
                top = self._top[(key, hour_ns)] = await self._stored_top(key, hour_ns)
            if len(top) >= self._n and slowest[g] <= top[self._n - 1]:
                continue
            src = groups.rows(g)
            await self.consider(key, hour_ns, src if rows is None else rows[src], batch)

    async def consider(self, key: str, hour_ns: int, rows: np.ndarray, batch: SpanBatch) -> None:
        """Offer rows of one (key, hour) group; keep those among the slowest N so far."""
        if self._n == 0:
            return
        top = self._top.get((key, hour_ns))
        if top is None:
            top = self._top[(key, hour_ns)] = await self._stored_top(key, hour_ns)
        durs = batch.duration_ns[rows]
        floor = top[self._n - 1] if len(top) >= self._n else -1
        better = np.flatnonzero(durs > floor)
        if better.size == 0:
            return
        if better.size > self._n:
            better = better[np.argpartition(-durs[better], self._n - 1)[: self._n]]
        for j in better[np.argsort(-durs[better])]:
            dur = int(durs[j])
            if len(top) >= self._n and dur <= top[-1]:
                break
            top.append(dur)
            top.sort(reverse=True)
            del top[self._n :]
            self._select(key, hour_ns, int(rows[j]), batch)

    async def _stored_top(self, key: str, hour_ns: int) -> list[int]:
        info = await self._store.get_series(key)
        return await self._store.exemplar_durations(info.id, hour_ns) if info else []

    def _select(self, key: str, hour_ns: int, row: int, batch: SpanBatch) -> None:
        trace_id = batch.trace_id(row)
        duration, start = int(batch.duration_ns[row]), int(batch.start_ns[row])
        span_id, build = batch.deferred(row)
        pending = self._new.get((key, trace_id))
        if pending is None:
            pending = self._new[(key, trace_id)] = _Pending(key, hour_ns, duration, start)
            self._waiting.setdefault(trace_id, []).append(pending.spans)
        elif pending.duration_ns < duration:  # the same spans wait, for a slower reason
            pending = _Pending(key, hour_ns, duration, start, pending.spans)
            self._new[(key, trace_id)] = pending
        pending.spans.setdefault(span_id, build)
        if trace_id in self._selected:
            self._selected.move_to_end(trace_id)
        else:
            self._selected[trace_id] = None
            self._filter.add(trace_id_hash(trace_id))
        while len(self._selected) > _SELECTED_CAP:
            self._selected.popitem(last=False)
        if self._filter.stale(len(self._selected)):
            self._filter.rebuild(trace_id_hash(t) for t in self._selected)

    def _gather(self, batch: SpanBatch) -> None:
        """Collect the spans of `batch` that belong to chosen traces."""
        selected = self._selected
        if not selected:
            return
        by_trace: dict[str, list[tuple[str, SpanBuilder]]] = {}
        for i in self._filter.candidates(batch.trace_id_hashes()).tolist():
            trace_id = batch.trace_id(i)
            if trace_id in selected:
                by_trace.setdefault(trace_id, []).append(batch.deferred(i))
        for trace_id, spans in by_trace.items():
            targets = self._waiting.get(trace_id) or [self._late.setdefault(trace_id, {})]
            for target in targets:
                for span_id, build in spans:
                    target.setdefault(span_id, build)

    def remember(self, batch: SpanBatch) -> None:
        self._buffer.append(batch)
        self._buffer_len += len(batch)
        while self._buffer_len > self._buffer_cap and len(self._buffer) > 1:
            old = self._buffer.popleft()
            self._buffer_len -= len(old)
            self._gather(old)

    async def flush(self, ids: dict[str, int]) -> None:
        """Save chosen traces, drop those pushed out of the top N, add late spans."""
        for batch in self._buffer:
            self._gather(batch)
        new, late = self._new, self._late
        self._new, self._late, self._waiting = {}, {}, {}
        try:
            await self._save(new, late, ids)
        except BaseException:
            for kt, p in new.items():  # keep them for the next flush
                self._new.setdefault(kt, p).spans.update(p.spans)
            for trace_id, spans in late.items():
                self._late.setdefault(trace_id, {}).update(spans)
            self._waiting = {}
            for (_, trace_id), p in self._new.items():
                self._waiting.setdefault(trace_id, []).append(p.spans)
            raise
        self._forget_old_hours()

    async def _save(self, new: dict[tuple[str, str], _Pending],
                    late: dict[str, dict[str, SpanBuilder]], ids: dict[str, int]) -> None:
        traces, builders = [], []
        for (_, trace_id), p in new.items():
            sid = ids.get(p.key) or await self._series_id(p.key)
            if sid is not None:
                traces.append(ExemplarTrace(trace_id, sid, p.hour_ns, p.duration_ns, p.start_ns))
                builders.append(p.spans)
        kept = getattr(self._store, "save_exemplars_kept", None)
        if kept is not None:  # SqliteStore: one transaction; spans built for kept traces only
            await kept(traces, self._n, _SpansOf(traces, builders, late), list(late))
            return
        for t, spans in zip(traces, builders, strict=True):
            t.spans = [build() for build in spans.values()]
        await self._store.save_exemplars(traces)
        for sid, hour_ns in {(t.series_id, t.hour_ns) for t in traces}:
            await self._store.trim_exemplars(sid, hour_ns, self._n)
        for trace_id, spans in late.items():
            await self._store.add_exemplar_spans(trace_id, [build() for build in spans.values()])

    async def keep(self, wanted: dict[str, str]) -> int:
        """Save whole traces that took part in an anomaly (trace id -> the anomaly's key), pinned.

        The slowest-N rule alone would drop an anomaly's trace that was not among its
        hour's slowest; these are rebuilt from the buffer of recent batches and kept for
        the anomaly retention. Returns how many were found and saved.
        """
        if not wanted:
            return 0
        hashes = np.fromiter((trace_id_hash(t) for t in wanted), np.uint64, len(wanted))
        found: dict[str, _Pending] = {}
        for batch in self._buffer:
            rows = np.flatnonzero(np.isin(batch.trace_id_hashes(), hashes))
            if rows.size == 0:
                continue
            names, codes = batch.key_codes()
            for i in rows.tolist():
                trace_id = batch.trace_id(i)
                key = wanted.get(trace_id)
                if key is None:
                    continue
                dur, start = int(batch.duration_ns[i]), int(batch.start_ns[i])
                p = found.get(trace_id)
                if p is None:
                    p = found[trace_id] = _Pending(key, start // _HOUR_NS * _HOUR_NS, 0, start)
                if names[int(codes[i])] == key and dur > p.duration_ns:
                    p.duration_ns, p.start_ns = dur, start
                    p.hour_ns = start // _HOUR_NS * _HOUR_NS
                span_id, build = batch.deferred(i)
                p.spans.setdefault(span_id, build)
        traces = []
        for trace_id, p in found.items():
            sid = await self._series_id(p.key)
            if sid is not None and p.duration_ns > 0:
                traces.append(ExemplarTrace(trace_id, sid, p.hour_ns, p.duration_ns, p.start_ns,
                                            pinned=True,
                                            spans=[b() for b in p.spans.values()]))
        await self._store.save_exemplars(traces)
        return len(traces)

    async def _series_id(self, key: str) -> int | None:
        info = await self._store.get_series(key)
        return info.id if info else None

    def _forget_old_hours(self) -> None:
        if len(self._top) < 4096:
            return
        newest = max(h for _, h in self._top)
        oldest = newest - 2 * 3_600_000_000_000
        self._top = {kh: v for kh, v in self._top.items() if kh[1] >= oldest}


class _SpansOf:
    """Every waiting span of a trace id, built on demand (the store asks for kept traces only).

    A span may wait in several places (one pending per key of its trace, or as a late
    span); all hold the same span, so the first builder for a span id is used.
    """

    def __init__(self, traces: list[ExemplarTrace], builders: list[dict[str, SpanBuilder]],
                 late: dict[str, dict[str, SpanBuilder]]) -> None:
        self._by_trace: dict[str, dict[str, SpanBuilder]] = {}
        for t, spans in zip(traces, builders, strict=True):
            self._merge(t.trace_id, spans)
        for trace_id, spans in late.items():
            self._merge(trace_id, spans)

    def _merge(self, trace_id: str, spans: dict[str, SpanBuilder]) -> None:
        into = self._by_trace.setdefault(trace_id, {})
        for span_id, build in spans.items():
            into.setdefault(span_id, build)

    def __call__(self, trace_id: str) -> list[Span]:
        return [build() for build in self._by_trace.get(trace_id, {}).values()]


class _HashFilter:
    """A byte map over trace-id hashes: a superset of the selected trace ids, tested for a
    whole batch with one lookup per row.

    Rows that hit are only candidates (collisions, and ids dropped from the selection
    until the next rebuild); each candidate's id is compared exactly afterwards.
    """

    _BITS = 20  # 1 MiB; at the 20k selected cap about 2% of rows are false candidates
    _MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: every input bit moves the slot

    def __init__(self) -> None:
        self._map = np.zeros(1 << self._BITS, np.bool_)
        self._added = 0

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        slots: np.ndarray = (hashes * self._MIX) >> np.uint64(64 - self._BITS)
        return slots

    def add(self, h: int) -> None:
        self._map[((h * int(self._MIX)) & _MASK64) >> (64 - self._BITS)] = True
        self._added += 1

    def stale(self, live: int) -> bool:
        return self._added > 2 * live + 1024

    def rebuild(self, hashes: Iterable[int]) -> None:
        values = np.fromiter(hashes, np.uint64)
        self._map[:] = False
        self._map[self._slots(values)] = True
        self._added = int(values.size)

    def candidates(self, hashes: np.ndarray) -> np.ndarray:
        """Row indices whose trace id may be selected (ascending)."""
        hit: np.ndarray = np.flatnonzero(self._map[self._slots(hashes)])
        return hit
