"""The ingestion benchmark: its rotating payloads and its entry point (not its figures)."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench._otlp_payloads import PayloadPool
from bench.ingest import ingest_bench, process_memory_mib
from bot.ingest.otlp import decode_traces_pb
from bot.spans import RejectCounter


def _spans(body: bytes) -> list[tuple[bytes, int, int]]:
    req = ExportTraceServiceRequest.FromString(body)
    return [(s.trace_id, s.start_time_unix_nano, s.end_time_unix_nano)
            for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_each_round_has_new_traces_later_in_time() -> None:
    pool = PayloadPool(spans_per_request=200, pool_size=2)
    bodies = [b for b, n in pool.payloads(1000)]
    assert len(bodies) == 5
    first, again = _spans(bodies[0]), _spans(bodies[2])  # the same template, one round later
    assert len(first) == len(again) == 200
    assert not {t for t, _, _ in first} & {t for t, _, _ in again}
    assert all(s2 - s1 == e2 - e1 == pool.round_ns
               for (_, s1, e1), (_, s2, e2) in zip(first, again, strict=True))
    rejects = RejectCounter()
    assert len(decode_traces_pb(bodies[4], rejects)) == 200 and rejects.total() == 0


async def test_bench_reports_every_stage(tmp_path: Path) -> None:
    result = await ingest_bench(2000, spans_per_request=500, pool_size=2, store_dir=tmp_path,
                                rss_at=(1000, 1500, 10_000))
    assert (result["spans"], result["requests"]) == (2000, 4)
    for stage in ("bare_parse", "decode", "full"):
        assert result[stage]["spans_per_s"] > 0
    assert result["full"]["seconds"] >= result["decode"]["seconds"]
    assert result["store"]["series"] > 0 and result["store"]["exemplar_traces"] > 0
    assert 0 < result["memory_mib"]["rss_mib"] <= result["memory_mib"]["peak_rss_mib"]
    assert list(result["rss_mib_at_spans"]) == [1000, 1500]  # 10,000 was never reached
    assert all(rss > 0 for rss in result["rss_mib_at_spans"].values())
    assert process_memory_mib()["rss_mib"] > 0
