"""Exemplar picking and the columnar pieces under it: same store end state on the fast path,
aggregates equal to `LatencyAggregate` per group, batch id forms that agree."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from bot.ingest._deltas import Deltas, Groups
from bot.ingest.otlp import decode_traces_pb
from bot.ingest.pipeline import HOUR_NS, IngestPipeline
from bot.spans import RejectCounter, Span, SpanBatch, trace_id_hash
from bot.store import SqliteStore
from detectors.aggregate import LatencyAggregate
from tests._otlp_builders import T0, body, span


class _PlainStore(SqliteStore):
    """Without the one-transaction exemplar save: the picker makes the generic Store calls."""

    save_exemplars_kept = None  # type: ignore[assignment]


def _requests(rng: random.Random, n_requests: int) -> list[bytes]:
    """Traces whose root comes one request after its children (late spans), over two hours."""
    services = {"api": ["GET /a", "POST /b"], "db": ["query"], "cache": ["get", "set"]}
    carried: list[tuple[str, PbSpan]] = []
    out = []
    for r in range(n_requests):
        by_service: dict[str, list[PbSpan]] = {s: [] for s in services}
        for service, root in carried:
            by_service[service].append(root)
        carried = []
        for t in range(40):
            trace_id, start = os.urandom(16), T0 + (r * 40 + t) * 60 * 10**9 // 10
            root = span("GET /a", trace_id=trace_id, start=start,
                        duration=int(rng.lognormvariate(16, 1)) + 10**6)
            for _ in range(rng.randint(1, 4)):
                service = rng.choice(list(services))
                child = span(rng.choice(services[service]), trace_id=trace_id,
                             parent=root.span_id, start=start + 1000,
                             duration=int(rng.lognormvariate(15, 1.2)), kind=3,
                             code=rng.choice((0, 0, 0, 2)))
                by_service[service].append(child)
            carried.append(("api", root))
        out.append(body(*((s, spans) for s, spans in by_service.items() if spans)))
    return out


Rows = list[tuple[Any, ...]]


async def _run(store: SqliteStore, requests: list[bytes]) -> tuple[Rows, Rows]:
    await store.open()
    pipe = IngestPipeline(store, exemplars_per_key_hour=3, trace_buffer_spans=300,
                          clock=lambda: T0 + 30 * 24 * HOUR_NS)
    rejects = RejectCounter()
    for i, req in enumerate(requests):
        await pipe.ingest(decode_traces_pb(req, rejects))
        if i % 7 == 6:
            await pipe.flush()
        if i == 13:  # an anomaly pins the slowest kept trace of one key
            sid = (await store.get_series("db:query")).id  # type: ignore[union-attr]
            [slow] = await store.slowest_exemplars(sid, 0, 2**62, 1)
            await store.pin_traces([slow.trace_id])
    await pipe.flush()
    traces = await store._all("SELECT trace_id, series_id, hour_ns, duration_ns, start_ns, pinned"
                              " FROM exemplar_traces ORDER BY series_id, trace_id")
    spans = await store._all("SELECT trace_id, span_id, data FROM exemplar_spans"
                             " ORDER BY trace_id, span_id")
    await store.close()
    assert rejects.total() == 0
    return [tuple(r) for r in traces], [tuple(r) for r in spans]


async def test_one_transaction_save_leaves_what_the_generic_calls_leave(tmp_path: Path) -> None:
    requests = _requests(random.Random(11), 40)
    fast = await _run(SqliteStore(tmp_path / "fast.db"), requests)
    plain = await _run(_PlainStore(tmp_path / "plain.db"), requests)
    assert fast == plain
    traces, spans = fast
    assert len(traces) > 20 and any(pinned for *_, pinned in traces)
    assert {t for t, *_ in traces} == {t for t, *_ in spans}  # every kept trace has its spans
    assert len(spans) > 2 * len({t for t, *_ in traces})  # roots that came late are there


def test_deltas_fold_like_latency_aggregate_per_group() -> None:
    rng = np.random.default_rng(7)
    deltas = Deltas(capacity=2)
    expected: dict[tuple[int, int], LatencyAggregate] = {}
    for _ in range(3):  # the capacity grows, and slots repeat across batches
        n = 2000
        keys = rng.integers(0, 9, n)
        hours = rng.integers(470_000, 470_004, n)
        durs = rng.lognormal(15, 2, n).astype(np.int64)
        durs[:3] = 0  # below the log floor
        errs = rng.random(n) < 0.1
        deltas.add(Groups.of(keys, hours), durs, errs)
        for kh in set(zip(keys.tolist(), hours.tolist(), strict=True)):
            rows = (keys == kh[0]) & (hours == kh[1])
            agg = expected.setdefault(kh, LatencyAggregate())
            agg.add(durs[rows] / 1e6, errors=int(errs[rows].sum()))
    got = deltas.take()
    assert got.keys() == expected.keys() and len(deltas) == 0
    for kh, agg in expected.items():
        g = got[kh]
        assert (g.count, g.errors, g.min_ms, g.max_ms) == (agg.count, agg.errors, agg.min_ms,
                                                         agg.max_ms)
        assert g.hist.tolist() == agg.hist.tolist()
        assert g.sum_log == pytest.approx(agg.sum_log, rel=1e-12)
        assert g.sumsq_log == pytest.approx(agg.sumsq_log, rel=1e-12)
    assert deltas.take() == {}


def test_deltas_folded_later_are_bit_exact() -> None:
    """Batches are folded in several at a time; every sum must be the one a batch-by-batch
    fold gives (per batch a bincount in row order, added to the running total)."""
    rng = np.random.default_rng(11)
    deltas = Deltas()
    want: dict[tuple[int, int], list[float]] = {}
    taken: dict[tuple[int, int], LatencyAggregate] = {}
    for b in range(60):  # ~3 folds of 16k rows, and a take in between
        n = int(rng.integers(1, 1500))
        keys, hours = rng.integers(0, 30, n), rng.integers(470_000, 470_003, n)
        durs = rng.lognormal(15, 2, n).astype(np.int64)
        errs = rng.random(n) < 0.1
        groups = Groups.of(keys, hours)
        deltas.add(groups, durs, errs)
        logs = np.log(np.maximum(durs / 1e6, 1e-6))
        sums = np.stack((np.bincount(groups.group), np.bincount(groups.group, logs),
                         np.bincount(groups.group, logs * logs),
                         np.bincount(groups.group, errs)), axis=1)
        for kh, row in zip(zip(groups.keys.tolist(), groups.hours.tolist(), strict=True),
                           sums.tolist(), strict=True):
            acc = want.setdefault(kh, [0.0] * 4)
            for i, v in enumerate(row):
                acc[i] += v
        if b == 40:
            taken = deltas.take()
            assert {kh: [a.count, a.sum_log, a.sumsq_log, a.errors]
                    for kh, a in taken.items()} == want
            want = {}
    got = deltas.take()
    assert {kh: [a.count, a.sum_log, a.sumsq_log, a.errors] for kh, a in got.items()} == want
    assert taken and got and len(deltas) == 0


def test_groups_are_key_then_hour_and_stable() -> None:
    keys = np.array([2, 0, 2, 0, 1, 2])
    hours = np.array([5, 9, 4, 9, 5, 5])
    g = Groups.of(keys, hours)
    assert list(zip(g.keys.tolist(), g.hours.tolist(), strict=True)) == [(0, 9), (1, 5), (2, 4),
                                                                         (2, 5)]
    assert [g.rows(i).tolist() for i in range(len(g))] == [[1, 3], [4], [2], [0, 5]]


def test_protobuf_batch_forms_agree_with_full_spans() -> None:
    root = span("GET /a")
    child = span("query", trace_id=root.trace_id, parent=root.span_id, code=2)
    other = span("GET /a")
    batch = decode_traces_pb(body(("api", [root, other]), ("db", [child])), RejectCounter())
    full = [batch.materialize(i) for i in range(len(batch))]
    assert batch.keys == [s.key for s in full] == ["api:GET /a", "api:GET /a", "db:query"]
    names, codes = batch.key_codes()
    assert [names[c] for c in codes.tolist()] == batch.keys and len(names) == 2
    assert batch.trace_ids == [s.trace_id for s in full]
    assert [batch.trace_id(i) for i in range(3)] == batch.trace_ids
    assert batch.trace_id_hashes().tolist() == [trace_id_hash(s.trace_id) for s in full]
    for i, s in enumerate(full):
        span_id, build = batch.deferred(i)
        assert span_id == s.span_id and build() == s


def test_hashes_of_hex_and_other_ids() -> None:
    spans = [Span(t, "0" * 15 + "1", None, "svc", "op", T0, 10) for t in
             ("ab" * 16, "AB" * 16, "trace-7", "ab" * 15 + " a", "ab" * 16)]
    batch = SpanBatch.from_spans(spans)
    hashes = batch.trace_id_hashes().tolist()
    assert hashes == [trace_id_hash(s.trace_id) for s in spans]
    assert hashes[0] == hashes[4] == hashes[1]  # equal ids, equal hashes (case is compared later)
    span_id, build = batch.deferred(2)
    assert span_id == spans[2].span_id and build() is spans[2]
