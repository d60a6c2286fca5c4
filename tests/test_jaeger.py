"""JaegerClient against a real HTTP server serving real Jaeger payloads; golden OTLP->Jaeger."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.ingest.otlp import spans_from_otlp_json
from bot.spans import RejectCounter, Span, SpanKind
from tests.conftest import shared_path
from tests.trace_standins import JaegerStandIn, Script, free_port, jaeger_traces_in
from tools.traces import (
    InvalidQueryError,
    TraceBackendError,
    TraceBackendTimeout,
    TraceBackendUnavailable,
    TraceFormatError,
    TraceNotFoundError,
)
from tools.traces.jaeger import JaegerClient, Operation, find_traces_params
from tools.traces.jaeger_format import jaeger_envelope, spans_from_jaeger

TRACE_FILES = [
    "jaeger/cmd__jaeger__internal__extension__jaegerquery__internal__fixture__otlp2jaeger-out.json",
    "jaeger/internal__uimodel__converter__v1__json__fixtures__ui_01.json",
    "jaeger-ui/utils__fixtures__oltp2jaeger-multi-out.json",
    "jaeger-ui/components__TracePage__TraceFlamegraph__testTrace.json",
    "jaeger-ui/components__TracePage__TraceGraph__testTrace.json",
    "jaeger-ui/components__TracePage__TraceStatistics__tableValuesTestTrace__testTraceNormal.json",
    "jaeger-ui/components__TracePage__TraceStatistics__tableValuesTestTrace__spanLongerAsParent.json",
    "jaeger-ui/components__TracePage__TraceStatistics__tableValuesTestTrace__spansAmongEachOther.json",
    "jaeger-ui/components__TracePage__TraceTimelineViewer__genaiTestTrace.json",
]
UNREACHABLE = f"http://127.0.0.1:{free_port()}"


def _load(rel: str) -> Any:
    return json.loads(shared_path("jaeger", *rel.split("/")).read_text())


@pytest.fixture(scope="module")
def traces() -> list[dict[str, Any]]:
    return [t for rel in TRACE_FILES for t in jaeger_traces_in(_load(rel))]


@pytest.fixture(scope="module")
def standin(traces: list[dict[str, Any]]) -> Iterator[JaegerStandIn]:
    server = JaegerStandIn(traces).start()
    yield server
    server.stop()


@pytest.fixture
def jaeger(standin: JaegerStandIn) -> JaegerStandIn:
    standin.script = Script()
    standin.legacy_operations = False
    return standin


def _client(url: str, **kw: Any) -> JaegerClient:
    return JaegerClient(url, **{"timeout_s": 2.0, "backoff_s": 0.01, **kw})


async def test_services_lists_every_process_service(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        services = await client.services()
    assert set(services) >= {"telemetrygen", "api-gateway", "customers-service", "coding-agent"}
    assert jaeger.script.requests == [("/api/services", {})]


async def test_operations_new_and_legacy_shapes(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        new = await client.operations("api-edge")
        jaeger.legacy_operations = True
        old = await client.operations("api-edge")
    assert Operation("POST /api/graphql", SpanKind.SERVER) in new
    assert [o.name for o in old] == [o.name for o in new]
    assert {o.span_kind for o in old} == {SpanKind.UNSPECIFIED}


async def test_operations_quote_the_service_name(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        assert await client.operations("no such service?") == []
    path, params = jaeger.script.requests[-1]
    assert path.startswith("/api/services/no such service") and path.endswith("/operations")
    assert params == {}  # the "?" stayed in the path, quoted


async def test_find_traces_sends_jaeger_params_and_converts(jaeger: JaegerStandIn) -> None:
    start_ns, end_ns = 1_660_049_722_000_000_123, 1_660_049_724_000_000_001
    async with _client(jaeger.url) as client:
        spans = await client.find_traces("ride-sharing-app", "BikeHandler", start_ns=start_ns,
                                         end_ns=end_ns, limit=5, min_duration_ns=100_000_000)
    path, params = jaeger.script.requests[-1]
    assert path == "/api/traces"
    assert params == {"service": "ride-sharing-app", "operation": "BikeHandler",
                      "start": "1660049722000000", "end": "1660049724000001", "limit": "5",
                      "minDuration": "100ms"}
    assert {s.trace_id for s in spans} == {"84b3fad94c6112edd6af3347d06f6f1d"}
    assert len(spans) == 4 and client.rejects.total() == 0


async def test_find_traces_window_excludes_and_tags_are_json(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        none = await client.find_traces("ride-sharing-app", start_ns=10**18, end_ns=10**18 + 1,
                                        tags={"error": "true"})
    assert none == []
    assert json.loads(jaeger.script.requests[-1][1]["tags"]) == {"error": "true"}


def test_find_traces_params_reject_bad_queries() -> None:
    with pytest.raises(InvalidQueryError, match="after start"):
        find_traces_params("s", None, start_ns=5, end_ns=5, limit=1)
    with pytest.raises(InvalidQueryError, match="service"):
        find_traces_params("", None, start_ns=1, end_ns=5, limit=1)
    assert find_traces_params("s", None, start_ns=1, end_ns=5, limit=1,
                              min_duration_ns=1_500_000)["minDuration"] == "1500us"


async def test_get_trace_matches_the_payload_it_served(jaeger: JaegerStandIn,
                                                       traces: list[dict[str, Any]]) -> None:
    genai = next(t for t in traces if t["traceID"].startswith("4a1b2c3d"))
    async with _client(jaeger.url) as client:
        spans = await client.get_trace(genai["traceID"].upper())
    assert spans == spans_from_jaeger(genai, RejectCounter())
    assert len(spans) == 57 and {s.service for s in spans} >= {"api-edge", "coding-agent"}


async def test_get_trace_accepts_64_bit_and_unpadded_ids(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        ui = await client.get_trace("0000000000000001")  # a 64-bit Jaeger trace id
        unpadded = await client.get_trace("df84e36b9e2ee3815d07f0867a5be1f")  # 31 hex chars
    assert {s.trace_id for s in ui} == {"0" * 31 + "1"}
    assert {s.trace_id for s in unpadded} == {"0df84e36b9e2ee3815d07f0867a5be1f"}
    assert all(len(s.span_id) == 16 for s in unpadded) and client.rejects.total() == 0


async def test_spans_with_non_hex_ids_are_counted_not_raised(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:  # TraceGraph's fixture: ids like "span-1"
        spans = await client.find_traces("service1", start_ns=1, end_ns=2 * 10**18)
    assert spans == [] and client.rejects.as_dict() == {"bad_id": 11}


async def test_404_is_trace_not_found_with_url(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        with pytest.raises(TraceNotFoundError) as err:
            await client.get_trace("abc123")
    assert err.value.status == 404 and "/api/traces/abc123" in err.value.url
    assert "abc123" in str(err.value) and "retention" in str(err.value)
    assert len(jaeger.script.requests) == 1  # a 404 is not retried


async def test_5xx_is_retried_then_succeeds(jaeger: JaegerStandIn) -> None:
    jaeger.script.fail_next, jaeger.script.fail_status = 2, 503
    async with _client(jaeger.url, retries=2) as client:
        assert await client.services()
    assert len(jaeger.script.requests) == 3


async def test_5xx_after_every_retry_names_url_and_status(jaeger: JaegerStandIn) -> None:
    jaeger.script.fail_next, jaeger.script.fail_status = 10, 500
    async with _client(jaeger.url, retries=1) as client:
        with pytest.raises(TraceBackendUnavailable) as err:
            await client.services()
    assert err.value.status == 500 and jaeger.url in str(err.value)
    assert "2 attempts" in str(err.value) and len(jaeger.script.requests) == 2


async def test_4xx_is_not_retried_and_carries_jaegers_message(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        with pytest.raises(TraceBackendError) as err:
            await client._http.get("/api/traces")  # no service: Jaeger answers 400
    assert err.value.status == 400 and "parameter 'service' is required" in str(err.value)
    assert len(jaeger.script.requests) == 1


async def test_slow_backend_times_out(jaeger: JaegerStandIn) -> None:
    jaeger.script.delay_s = 1.0
    async with _client(jaeger.url, timeout_s=0.2) as client:
        with pytest.raises(TraceBackendTimeout, match="did not answer within 0.2 s"):
            await client.services()


async def test_unreachable_backend_is_retried_with_backoff() -> None:
    began = time.monotonic()
    async with _client(UNREACHABLE, retries=2, backoff_s=0.05) as client:
        with pytest.raises(TraceBackendUnavailable) as err:
            await client.services()
    assert time.monotonic() - began >= 0.05 + 0.1  # two backoffs: 0.05 s, then 0.1 s
    assert UNREACHABLE in str(err.value) and "3 attempts" in str(err.value)


async def test_non_json_answer_and_path_prefix(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        with pytest.raises(TraceFormatError, match="not JSON"):
            await client._http.get("/html")
    async with _client(jaeger.url + "/prefix") as client:
        assert "telemetrygen" in await client.services()
    assert jaeger.script.requests[-1][0] == "/prefix/api/services"


async def test_bad_trace_id_is_refused_before_any_request(jaeger: JaegerStandIn) -> None:
    async with _client(jaeger.url) as client:
        with pytest.raises(InvalidQueryError, match="hex"):
            await client.get_trace("../api/services")
    assert jaeger.script.requests == []


# --- golden pairs: OTLP input -> our Span -> Jaeger JSON, against Jaeger's own output ---

GOLDEN = "jaeger/cmd__jaeger__internal__extension__jaegerquery__internal__fixture__otlp2jaeger-"
UI_GOLDEN = [("jaeger-ui/utils__fixtures__otlp2jaeger-in.json",
              "jaeger-ui/utils__fixtures__otlp2jaeger-out.json"),
             ("jaeger-ui/utils__fixtures__otlp2jaeger-multi-in-combined.json",
              "jaeger-ui/utils__fixtures__oltp2jaeger-multi-out.json")]
_UI_ONLY = {"childSpanIds", "depth", "hasChildren", "process", "relativeStartTime", "span"}
_OLD_NAMES = {"otel.library.name": "otel.scope.name", "otel.library.version": "otel.scope.version"}


def _spans_of_otlp(rel: str) -> list[Span]:
    rejects = RejectCounter()
    spans = spans_from_otlp_json(_load(rel), rejects)
    assert rejects.total() == 0
    return spans


def _as_converter_writes(obj: Any) -> Any:
    """Drop what the UI adds after conversion (tree fields, warnings []) and old tag names."""
    if isinstance(obj, dict):
        out = {k: _as_converter_writes(v) for k, v in obj.items() if k not in _UI_ONLY}
        return {**out, "warnings": None} if out.get("warnings") == [] else out
    if isinstance(obj, list):
        return [_as_converter_writes(v) for v in obj]
    return _OLD_NAMES.get(obj, obj) if isinstance(obj, str) else obj


def test_golden_pair_is_reproduced_exactly() -> None:
    assert jaeger_envelope(_spans_of_otlp(GOLDEN + "in.json")) == _load(GOLDEN + "out.json")


@pytest.mark.parametrize(("src", "want"), UI_GOLDEN, ids=["single", "multi"])
def test_ui_golden_pairs_match_on_every_converter_field(src: str, want: str) -> None:
    assert jaeger_envelope(_spans_of_otlp(src)) == _as_converter_writes(_load(want))


@pytest.mark.parametrize(("src", "want"), [(GOLDEN + "in.json", GOLDEN + "out.json"), *UI_GOLDEN])
def test_golden_output_reads_back_as_the_input_spans(src: str, want: str) -> None:
    rejects = RejectCounter()
    back = spans_from_jaeger(_load(want), rejects)
    expected = _spans_of_otlp(src)
    for s in expected:  # Jaeger keeps microseconds
        s.duration_ns = (s.duration_ns // 1000) * 1000
        s.start_ns = (s.start_ns // 1000) * 1000
    for s in back:
        s.attributes = {_OLD_NAMES.get(k, k): v for k, v in s.attributes.items()}
    assert back == expected and rejects.total() == 0


def test_changing_a_golden_field_is_detected() -> None:
    spans = _spans_of_otlp(GOLDEN + "in.json")
    spans[0].kind = SpanKind.CLIENT
    assert jaeger_envelope(spans) != _load(GOLDEN + "out.json")

