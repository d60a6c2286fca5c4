"""Trace polling: cursor persisted in the store, duplicates skipped, backend errors survived."""

from __future__ import annotations

from pathlib import Path

from bot.ingest.pipeline import HOUR_NS, IngestPipeline
from bot.ingest.poller import TracePoller
from bot.spans import Span
from bot.store import SqliteStore
from tools.traces import TraceBackendUnavailable

T0 = 1_700_000_000 * 10**9 // HOUR_NS * HOUR_NS


class FakeTraceSource:
    """Stands in for Jaeger/Tempo: returns the traces that started in the asked window."""

    name = "fake"

    def __init__(self, traces: list[list[Span]]) -> None:
        self.traces = traces
        self.windows: list[tuple[int, int]] = []
        self.down = False

    async def fetch(self, start_ns: int, end_ns: int, limit: int) -> list[list[Span]]:
        if self.down:
            raise TraceBackendUnavailable("fake backend is down")
        self.windows.append((start_ns, end_ns))
        return [t for t in self.traces if start_ns <= t[0].start_ns <= end_ns][:limit]


def _trace(i: int, start: int) -> list[Span]:
    return [Span(f"{i:032x}", f"{i:016x}", None, "svc", "op", start, 10**6)]


async def test_cursor_survives_restart_and_duplicates_are_skipped(tmp_path: Path) -> None:
    clock = [T0 + 600 * 10**9]
    source = FakeTraceSource([_trace(1, T0 + 500 * 10**9), _trace(2, T0 + 590 * 10**9)])
    async with SqliteStore(tmp_path / "o.db") as store:
        poller = TracePoller(source, IngestPipeline(store), clock=lambda: clock[0])
        assert await poller.poll_once() == 1  # first poll looks back one overlap: trace 2 only
        clock[0] += 30 * 10**9
        assert await poller.poll_once() == 0  # overlap re-reads trace 2: skipped
        assert source.windows[-1][0] == T0 + 540 * 10**9
    source.traces.append(_trace(3, clock[0] + 5 * 10**9))
    clock[0] += 30 * 10**9
    async with SqliteStore(tmp_path / "o.db") as store:  # restart: new poller, same file
        poller = TracePoller(source, IngestPipeline(store), clock=lambda: clock[0])
        assert await poller.poll_once() == 1
        assert source.windows[-1][0] == T0 + 630 * 10**9  # resumed at the cursor, no overlap
        [row] = await store.load_aggregates(1, 0, 10**6)
    assert row.agg.count == 2


async def test_backend_down_raises_the_typed_error(tmp_path: Path) -> None:
    source = FakeTraceSource([])
    source.down = True
    async with SqliteStore(tmp_path / "o.db") as store:
        poller = TracePoller(source, IngestPipeline(store), clock=lambda: T0)
        try:
            await poller.poll_once()
        except TraceBackendUnavailable:
            pass
        else:
            raise AssertionError("expected TraceBackendUnavailable")
        assert await store.get_meta("poll_cursor_fake") is None  # cursor not advanced
