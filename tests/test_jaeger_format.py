"""The Jaeger JSON converter on every real Jaeger-shaped fixture, broken copies, and back."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.spans import RejectCounter, Span, SpanKind
from tests.conftest import shared_path
from tools.traces._jaeger_domain import duration_ns, rfc3339_ns
from tools.traces.jaeger_format import (
    JaegerFormatError,
    is_jaeger_document,
    jaeger_trace,
    jaeger_traces,
    spans_from_jaeger,
)

# Every Jaeger-shaped file in the shared data, with how many spans it holds.
_STATS = "jaeger-ui/components__TracePage__TraceStatistics__tableValuesTestTrace__"
FIXTURES = {
    "jaeger/cmd__jaeger__internal__extension__jaegerquery__internal__fixture__"
    "otlp2jaeger-out.json": 2,
    "jaeger/internal__uimodel__converter__v1__json__fixtures__domain_01.json": 5,
    "jaeger/internal__uimodel__converter__v1__json__fixtures__ui_01.json": 5,
    "jaeger-ui/utils__fixtures__otlp2jaeger-out.json": 2,
    "jaeger-ui/utils__fixtures__oltp2jaeger-multi-out.json": 4,
    "jaeger-ui/components__TracePage__TraceFlamegraph__testTrace.json": 4,
    "jaeger-ui/components__TracePage__TraceGraph__testTrace.json": 11,
    _STATS + "spanAmongEachOtherGroupedAndSpans.json": 17,
    _STATS + "spanLongerAsParent.json": 8,
    _STATS + "spansAmongEachOther.json": 12,
    _STATS + "testTraceNormal.json": 5,
    "jaeger-ui/components__TracePage__TraceTimelineViewer__genaiTestTrace.json": 57,
}
DOMAIN, UI = list(FIXTURES)[1:3]
GENAI = list(FIXTURES)[-1]


def _load(rel: str) -> Any:
    return json.loads(shared_path("jaeger", *rel.split("/")).read_text())


@pytest.mark.parametrize("rel", FIXTURES)
def test_every_fixture_parses_and_accounts_for_every_span(rel: str) -> None:
    doc, rejects = _load(rel), RejectCounter()
    assert is_jaeger_document(doc)
    spans = spans_from_jaeger(doc, rejects)
    assert len(spans) + rejects.total() == FIXTURES[rel]
    assert all(len(s.trace_id) == 32 and len(s.span_id) == 16 for s in spans)
    if "TraceGraph" in rel:  # ids like "trace-123" / "span-1" are not hex
        assert rejects.as_dict() == {"bad_id": 11}
    else:
        assert rejects.total() == 0


@pytest.mark.parametrize("rel", ["jaeger-ui/components__DependencyGraph__sample_data__small.json",
                                 "otel-proto/trace.json",
                                 "jaeger/internal__storage__metricstore__prometheus__"
                                 "metricstore__testdata__service_datapoint_response.json"])
def test_other_json_is_not_mistaken_for_jaeger(rel: str) -> None:
    assert not is_jaeger_document(_load(rel))
    with pytest.raises(JaegerFormatError, match="not Jaeger trace JSON"):
        spans_from_jaeger(_load(rel), RejectCounter())


def test_domain_model_and_ui_json_are_the_same_trace() -> None:
    domain = spans_from_jaeger(_load(DOMAIN), RejectCounter())
    ui = spans_from_jaeger(_load(UI), RejectCounter())
    assert domain[0].start_ns == 1485467191639875139  # RFC 3339 nanoseconds kept
    for s in domain:
        s.start_ns = s.start_ns // 1000 * 1000
    assert domain == ui
    reference_test = ui[3]  # CHILD_OF another trace first, then same-trace CHILD_OF, FOLLOWS_FROM
    assert reference_test.parent_id == "0000000000000002"
    assert ui[1].error and ui[1].attributes["javascript_limit"] == 9223372036854775222


def test_writer_reproduces_jaegers_ui_model_of_the_domain_trace() -> None:
    written = jaeger_trace(spans_from_jaeger(_load(DOMAIN), RejectCounter()))
    want = _load(UI)
    assert written["traceID"] == want["traceID"] == "0000000000000001"  # 64-bit id form
    assert written["processes"] == want["processes"]
    for got, exp in zip(written["spans"], want["spans"], strict=True):
        for key in ("traceID", "spanID", "operationName", "startTime", "duration", "processID"):
            assert got[key] == exp[key], key
        # A Span attribute has no "binary" type: base64 text comes back as a string tag.
        plain = [{**t, "type": "string"} if t["type"] == "binary" else t
                 for t in exp["tags"] if t["key"] != "error"]
        assert [t for t in got["tags"] if t["key"] not in ("error", "otel.status_code")] == plain


def test_tags_give_kind_error_status_and_resource() -> None:
    trace = copy.deepcopy(_load(GENAI))
    trace["processes"]["p1"]["tags"] = [{"key": "host.name", "type": "string", "value": "n1"}]
    span = trace["spans"][0]
    span["tags"] += [{"key": "otel.status_code", "type": "string", "value": "ERROR"},
                     {"key": "otel.status_description", "type": "string", "value": "boom"},
                     {"key": "retries", "type": "int64", "value": "3"}]
    trace["spans"][1]["tags"] = [{"key": "span.kind", "type": "string", "value": "rpc"}]
    first, second = spans_from_jaeger(trace, RejectCounter())[:2]
    assert (first.kind, first.error, first.status_message) == (SpanKind.SERVER, True, "boom")
    assert first.attributes["retries"] == 3 and "otel.status_code" not in first.attributes
    assert first.resource == {"service.name": "api-edge", "host.name": "n1"}
    assert second.kind is SpanKind.UNSPECIFIED and second.attributes == {"span.kind": "rpc"}


def _broken(mutate: str) -> dict[str, Any]:
    trace = copy.deepcopy(_load(GENAI))
    spans = trace["spans"]
    if mutate == "not_object":
        spans[0] = "span"
    elif mutate == "no_name":
        del spans[0]["operationName"]
    elif mutate == "bad_start":
        spans[0]["startTime"] = "yesterday"
    elif mutate == "negative":
        spans[0]["duration"] = -5
    elif mutate == "no_process":
        spans[0]["processID"] = "p99"
    elif mutate == "zero_id":
        spans[0]["spanID"] = "0000000000000000"
    return {"data": [trace, "not a trace", {"spans": "nope"}], "total": 3}


@pytest.mark.parametrize(("mutate", "reason"), [
    ("not_object", "malformed"), ("no_name", "missing_field"), ("bad_start", "bad_timestamp"),
    ("negative", "negative_duration"), ("no_process", "missing_field"), ("zero_id", "bad_id")])
def test_broken_spans_and_traces_are_counted_never_raised(mutate: str, reason: str) -> None:
    rejects = RejectCounter()
    spans = spans_from_jaeger(_broken(mutate), rejects)
    assert len(spans) == 56
    assert rejects.as_dict() == ({reason: 1, "malformed": 2} if reason != "malformed"
                                 else {"malformed": 3})


def test_round_trip_keeps_every_span_field() -> None:
    spans = spans_from_jaeger(_load(GENAI), RejectCounter())
    spans[3].error, spans[3].status_message = True, "rate limited"
    spans[4].attributes["otel.status_code"] = "OK"
    back = spans_from_jaeger({"data": jaeger_traces(spans)}, RejectCounter())
    assert back == spans
    written = jaeger_traces(spans)[0]["spans"]
    assert {"key": "otel.status_code", "type": "string", "value": "OK"} in written[4]["tags"]
    assert {"key": "error", "type": "bool", "value": True} in written[3]["tags"]


def test_writer_refuses_mixed_or_empty_traces() -> None:
    a = Span("a" * 32, "b" * 16, None, "svc", "op", 10**18, 5)
    b = Span("c" * 32, "b" * 16, None, "svc", "op", 10**18, 5)
    with pytest.raises(JaegerFormatError, match="jaeger_traces"):
        jaeger_trace([a, b])
    with pytest.raises(JaegerFormatError):
        jaeger_trace([])
    assert [t["traceID"] for t in jaeger_traces([a, b, a])] == ["a" * 32, "c" * 32]


@pytest.mark.parametrize(("text", "ns"), [
    ("5000ns", 5000), ("0.000005s", 5000), ("1h2m3.5s", 3723_500_000_000), ("1.5ms", 1_500_000),
    ("-2us", -2000)])
def test_durations(text: str, ns: int) -> None:
    assert duration_ns(text) == ns


def test_rfc3339_offsets_and_nanoseconds() -> None:
    assert rfc3339_ns("2017-01-26T16:46:31.639875139-05:00") == 1485467191639875139
    assert rfc3339_ns("2017-01-26T21:46:31Z") == 1485467191000000000
