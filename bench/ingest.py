"""Ingestion benchmark: OTLP protobuf decoding and full ingestion next to a bare protobuf parse.

For every request of a rotating pool it times (a) `ExportTraceServiceRequest.FromString`,
(b) `decode_traces_pb`, and (c) full ingestion: (b) plus `IngestPipeline.ingest` into a
temporary SQLite store and its periodic flushes. Memory stays bounded at any span count.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rich.console import Console
from rich.table import Table

from bench._otlp_payloads import PayloadPool
from bot.ingest.otlp import decode_traces_pb
from bot.ingest.pipeline import IngestPipeline
from bot.spans import RejectCounter
from bot.store import SqliteStore

__all__ = ["ingest_bench", "print_ingest_table", "process_memory_mib", "run_ingest_bench"]


def process_memory_mib() -> dict[str, float]:
    """Current and peak resident set size of this process, from /proc/self/status."""
    out = {"rss_mib": 0.0, "peak_rss_mib": 0.0}
    names = {"VmRSS:": "rss_mib", "VmHWM:": "peak_rss_mib"}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            fields = line.split()
            if fields and fields[0] in names:
                out[names[fields[0]]] = int(fields[1]) / 1024  # kB
    return out


@dataclass
class _Clock:
    bare: float = 0.0
    decode: float = 0.0
    ingest: float = 0.0
    flush: float = 0.0


async def _flush_timed(pipeline: IngestPipeline | None, clock: _Clock) -> None:
    if pipeline is not None:
        t = time.perf_counter()
        await pipeline.flush()
        clock.flush += time.perf_counter() - t


async def _run(pool: PayloadPool, n_spans: int, pipeline: IngestPipeline | None,
               flush_interval_s: float,
               progress: Callable[[int], None] | None) -> tuple[_Clock, int, int, int]:
    clock, rejects = _Clock(), RejectCounter()
    spans = requests = payload_bytes = 0
    last_flush = time.monotonic()
    for body, n in pool.payloads(n_spans):
        t0 = time.perf_counter()
        ExportTraceServiceRequest.FromString(body)
        t1 = time.perf_counter()
        batch = decode_traces_pb(body, rejects)
        t2 = time.perf_counter()
        if pipeline is not None:
            await pipeline.ingest(batch)
        t3 = time.perf_counter()
        clock.bare, clock.decode, clock.ingest = (clock.bare + t1 - t0, clock.decode + t2 - t1,
                                                  clock.ingest + t3 - t2)
        spans, requests, payload_bytes = spans + n, requests + 1, payload_bytes + len(body)
        del batch
        if time.monotonic() - last_flush >= flush_interval_s:  # what run_flusher does live
            await _flush_timed(pipeline, clock)
            last_flush = time.monotonic()
        if progress is not None:
            progress(spans)
    await _flush_timed(pipeline, clock)
    if rejects.total():
        raise AssertionError(f"benchmark payloads were rejected: {rejects.as_dict()}")
    return clock, spans, requests, payload_bytes


def _rate(spans: int, seconds: float, bare: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "spans_per_s": round(spans / seconds) if seconds else 0,
            "ratio_to_bare": round(seconds / bare, 2) if bare else 0.0}


async def ingest_bench(n_spans: int = 1_000_000, *, spans_per_request: int = 1000,
                       pool_size: int = 16, store_dir: Path | None = None,
                       with_store: bool = True, flush_interval_s: float = 5.0,
                       progress: Callable[[int], None] | None = None,
                       rss_at: Sequence[int] = (1_000_000, 5_000_000)) -> dict[str, Any]:
    """Run the benchmark; see `run_ingest_bench`."""
    start_memory = process_memory_mib()
    pool = PayloadPool(spans_per_request, pool_size)
    checkpoints = sorted(rss_at)
    rss_seen: dict[int, float] = {}

    def on_progress(done: int) -> None:
        while checkpoints and done >= checkpoints[0]:  # RSS as the span count passes each mark
            rss_seen[checkpoints.pop(0)] = round(process_memory_mib()["rss_mib"], 1)
        if progress is not None:
            progress(done)

    with tempfile.TemporaryDirectory(dir=store_dir) as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        await store.open()
        try:
            pipeline = IngestPipeline(store) if with_store else None
            clock, spans, requests, size = await _run(pool, n_spans, pipeline, flush_interval_s,
                                                      on_progress)
            stats = await store.stats()
        finally:
            await store.close()
    full = clock.decode + clock.ingest + clock.flush
    return {
        "spans": spans, "requests": requests, "spans_per_request": spans_per_request,
        "bytes_per_span": round(size / spans) if spans else 0,
        "bare_parse": _rate(spans, clock.bare, clock.bare),
        "decode": _rate(spans, clock.decode, clock.bare),
        "full": _rate(spans, full, clock.bare),
        "sink": "IngestPipeline + SQLite" if with_store else "none (decode only)",
        "pipeline_ingest_s": round(clock.ingest, 3), "pipeline_flush_s": round(clock.flush, 3),
        "store": {"series": stats.series, "aggregate_rows": stats.aggregate_rows,
                  "exemplar_traces": stats.exemplar_traces, "file_bytes": stats.file_bytes},
        "memory_mib": {"start_rss": round(start_memory["rss_mib"], 1),
                       **{k: round(v, 1) for k, v in process_memory_mib().items()}},
        "rss_mib_at_spans": rss_seen,
    }


def run_ingest_bench(n_spans: int = 1_000_000, **options: Any) -> dict[str, Any]:
    """Time bare parsing, decoding and full ingestion of `n_spans` OTLP protobuf spans.

    Options: spans_per_request (1000), pool_size (16 distinct requests, rotated with
    fresh trace ids and later times), store_dir (for the temporary SQLite file),
    with_store (False: decode only), flush_interval_s (5.0, as the service's default),
    progress (called with the span count after each request), rss_at (span counts at
    which to read the resident set size; those the run reaches are reported).
    """
    return asyncio.run(ingest_bench(n_spans, **options))


def print_ingest_table(result: dict[str, Any], console: Console | None = None) -> None:
    table = Table(title=f"OTLP ingestion: {result['spans']:,} spans in {result['requests']:,} "
                        f"requests of {result['spans_per_request']} "
                        f"({result['bytes_per_span']} B/span)")
    for column in ("stage", "seconds", "spans/s", "x bare parse"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for label, key in (("bare ParseFromString", "bare_parse"), ("decode_traces_pb", "decode"),
                       (f"full: decode + {result['sink']}", "full")):
        r = result[key]
        table.add_row(label, f"{r['seconds']:.2f}", f"{r['spans_per_s']:,}",
                      f"{r['ratio_to_bare']:.2f}")
    console = console or Console()
    console.print(table)
    mem = result["memory_mib"]
    console.print(
        f"pipeline ingest {result['pipeline_ingest_s']:.2f} s, "
        f"flush {result['pipeline_flush_s']:.2f} s; RSS {mem['rss_mib']:.0f} MiB "
        f"(peak {mem['peak_rss_mib']:.0f}, start {mem['start_rss']:.0f}); store {result['store']}")
    marks = ", ".join(f"{spans:,} spans: {rss:.0f} MiB"
                      for spans, rss in result["rss_mib_at_spans"].items())
    if marks:
        console.print(f"RSS after {marks}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--decode-only", action="store_true")
    parser.add_argument("--rss-at", default="1000000,5000000",
                        help="span counts at which to report RSS (comma-separated)")
    args = parser.parse_args()
    print_ingest_table(run_ingest_bench(args.spans, with_store=not args.decode_only,
                                        rss_at=[int(x) for x in args.rss_at.split(",") if x]))
