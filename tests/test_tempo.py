"""TempoClient against a real HTTP server answering in Tempo's shapes, built from real OTLP JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.ingest.otlp import spans_from_otlp_json
from bot.spans import RejectCounter, Span
from tests.conftest import shared_path
from tests.trace_standins import Script, TempoStandIn, otlp_traces_in
from tools.traces import InvalidQueryError, TraceFormatError, TraceNotFoundError
from tools.traces.tempo import TempoClient, TraceSummary, search_params, traceql

SOURCES = [
    ("otel-proto", "trace.json"),
    ("jaeger",
     "cmd__jaeger__internal__extension__jaegerquery__internal__fixture__otlp2jaeger-in.json"),
    ("jaeger-ui", "utils__fixtures__otlp2jaeger-multi-in-combined.json"),
    ("jaeger", "internal__storage__integration__fixtures__traces__example_trace.json"),
    ("jaeger", "internal__storage__v2__memory__fixtures__otel_traces_01.json"),
]
TELEMETRYGEN = "83a9efd15c1c98a977e0711cc93ee28b"
EXAMPLE = "0" * 30 + "11"  # Tempo's search writes it as "11"
MULTI = "c620759e5d60fafb8ee0922b30e06bc6"


def _paths() -> list[Path]:
    return [shared_path("jaeger", *parts) for parts in SOURCES]


def _direct(trace_id: str) -> list[Span]:
    """The spans of one trace, decoded straight from the source files (no HTTP, no Tempo)."""
    spans = [s for p in _paths() for s in spans_from_otlp_json(_load(p), RejectCounter())]
    return [s for s in spans if s.trace_id == trace_id]


def _load(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def standin() -> Iterator[TempoStandIn]:
    server = TempoStandIn(otlp_traces_in(_paths())).start()
    yield server
    server.stop()


@pytest.fixture
def tempo(standin: TempoStandIn) -> TempoStandIn:
    standin.script = Script()
    standin.shape, standin.base64_ids, standin.search_extra = "batches", False, []
    return standin


def _client(url: str, **kw: object) -> TempoClient:
    return TempoClient(url, **{"timeout_s": 2.0, "backoff_s": 0.01, **kw})  # type: ignore[arg-type]


async def test_search_sends_traceql_and_seconds(tempo: TempoStandIn) -> None:
    async with _client(tempo.url) as client:
        found = await client.search("telemetrygen", start_ns=1_706_678_900_500_000_000,
                                    end_ns=1_706_678_910_000_000_001, limit=7)
    assert tempo.script.requests[-1] == ("/api/search", {
        "q": '{ resource.service.name = "telemetrygen" }', "start": "1706678900",
        "end": "1706678911", "limit": "7"})
    assert found == [TraceSummary(TELEMETRYGEN, "telemetrygen", "okey-dokey-0",
                                  1_706_678_909_209_712_000, 0.0)]  # 123 us: durationMs left out


async def test_search_pads_ids_and_reads_durations(tempo: TempoStandIn) -> None:
    async with _client(tempo.url) as client:
        found = {s.trace_id: s for s in await client.search(start_ns=1, end_ns=2 * 10**18)}
    assert tempo.script.requests[-1][1]["q"] == "{}"
    assert EXAMPLE in found and found[EXAMPLE].root_service.startswith("example-service")
    assert found[MULTI].duration_ms == 176.0 and found[MULTI].root_operation == "main"
    assert found[MULTI].start_ns == 1_711_138_246_940_000_000


async def test_search_in_tags_mode(tempo: TempoStandIn) -> None:
    async with _client(tempo.url, language="tags") as client:
        found = await client.search("example-trace", start_ns=1, end_ns=2 * 10**18,
                                    min_duration_ns=100_000_000)
    params = tempo.script.requests[-1][1]
    assert params["tags"] == "service.name=example-trace" and params["minDuration"] == "100ms"
    assert [s.trace_id for s in found] == [MULTI]


async def test_malformed_search_hits_are_counted(tempo: TempoStandIn) -> None:
    tempo.search_extra = [{"traceID": "zz"}, "x",
                          {"traceID": "ab", "startTimeUnixNano": "12", "durationMs": "fast"}]
    async with _client(tempo.url) as client:
        found = await client.search(start_ns=1, end_ns=2 * 10**18)
    assert len(found) == 6 and client.rejects.as_dict() == {"bad_id": 1, "malformed": 2}


@pytest.mark.parametrize(("shape", "v2", "b64"), [
    ("batches", False, False), ("resourceSpans", False, False), ("batches", True, False),
    ("batches", False, True)], ids=["batches", "resourceSpans", "v2-trace", "base64-ids"])
async def test_get_trace_in_every_shape(tempo: TempoStandIn, shape: str, v2: bool,
                                        b64: bool) -> None:
    tempo.shape, tempo.base64_ids = shape, b64
    async with _client(tempo.url, v2_trace_api=v2) as client:
        spans = await client.get_trace(MULTI)
    assert tempo.script.requests[-1][0] == ("/api/v2/traces/" if v2 else "/api/traces/") + MULTI
    assert spans == _direct(MULTI)
    assert len(spans) == 4 and client.rejects.total() == 0


async def test_search_then_fetch_with_tempos_short_id(tempo: TempoStandIn) -> None:
    async with _client(tempo.url) as client:
        hits = await client.search(start_ns=1, end_ns=2 * 10**18)
        hit = next(h for h in hits if h.root_service == "example-service-2")
        spans = await client.get_trace(hit.trace_id.lstrip("0"))
    assert hit.trace_id == EXAMPLE
    assert {s.service for s in spans} == {f"example-service-{i}" for i in (1, 2, 3)}
    assert spans == _direct(EXAMPLE)


async def test_unknown_trace_is_not_found(tempo: TempoStandIn) -> None:
    async with _client(tempo.url) as client:
        with pytest.raises(TraceNotFoundError) as err:
            await client.get_trace("deadbeef")
    assert "deadbeef" in str(err.value) and err.value.status == 404


async def test_502s_are_retried(tempo: TempoStandIn) -> None:
    tempo.script.fail_next, tempo.script.fail_status = 2, 502
    async with _client(tempo.url, retries=2) as client:
        assert len(await client.get_trace(TELEMETRYGEN)) == 2
    assert len(tempo.script.requests) == 3


async def test_a_body_that_is_not_otlp_is_a_format_error(tempo: TempoStandIn) -> None:
    tempo.shape = "not a list"
    async with _client(tempo.url) as client:
        with pytest.raises(TraceFormatError, match="not an OTLP JSON trace"):
            await client.get_trace(TELEMETRYGEN)


def test_traceql_quotes_and_combines() -> None:
    assert traceql(None, None, None) == "{}"
    assert traceql('a"b\\c', "GET /", 1_500_000) == (
        '{ resource.service.name = "a\\"b\\\\c" && name = "GET /" && duration >= 1500us }')


def test_search_params_tags_quoting_and_validation() -> None:
    params = search_params("svc", "GET /x", start_ns=0, end_ns=10**9, limit=3, language="tags")
    assert params == {"start": 0, "end": 1, "limit": 3, "tags": 'service.name=svc name="GET /x"'}
    with pytest.raises(InvalidQueryError, match="limit"):
        search_params(None, None, start_ns=0, end_ns=1, limit=0)
