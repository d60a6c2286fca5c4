"""Polling Jaeger or Tempo for new traces, for systems that cannot push OTLP to us.

Each poll asks for traces that started since the stored cursor (minus an overlap,
since traces are indexed late), skips trace ids already ingested, and advances the
cursor in the store only after the spans were folded in, so a restart resumes
where the last good poll ended. The first poll after a restart starts at the
cursor itself (the ids seen before are gone), so it never counts a trace twice;
it may miss a trace indexed later than the overlap, which is the lesser harm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.ingest.pipeline import IngestPipeline
from bot.spans import Span, SpanBatch
from tools.traces import TraceBackendError
from tools.traces.jaeger import JaegerClient
from tools.traces.tempo import TempoClient

__all__ = ["TracePoller", "TraceSource", "source_from_settings"]

log = logging.getLogger(__name__)

_SEEN_CAP = 100_000


class TraceSource(Protocol):
    name: str

    async def fetch(self, start_ns: int, end_ns: int, limit: int) -> list[list[Span]]:
        """Traces (each a list of spans) that started in [start_ns, end_ns]."""
        ...


class JaegerSource:
    name = "jaeger"

    def __init__(self, client: JaegerClient) -> None:
        self.client = client

    async def fetch(self, start_ns: int, end_ns: int, limit: int) -> list[list[Span]]:
        traces: dict[str, list[Span]] = {}
        for service in await self.client.services():
            spans = await self.client.find_traces(
                service, start_ns=start_ns, end_ns=end_ns, limit=limit
            )
            for s in spans:
                traces.setdefault(s.trace_id, []).append(s)
        return list(traces.values())


class TempoSource:
    name = "tempo"

    def __init__(self, client: TempoClient) -> None:
        self.client = client

    async def fetch(self, start_ns: int, end_ns: int, limit: int) -> list[list[Span]]:
        found = await self.client.search(start_ns=start_ns, end_ns=end_ns, limit=limit)
        return [await self.client.get_trace(t.trace_id) for t in found]


def source_from_settings(jaeger_url: str | None, tempo_url: str | None) -> TraceSource | None:
    if jaeger_url:
        return JaegerSource(JaegerClient(jaeger_url))
    if tempo_url:
        return TempoSource(TempoClient(tempo_url))
    return None


class TracePoller:
    """Moves traces from a TraceSource into the pipeline, one window per poll."""

    def __init__(self, source: TraceSource, pipeline: IngestPipeline, *, limit: int = 500,
                 overlap_s: float = 60.0, clock: Callable[[], int] = time.time_ns) -> None:
        self.source = source
        self.pipeline = pipeline
        self.limit = limit
        self.overlap_ns = int(overlap_s * 1e9)
        self.clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._cursor_key = f"poll_cursor_{source.name}"

    async def poll_once(self) -> int:
        """One poll; returns the number of spans ingested. Raises TraceBackendError."""
        now = self.clock()
        stored = await self.pipeline.store.get_meta(self._cursor_key)
        if stored is None:
            start = now - self.overlap_ns
        else:
            start = int(stored) - (self.overlap_ns if self._seen else 0)
        traces = await self.source.fetch(start, now, self.limit)
        fresh = self._new_spans(traces)
        if fresh:
            await self.pipeline.ingest(SpanBatch.from_spans(fresh))
            await self.pipeline.flush()
        await self.pipeline.store.set_meta(self._cursor_key, str(now))
        return len(fresh)

    def _new_spans(self, traces: Sequence[list[Span]]) -> list[Span]:
        fresh: list[Span] = []
        for spans in traces:
            if not spans or spans[0].trace_id in self._seen:
                continue
            self._seen[spans[0].trace_id] = None
            fresh.extend(spans)
        while len(self._seen) > _SEEN_CAP:
            self._seen.popitem(last=False)
        return fresh

    async def run(self, interval_s: float) -> None:
        """Poll forever; a failing backend is logged and retried with backoff, never fatal."""
        delay = interval_s
        while True:
            try:
                n = await self.poll_once()
                log.debug("polled %s: %d new spans", self.source.name, n)
                delay = interval_s
            except TraceBackendError as exc:
                delay = min(delay * 2, 600.0)
                log.warning(
                    "polling %s failed: %s; next try in %.0fs", self.source.name, exc, delay
                )
            await asyncio.sleep(delay)
