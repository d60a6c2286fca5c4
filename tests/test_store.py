"""The SQLite store: migrations, version refusal, transactions, aggregates and exemplars."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bot.spans import Span
from bot.store import AggregateRow, ExemplarTrace, SqliteStore, StoreError, StoreVersionError
from bot.store import migrations as mig
from detectors.aggregate import LatencyAggregate


def _agg(values: list[float]) -> LatencyAggregate:
    a = LatencyAggregate()
    a.add(np.array(values))
    return a


async def test_fresh_file_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "a" / "o.db") as store:
        (mode,) = await store._one("PRAGMA journal_mode")
        (fk,) = await store._one("PRAGMA foreign_keys")
        (version,) = await store._one("PRAGMA user_version")
    assert (mode, fk, version) == ("wal", 1, mig.SCHEMA_VERSION)


async def test_old_file_is_upgraded_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "o.db"
    async with SqliteStore(path) as store:
        ids = await store.touch_series({"api:GET /": (1, 2)}, "span")
    v2 = "ALTER TABLE series ADD COLUMN owner TEXT NOT NULL DEFAULT 'unknown';"
    monkeypatch.setattr("bot.store.sqlite.MIGRATIONS", [*mig.MIGRATIONS, v2])
    monkeypatch.setattr("bot.store.sqlite.SCHEMA_VERSION", mig.SCHEMA_VERSION + 1)
    async with SqliteStore(path) as store:
        (version,) = await store._one("PRAGMA user_version")
        rows = await store._all("SELECT id, owner FROM series")
    assert version == mig.SCHEMA_VERSION + 1
    assert [tuple(r) for r in rows] == [(ids["api:GET /"], "unknown")]


async def test_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={mig.SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(StoreVersionError, match="Upgrade opsbot"):
        await SqliteStore(path).open()


async def test_not_a_database_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        await SqliteStore(path).open()


async def test_aggregates_merge_additively(tmp_path: Path) -> None:
    a, b = [1.0, 2.0, 400.0], [0.5, 3.0]
    async with SqliteStore(tmp_path / "o.db") as store:
        sid = (await store.touch_series({"k:op": (10, 20)}, "span"))["k:op"]
        await store.add_aggregates([AggregateRow(sid, 100, 5, _agg(a))])
        await store.add_aggregates([AggregateRow(sid, 100, 5, _agg(b))])
        [row] = await store.load_aggregates(sid, 0, 200)
    whole = _agg(a + b)
    assert row.agg.count == 5
    assert row.agg.sum_log == pytest.approx(whole.sum_log)
    assert row.agg.sumsq_log == pytest.approx(whole.sumsq_log)
    assert (row.agg.min_ms, row.agg.max_ms) == (0.5, 400.0)
    assert np.array_equal(row.agg.hist, whole.hist)


async def test_touch_series_widens_seen_range(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "o.db") as store:
        await store.touch_series({"svc:op": (100, 200)}, "span")
        await store.touch_series({"svc:op": (50, 150)}, "span")
        info = await store.get_series("svc:op")
    assert info is not None
    got = (info.service, info.operation, info.first_seen_ns, info.last_seen_ns)
    assert got == ("svc", "op", 50, 200)


def _span(trace: str, sid: str, dur: int, parent: str | None = None) -> Span:
    return Span(trace, sid, parent, "svc", "op", 1_000, dur)


async def test_exemplars_trim_pin_and_prune(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "o.db") as store:
        sid = (await store.touch_series({"svc:op": (1, 2)}, "span"))["svc:op"]
        traces = [
            ExemplarTrace(
                f"{i:032x}", sid, 0, dur, start_ns=1_000 * i,
                spans=[_span(f"{i:032x}", f"{i:016x}", dur)],
            )
            for i, dur in enumerate([5, 50, 20, 40, 10], start=1)
        ]
        await store.save_exemplars(traces)
        await store.pin_traces([traces[0].trace_id])  # the fastest, but part of an anomaly
        assert await store.trim_exemplars(sid, 0, keep=2) == 2
        kept = await store.slowest_exemplars(sid, 0, 10**9, 10)
        assert [t.duration_ns for t in kept] == [50, 40, 5]
        spans = await store.get_trace(traces[1].trace_id)
        assert [s.duration_ns for s in spans] == [50]
        # unpinned older than 2_500 go; the pinned one survives a later cut-off
        assert await store.prune_exemplars(unpinned_before_ns=2_500, pinned_before_ns=0) == 1
        assert [t.duration_ns for t in await store.slowest_exemplars(sid, 0, 10**9, 10)] == [40, 5]
        (n_spans,) = await store._one("SELECT count(*) FROM exemplar_spans")
    assert n_spans == 2  # spans of deleted traces cascade away


async def test_rejects_accumulate(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "o.db") as store:
        await store.add_rejects({"malformed": 2})
        await store.add_rejects({"malformed": 1, "nan_duration": 4})
        assert await store.rejects() == {"malformed": 3, "nan_duration": 4}


def test_crash_mid_write_leaves_previous_state(tmp_path: Path) -> None:
    """A process killed inside a write transaction leaves no partial rows behind."""
    path = tmp_path / "o.db"
    script = textwrap.dedent(f"""
        import asyncio, os, numpy as np
        from bot.store import SqliteStore, AggregateRow
        from detectors.aggregate import LatencyAggregate
        import bot.store.sqlite as sq

        async def main():
            store = SqliteStore({str(path)!r})
            await store.open()
            sid = (await store.touch_series({{"k:op": (1, 2)}}, "span"))["k:op"]
            a = LatencyAggregate(); a.add(np.array([1.0, 2.0]))
            await store.add_aggregates([AggregateRow(sid, 1, 1, a)])
            orig = sq._agg_to_db
            calls = []
            def dying(agg):
                calls.append(1)
                if len(calls) == 50:
                    os._exit(9)  # the crash, halfway through a 100-row write
                return orig(agg)
            sq._agg_to_db = dying
            await store.add_aggregates([AggregateRow(sid, 2, h % 24, a) for h in range(100)])
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert proc.returncode == 9
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT day, count FROM aggregates").fetchall() == [(1, 2)]
