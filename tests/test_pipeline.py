"""The ingest pipeline: aggregates equal numpy over the raw spans, bounded store, exemplars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.ingest.pipeline import HOUR_NS, IngestPipeline
from bot.spans import RejectCounter, Span, SpanBatch
from bot.store import SqliteStore

T0 = 1_700_000_000 * 10**9 // HOUR_NS * HOUR_NS  # an hour boundary in Nov 2023


def _traces(rng: np.random.Generator, n: int, hour: int = 0, slow_every: int = 0) -> list[Span]:
    """n two-span traces (server span + db child) inside one hour."""
    spans = []
    for i in range(n):
        tid = f"{rng.integers(1 << 62):032x}"
        start = T0 + hour * HOUR_NS + int(rng.integers(0, HOUR_NS - 10**9))
        child = int(rng.lognormal(np.log(2e6), 0.5))
        if slow_every and i % slow_every == 0:
            child *= 100
        root = child + int(rng.integers(10**5, 10**6))
        spans.append(Span(tid, f"{2 * i:016x}", None, "api", "GET /orders", start, root))
        spans.append(
            Span(tid, f"{2 * i + 1:016x}", f"{2 * i:016x}", "db", "query", start + 1000, child)
        )
    return spans


async def _ingest(path: Path, spans: list[Span], chunk: int = 500, **kw: object) -> IngestPipeline:
    store = SqliteStore(path)
    await store.open()
    pipe = IngestPipeline(store, **kw)  # type: ignore[arg-type]
    for i in range(0, len(spans), chunk):
        await pipe.ingest(SpanBatch.from_spans(spans[i : i + chunk]))
    await pipe.flush()
    return pipe


async def test_aggregates_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    spans = _traces(rng, 2000) + _traces(rng, 1000, hour=1)
    pipe = await _ingest(tmp_path / "o.db", spans)
    sid = (await pipe.store.get_series("db:query")).id  # type: ignore[union-attr]
    rows = await pipe.store.load_aggregates(sid, 0, 10**6)
    assert [r.agg.count for r in rows] == [2000, 1000]
    db0 = np.array([s.duration_ns for s in spans[:4000] if s.service == "db"]) / 1e6
    assert rows[0].agg.sum_log == pytest.approx(np.log(db0).sum())
    assert rows[0].agg.std_log == pytest.approx(np.log(db0).std(), rel=1e-9)
    assert rows[0].agg.quantile(0.99) == pytest.approx(np.quantile(db0, 0.99), rel=0.07)
    await pipe.store.close()


async def test_store_size_follows_keys_and_hours_not_spans(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    small = await _ingest(tmp_path / "a.db", _traces(rng, 500), exemplars_per_key_hour=3)
    big = await _ingest(tmp_path / "b.db", _traces(rng, 20_000), exemplars_per_key_hour=3)
    sa, sb = await small.store.stats(), await big.store.stats()
    assert (sa.series, sa.aggregate_rows) == (sb.series, sb.aggregate_rows) == (2, 2)
    assert sb.exemplar_traces <= 2 * 3
    for p in (small, big):
        await p.store.close()


async def test_exemplars_are_the_slowest_with_whole_trace(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    spans = _traces(rng, 3000, slow_every=700)  # 5 very slow db children
    pipe = await _ingest(tmp_path / "o.db", spans, exemplars_per_key_hour=3)
    sid = (await pipe.store.get_series("db:query")).id  # type: ignore[union-attr]
    kept = await pipe.store.slowest_exemplars(sid, 0, 2**62, 10)
    expected = sorted((s.duration_ns for s in spans if s.service == "db"), reverse=True)[:3]
    assert [t.duration_ns for t in kept] == expected
    trace = await pipe.store.get_trace(kept[0].trace_id)
    assert {s.service for s in trace} == {"api", "db"}  # the parent came along
    await pipe.store.close()


async def test_late_spans_of_a_chosen_trace_are_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    spans = _traces(rng, 1)
    child, root = spans[1], spans[0]
    store = SqliteStore(tmp_path / "o.db")
    await store.open()
    pipe = IngestPipeline(store, exemplars_per_key_hour=1)
    await pipe.ingest(SpanBatch.from_spans([child]))
    await pipe.flush()
    await pipe.ingest(SpanBatch.from_spans([root]))  # parent arrives in a later export
    await pipe.flush()
    got = {s.span_id for s in await store.get_trace(child.trace_id)}
    assert got == {child.span_id, root.span_id}
    await store.close()


async def test_corrupting_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    starts, durs = [T0, T0, -5, T0], [5_000_000, -1, 10, 10**17]
    batch = SpanBatch.from_spans(
        [
            Span(f"{i:032x}", f"{i:016x}", None, "svc", "op", s, d)
            for i, (s, d) in enumerate(zip(starts, durs, strict=True))
        ]
    )
    rejects = RejectCounter()
    pipe = await _ingest(tmp_path / "o.db", [], rejects=rejects)
    await pipe.ingest(batch)
    await pipe.flush()
    assert rejects.as_dict() == {"bad_timestamp": 1, "duration_too_long": 1, "negative_duration": 1}
    assert await pipe.store.rejects() == rejects.as_dict()
    [row] = await pipe.store.load_aggregates(1, 0, 10**6)
    assert row.agg.count == 1
    await pipe.store.close()


async def test_series_cap_rejects_new_keys(tmp_path: Path) -> None:
    spans = [
        Span("a" * 32, f"{i:016x}", None, "svc", f"GET /item/{i}", T0, 10**6) for i in range(10)
    ]
    rejects = RejectCounter()
    pipe = await _ingest(tmp_path / "o.db", spans, max_series=4, rejects=rejects)
    assert len(pipe.keys) == 4
    assert rejects.as_dict() == {"series_limit": 6}
    await pipe.store.close()


class _FlakyStore(SqliteStore):
    fail = True

    async def add_aggregates(self, rows):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail = False
            raise OSError("disk full")
        await super().add_aggregates(rows)


async def test_failed_flush_loses_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    store = _FlakyStore(tmp_path / "o.db")
    await store.open()
    pipe = IngestPipeline(store)
    await pipe.ingest(SpanBatch.from_spans(_traces(rng, 100)))
    with pytest.raises(OSError):
        await pipe.flush()
    await pipe.ingest(SpanBatch.from_spans(_traces(rng, 50)))
    await pipe.flush()
    sid = (await store.get_series("api:GET /orders")).id  # type: ignore[union-attr]
    [row] = await store.load_aggregates(sid, 0, 10**6)
    assert row.agg.count == 150
    await store.close()
