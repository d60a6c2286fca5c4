"""The OTLP/HTTP receiver under uvicorn, fed by the real OpenTelemetry SDK exporter and by httpx."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from bot.ingest.pipeline import IngestPipeline
from bot.ingest.receiver import SpanSink, otlp_routes
from bot.spans import MAX_ATTRIBUTE_VALUE_CHARS, RejectCounter, Span, SpanBatch, SpanKind
from bot.store import SqliteStore, StoreError
from tests._otlp_builders import body, kv, span
from tests.conftest import shared_path

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMIT = 4 * 1024 * 1024
PB, JSON = "application/x-protobuf", "application/json"


class RecordingSink:
    """Keeps every batch it is given; fails the next `fail_next` calls like a store that is down."""

    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []
        self.fail_next = 0

    async def ingest(self, batch: SpanBatch) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("database is locked")
        self.batches.append(batch)

    def spans(self) -> list[Span]:
        return [b.materialize(i) for b in self.batches for i in range(len(b))]


@dataclass
class Receiver:
    url: str
    sink: RecordingSink
    rejects: RejectCounter
    registry: CollectorRegistry
    headers: list[dict[str, str]] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@dataclass
class _Switch:
    """The ASGI app uvicorn serves: each test plugs in its own receiver; headers are recorded."""

    app: Starlette | None = None
    headers: list[dict[str, str]] = field(default_factory=list)

    def plug(self, sink: SpanSink, rejects: RejectCounter, registry: CollectorRegistry,
             headers: list[dict[str, str]]) -> None:
        routes = otlp_routes(sink, rejects, LIMIT, registry=registry, retry_after_s=1)
        self.app, self.headers = Starlette(routes=routes), headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        assert self.app is not None
        await self.app(scope, receive, send)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[tuple[str, _Switch]]:
    """One uvicorn on a free 127.0.0.1 port, in the tests' event loop (sinks may use it)."""
    switch = _Switch()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(switch, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces", switch
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(loop_scope="module")
async def receiver(server: tuple[str, _Switch]) -> Receiver:
    url, switch = server
    r = Receiver(url, RecordingSink(), RejectCounter(), CollectorRegistry())
    switch.plug(r.sink, r.rejects, r.registry, r.headers)
    return r


# -- the real SDK exporter -------------------------------------------------------------


def _traced_checkout(url: str, compression: Compression, batch: bool) -> list[ReadableSpan]:
    """Nested spans through the SDK, exported over HTTP; returns what the SDK recorded."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout",
                                                        "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = OTLPSpanExporter(endpoint=url, compression=compression, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch
                                else SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.checkout", "2.0")
    kinds = trace.SpanKind
    with tracer.start_as_current_span("POST /checkout", kind=kinds.SERVER,
                                      attributes={"http.route": "/checkout", "http.status": 200}):
        with tracer.start_as_current_span("charge", kind=kinds.CLIENT,
                                          attributes={"amount": 12.5, "retry": False}) as charge:
            charge.set_status(Status(StatusCode.ERROR, "card declined"))
            with tracer.start_as_current_span("sign", kind=kinds.INTERNAL):
                pass
        with tracer.start_as_current_span("publish", kind=kinds.PRODUCER,
                                          attributes={"tags": ["a", "b"]}):
            pass
    provider.force_flush()
    provider.shutdown()
    return list(memory.get_finished_spans())


def _assert_same_spans(got: list[Span], sent: list[ReadableSpan]) -> None:
    assert len(got) == len(sent) == 4
    by_id = {s.span_id: s for s in got}
    for s in sent:
        ctx = s.context
        assert ctx is not None and s.start_time is not None and s.end_time is not None
        g = by_id[f"{ctx.span_id:016x}"]
        assert g.trace_id == f"{ctx.trace_id:032x}"
        assert g.parent_id == (f"{s.parent.span_id:016x}" if s.parent else None)
        assert (g.service, g.operation) == ("checkout", s.name)
        assert g.kind == SpanKind[s.kind.name]  # OTLP numbers kinds differently from the API
        assert (g.start_ns, g.duration_ns) == (s.start_time, s.end_time - s.start_time)
        assert g.error == (s.status.status_code is StatusCode.ERROR)
        assert {k: v for k, v in g.attributes.items() if not k.startswith("otel.")} == {
            k: list(v) if isinstance(v, tuple) else v for k, v in (s.attributes or {}).items()}
        assert g.attributes["otel.scope.name"] == "tests.checkout"
        assert g.resource["deployment.environment"] == "test"
        assert g.resource["telemetry.sdk.language"] == "python"
    charge = next(s for s in got if s.operation == "charge")
    assert charge.status_message == "card declined"


@pytest.mark.parametrize(("compression", "batch"), [(Compression.NoCompression, False),
                                                    (Compression.Gzip, True),
                                                    (Compression.Deflate, True)])
async def test_sdk_exporter_delivers_exactly_its_spans(receiver: Receiver, compression: Compression,
                                                       batch: bool) -> None:
    sent = await asyncio.to_thread(_traced_checkout, receiver.url, compression, batch)
    _assert_same_spans(receiver.sink.spans(), sent)
    assert len(receiver.sink.batches) == (1 if batch else 4)
    assert {h["content-type"] for h in receiver.headers} == {PB}
    encodings = {h.get("content-encoding") for h in receiver.headers}
    assert encodings == ({None} if compression is Compression.NoCompression
                         else {compression.value})
    assert receiver.metric("opsbot_otlp_requests_total", code="200") == len(receiver.headers)
    assert receiver.metric("opsbot_otlp_spans_received_total") == 4
    assert receiver.rejects.total() == 0


async def test_sdk_exporter_retries_after_503_and_nothing_is_lost(receiver: Receiver) -> None:
    receiver.sink.fail_next = 1
    sent = await asyncio.to_thread(_traced_checkout, receiver.url, Compression.Gzip, True)
    _assert_same_spans(receiver.sink.spans(), sent)  # stored once, by the retry
    assert receiver.metric("opsbot_otlp_requests_total", code="503") == 1
    assert receiver.metric("opsbot_otlp_requests_total", code="200") == 1
    assert receiver.metric("opsbot_otlp_spans_received_total") == 4  # not counted twice


async def test_sink_failure_is_503_with_retry_after(receiver: Receiver) -> None:
    receiver.sink.fail_next = 1
    async with httpx.AsyncClient() as client:
        partly_bad = _pb_with(span("neg", duration=-1))
        r = await client.post(receiver.url, content=partly_bad, headers={"content-type": PB})
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
    assert RpcStatus.FromString(r.content).code == 14  # UNAVAILABLE
    assert receiver.rejects.total() == 0  # the exporter will send it again; count it then


# -- OTLP/JSON as recorded by other projects ---------------------------------------------

_JSON_FIXTURES = [
    ("otel-proto", "trace.json"),
    ("jaeger",
     "cmd__jaeger__internal__extension__jaegerquery__internal__fixture__otlp2jaeger-in.json"),
    ("jaeger-ui", "utils__fixtures__otlp2jaeger-in.json"),
    ("jaeger-ui", "utils__fixtures__otlp2jaeger-multi-in-combined.json"),
    ("jaeger", "internal__storage__v2__memory__fixtures__otel_traces_01.json"),
    ("jaeger", "internal__storage__integration__fixtures__traces__example_trace.json"),
]


def _expected_from_file(path: Path) -> list[dict[str, Any]]:
    """The file's spans, read plainly with `json`: what every decoded field must equal."""
    out = []
    for rs in json.loads(path.read_text())["resourceSpans"]:
        service = next(a["value"]["stringValue"] for a in rs["resource"]["attributes"]
                       if a["key"] == "service.name")
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                start = int(s["startTimeUnixNano"])
                out.append({"trace_id": s["traceId"].lower(), "span_id": s["spanId"].lower(),
                            "parent_id": s.get("parentSpanId", "").lower() or None,
                            "service": service, "operation": s["name"], "start_ns": start,
                            "duration_ns": int(s["endTimeUnixNano"]) - start,
                            "kind": s.get("kind", 0),
                            "error": s.get("status", {}).get("code") == 2})
    return out


@pytest.mark.parametrize(("folder", "name"), _JSON_FIXTURES)
async def test_real_otlp_json_payloads(receiver: Receiver, folder: str, name: str) -> None:
    path = shared_path("jaeger", folder, name)
    async with httpx.AsyncClient() as client:
        r = await client.post(receiver.url, content=path.read_bytes(),
                              headers={"content-type": JSON})
    assert (r.status_code, r.headers["content-type"], r.json()) == (200, JSON, {})
    got = [{**s.to_dict(), "kind": int(s.kind)} for s in receiver.sink.spans()]
    expected = _expected_from_file(path)
    assert [{k: g[k] for k in expected[0]} for g in got] == expected


# -- every bad-input class --------------------------------------------------------------


def _pb_with(*spans: Any) -> bytes:
    return body(("api", [span("ok"), *spans]))


def _json_with(**over: Any) -> bytes:
    good = {"traceId": "0102030405060708090a0b0c0d0e0f10", "name": "x",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000001000"}
    spans = [{**good, "spanId": "0102030405060708"}, {**good, "spanId": "1112131415161718", **over}]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def _huge_attribute() -> bytes:
    s = span("big")
    s.attributes.append(kv("payload", "z" * 2_000_000))
    return _pb_with(s)


_PARTIAL = [
    ("negative duration", PB, _pb_with(span("neg", duration=-1)), "negative_duration"),
    ("missing name", PB, _pb_with(span("")), "missing_field"),
    ("unknown kind", PB, _pb_with(span("k", kind=42)), "unknown_enum"),
    ("bad id length", PB, _pb_with(span("i", trace_id=b"\x01" * 8)), "bad_id"),
    ("invalid utf-8", PB, _pb_with(span("BAD_")).replace(b"BAD_", b"B\xffD_"), "invalid_utf8"),
    ("NaN time", JSON, _json_with(endTimeUnixNano="NaN"), "nan_duration"),
    ("missing trace id", JSON, _json_with(traceId=""), "missing_field"),
    ("unknown status", JSON, _json_with(status={"code": "STATUS_CODE_MAYBE"}), "unknown_enum"),
    ("invalid utf-8", JSON, _json_with(name="BAD_").replace(b"BAD_", b"B\xffD_"), "invalid_utf8"),
]


@pytest.mark.parametrize(("what", "ctype", "payload", "reason"), _PARTIAL,
                         ids=[f"{c[0]} ({c[1].split('/')[1]})" for c in _PARTIAL])
async def test_partly_bad_is_200_with_partial_success(receiver: Receiver, what: str, ctype: str,
                                                      payload: bytes, reason: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(receiver.url, content=payload, headers={"content-type": ctype})
    assert (r.status_code, r.headers["content-type"]) == (200, ctype)
    if ctype == PB:
        partial = ExportTraceServiceResponse.FromString(r.content).partial_success
        rejected, message = partial.rejected_spans, partial.error_message
    else:
        partial_json = r.json()["partialSuccess"]
        rejected, message = int(partial_json["rejectedSpans"]), partial_json["errorMessage"]
    assert rejected == 1 and reason in message
    assert receiver.rejects.as_dict() == {reason: 1}
    assert receiver.metric("opsbot_otlp_spans_rejected_total", reason=reason) == 1
    assert receiver.metric("opsbot_otlp_spans_received_total") == 2
    assert len(receiver.sink.spans()) == 1


async def test_megabyte_attribute_is_truncated_and_the_span_kept(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(receiver.url, content=_huge_attribute(), headers={"content-type": PB})
    assert r.status_code == 200 and not ExportTraceServiceResponse.FromString(r.content).HasField(
        "partial_success")
    big = receiver.sink.spans()[1]
    assert big.attributes["payload"] == "z" * MAX_ATTRIBUTE_VALUE_CHARS + "...[truncated]"


def _bomb() -> bytes:
    out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    return b"".join([*(out.compress(chunk) for _ in range(32)), out.flush()])  # 32 MiB of zeros


_REFUSED: list[tuple[str, str, Callable[[], bytes], dict[str, str], int, str]] = [
    ("garbage protobuf", PB, lambda: b"\xff\xff\xff\xff", {}, 400, "not an OTLP"),
    ("garbage json", JSON, lambda: b"{nope", {}, 400, "not valid JSON"),
    ("json array", JSON, lambda: b"[]", {}, 400, "expected a JSON object"),
    ("over the limit", PB, lambda: bytes(LIMIT + 1), {}, 413, "limit"),
    ("gzip bomb", PB, _bomb, {"content-encoding": "gzip"}, 413, "inflates past"),
    ("broken gzip", PB, lambda: gzip.compress(b"x" * 100)[:15], {"content-encoding": "gzip"},
     400, "gzip"),
    ("not gzip at all", JSON, lambda: b"{}", {"content-encoding": "gzip"}, 400, "not valid gzip"),
    ("unsupported encoding", PB, lambda: b"", {"content-encoding": "br"}, 415, "br"),
    ("unsupported type", "text/plain", lambda: b"hello", {}, 415, "Content-Type"),
]


@pytest.mark.parametrize(("what", "ctype", "make", "headers", "status", "message"), _REFUSED,
                         ids=[c[0] for c in _REFUSED])
async def test_refused_requests(receiver: Receiver, what: str, ctype: str,
                                make: Callable[[], bytes], headers: dict[str, str], status: int,
                                message: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(receiver.url, content=make(),
                              headers={"content-type": ctype, **headers})
    assert r.status_code == status
    if ctype == PB:
        assert r.headers["content-type"] == PB
        assert message in RpcStatus.FromString(r.content).message
    else:
        assert r.headers["content-type"] == JSON and message in r.json()["message"]
    assert receiver.sink.batches == []
    assert receiver.metric("opsbot_otlp_requests_total", code=str(status)) == 1
    expected = {"malformed": 1} if status == 400 and "gzip" not in message else {}
    assert receiver.rejects.as_dict() == expected


async def test_body_streamed_past_the_limit_is_cut_off(receiver: Receiver) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 65536 + 2):
            yield bytes(65536)

    async with httpx.AsyncClient() as client:
        r = await client.post(receiver.url, content=chunks(), headers={"content-type": PB})
    assert "content-length" not in receiver.headers[0]
    assert r.status_code == 413 and RpcStatus.FromString(r.content).code == 8


async def test_only_post(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(receiver.url)).status_code == 405


# -- end to end: SDK -> receiver -> ingest pipeline -> SQLite ---------------------------


async def test_sdk_spans_land_in_the_sqlite_store(server: tuple[str, _Switch],
                                                  tmp_path: Path) -> None:
    url, switch = server
    rejects = RejectCounter()
    async with SqliteStore(tmp_path / "opsbot.db") as store:
        pipeline = IngestPipeline(store, rejects)
        switch.plug(pipeline, rejects, CollectorRegistry(), [])
        sent = await asyncio.to_thread(_traced_checkout, url, Compression.Gzip, True)
        async with httpx.AsyncClient() as client:
            r = await client.post(url, content=_json_with(endTimeUnixNano="NaN"),
                                  headers={"content-type": JSON})
        assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
        await pipeline.flush()
        names = [s.name for s in await store.list_series("span")]
        assert names == ["checkout:POST /checkout", "checkout:charge", "checkout:publish",
                         "checkout:sign", "unknown_service:x"]
        charge = await store.get_series("checkout:charge")
        assert charge is not None
        (row,) = await store.load_aggregates(charge.id, 0, 10**6)
        assert (row.agg.count, row.agg.errors) == (1, 1)
        context = sent[0].context
        assert context is not None
        _assert_same_spans(await store.get_trace(f"{context.trace_id:032x}"), sent)
        assert await store.rejects() == {"nan_duration": 1}
