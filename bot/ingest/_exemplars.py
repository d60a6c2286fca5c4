"""Choosing and keeping exemplar traces: the slowest few per span key and UTC hour.

Recent batches stay in a bounded buffer so that the rest of a chosen span's
trace (children usually end, and are exported, before their parent) can be
rebuilt. Gathering is one pass over the buffer per flush, plus one pass over a
batch as it leaves the buffer, so its cost is a set lookup per span per flush,
not per chosen trace.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from bot.ingest._deltas import Groups
from bot.spans import Span, SpanBatch, trace_id_hash
from bot.store.base import ExemplarTrace, Store

__all__ = ["ExemplarPicker"]

_SELECTED_CAP = 20_000  # trace ids whose late spans are still collected


@dataclass(slots=True)
class _Pending:
    key: str
    hour_ns: int
    duration_ns: int
    start_ns: int
    spans: dict[str, Span] = field(default_factory=dict)


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
        self._late: dict[str, dict[str, Span]] = {}

    async def consider_groups(self, keys: list[str], hours_ns: list[int], groups: Groups,
                              durations_ns: np.ndarray, rows: np.ndarray | None,
                              batch: SpanBatch) -> None:
        """`consider` every group of a batch whose slowest span beats its group's floor.

        `durations_ns` are the batch's valid rows (`rows` of the batch, or all of it when
        None), in the order `groups` indexes them. Groups that cannot place a span
        among the slowest N cost one comparison, and none of their spans is built.
        """
        if self._n == 0:
            return
        slowest = groups.reduce(np.maximum, durations_ns[groups.order]).tolist()
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
        span = batch.materialize(row)
        trace_id = span.trace_id
        pending = self._new.get((key, trace_id))
        if pending is None or pending.duration_ns < span.duration_ns:
            spans = pending.spans if pending else {}
            pending = _Pending(key, hour_ns, span.duration_ns, span.start_ns, spans)
            self._new[(key, trace_id)] = pending
        pending.spans.setdefault(span.span_id, span)
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
        by_trace: dict[str, list[Span]] = {}
        for i in self._filter.candidates(batch.trace_id_hashes()).tolist():
            if batch.trace_id(i) in selected:
                s = batch.materialize(i)
                by_trace.setdefault(s.trace_id, []).append(s)
        if not by_trace:
            return
        waiting: dict[str, list[_Pending]] = {}
        for (_, trace_id), p in self._new.items():
            waiting.setdefault(trace_id, []).append(p)
        for trace_id, spans in by_trace.items():
            targets = ([p.spans for p in waiting.get(trace_id, [])]
                       or [self._late.setdefault(trace_id, {})])
            for target in targets:
                for s in spans:
                    target.setdefault(s.span_id, s)

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
        self._new, self._late = {}, {}
        try:
            await self._save(new, late, ids)
        except BaseException:
            for kt, p in new.items():  # keep them for the next flush
                self._new.setdefault(kt, p).spans.update(p.spans)
            for trace_id, spans in late.items():
                self._late.setdefault(trace_id, {}).update(spans)
            raise
        self._forget_old_hours()

    async def _save(self, new: dict[tuple[str, str], _Pending], late: dict[str, dict[str, Span]],
                    ids: dict[str, int]) -> None:
        traces = []
        for (_, trace_id), p in new.items():
            sid = ids.get(p.key) or await self._series_id(p.key)
            if sid is not None:
                traces.append(ExemplarTrace(trace_id, sid, p.hour_ns, p.duration_ns, p.start_ns,
                                            spans=list(p.spans.values())))
        await self._store.save_exemplars(traces)
        for sid, hour_ns in {(t.series_id, t.hour_ns) for t in traces}:
            await self._store.trim_exemplars(sid, hour_ns, self._n)
        for trace_id, spans in late.items():
            await self._store.add_exemplar_spans(trace_id, list(spans.values()))

    async def _series_id(self, key: str) -> int | None:
        info = await self._store.get_series(key)
        return info.id if info else None

    def _forget_old_hours(self) -> None:
        if len(self._top) < 4096:
            return
        newest = max(h for _, h in self._top)
        oldest = newest - 2 * 3_600_000_000_000
        self._top = {kh: v for kh, v in self._top.items() if kh[1] >= oldest}


class _HashFilter:
    """A superset of the selected trace ids' hashes, tested against a whole batch at once.

    A sorted array plus a short unsorted tail of recent additions; ids dropped from
    the selection stay until a rebuild, which only costs false candidates (each
    candidate's id is compared exactly afterwards).
    """

    _TAIL = 512

    def __init__(self) -> None:
        self._sorted = np.zeros(0, np.uint64)
        self._tail: list[int] = []

    def add(self, h: int) -> None:
        self._tail.append(h)
        if len(self._tail) >= self._TAIL:
            self._merge()

    def _merge(self) -> None:
        tail = np.array(self._tail, np.uint64)
        self._sorted = np.sort(np.concatenate((self._sorted, tail)))
        self._tail = []

    def stale(self, live: int) -> bool:
        return self._sorted.size + len(self._tail) > 2 * live + self._TAIL

    def rebuild(self, hashes: Iterable[int]) -> None:
        self._sorted = np.sort(np.fromiter(hashes, np.uint64))
        self._tail = []

    def candidates(self, hashes: np.ndarray) -> np.ndarray:
        """Row indices whose hash may be in the filter (ascending)."""
        hit = np.zeros(hashes.shape[0], np.bool_)
        if self._sorted.size:
            at = np.searchsorted(self._sorted, hashes)
            np.minimum(at, self._sorted.size - 1, out=at)
            hit = self._sorted[at] == hashes
        if self._tail:
            hit |= np.isin(hashes, np.array(self._tail, np.uint64))
        return np.flatnonzero(hit)
