"""Choosing and keeping exemplar traces: the slowest few per span key and UTC hour.

Recent batches stay in a bounded buffer so that the rest of a chosen span's
trace (children usually end, and are exported, before their parent) can be
rebuilt. Gathering is one pass over the buffer per flush, plus one pass over a
batch as it leaves the buffer, so its cost is a set lookup per span per flush,
not per chosen trace.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from bot.spans import Span, SpanBatch
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
        self._new: dict[tuple[str, str], _Pending] = {}  # (key, trace id)
        self._late: dict[str, dict[str, Span]] = {}

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
        self._selected[trace_id] = None
        self._selected.move_to_end(trace_id)
        while len(self._selected) > _SELECTED_CAP:
            self._selected.popitem(last=False)

    def _gather(self, batch: SpanBatch) -> None:
        """Collect the spans of `batch` that belong to chosen traces."""
        selected = self._selected
        if not selected:
            return
        by_trace: dict[str, list[Span]] = {}
        for i in [i for i, t in enumerate(batch.trace_ids) if t in selected]:
            s = batch.materialize(i)
            by_trace.setdefault(s.trace_id, []).append(s)
        waiting: dict[str, list[_Pending]] = {}
        for (_, trace_id), p in self._new.items():
            waiting.setdefault(trace_id, []).append(p)
        for trace_id, spans in by_trace.items():
            targets = [p.spans for p in waiting.get(trace_id, [])] or [self._late.setdefault(trace_id, {})]
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
        self._top = {kh: v for kh, v in self._top.items() if kh[1] >= newest - 2 * 3_600_000_000_000}
