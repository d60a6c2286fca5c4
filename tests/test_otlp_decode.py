"""The pure OTLP decoders: protobuf columns, lazy spans, OTLP/JSON rules, every bad input."""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from typing import Any, cast

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from bot.ingest.otlp import OtlpDecodeError, decode_traces_json, decode_traces_pb
from bot.spans import (
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    MAX_DURATION_NS,
    RejectCounter,
    SpanKind,
)
from tests._otlp_builders import T0, body, kv, raw_request, request, span
from tests.conftest import shared_path

DAY = 86_400 * 10**9


def _expected_reason(s: PbSpan) -> str | None:
    """The documented rules, written out span by span (the decoder works on columns)."""
    for value, size in ((s.trace_id, 16), (s.span_id, 8)):
        if not value:
            return "missing_field"
        if len(value) != size or value == bytes(size):
            return "bad_id"
    if len(s.parent_span_id) not in (0, 8):
        return "bad_id"
    if not s.name:
        return "missing_field"
    if s.kind not in range(6) or s.status.code not in range(3):
        return "unknown_enum"
    start, end = s.start_time_unix_nano, s.end_time_unix_nano
    if not start or not end:
        return "missing_field"
    if start >= 1 << 63 or end >= 1 << 63:
        return "bad_timestamp"
    if end < start:
        return "negative_duration"
    return "duration_too_long" if end - start > MAX_DURATION_NS else None


_TIME_DEFECTS = {
    "negative": dict(end_time_unix_nano=T0 - 1),
    "zero_start": dict(start_time_unix_nano=0),
    "zero_end": dict(end_time_unix_nano=0),
    "huge": dict(end_time_unix_nano=(1 << 64) - 1),
    "too_long": dict(end_time_unix_nano=T0 + 2 * DAY),
}
_OTHER_DEFECTS = {
    "no_trace": dict(trace_id=b""), "short_trace": dict(trace_id=b"\x01" * 15),
    "zero_trace": dict(trace_id=bytes(16)), "zero_span": dict(span_id=bytes(8)),
    "long_span": dict(span_id=b"\x01" * 9), "bad_parent": dict(parent_span_id=b"\x01" * 4),
    "no_name": dict(name=""), "kind": dict(kind=9), "negative_kind": dict(kind=-1),
}


def _corrupted(rng: random.Random, defects: dict[str, dict[str, Any]], n: int) -> list[PbSpan]:
    spans = []
    for i in range(n):
        s = span(f"op{i % 7}", start=T0 + i, duration=rng.randrange(1, 10**9),
                 code=rng.choice((0, 0, 1, 2)), flags=rng.choice((0, 0x100)),
                 parent=os.urandom(8) if i % 3 else b"")
        if rng.random() < 0.25:
            for key, value in rng.choice(list(defects.values())).items():
                setattr(s, key, value)
        spans.append(s)
    if "kind" not in defects:
        return spans
    spans[0].status.code = cast(Any, 5)  # an unknown status code, too
    return spans


@pytest.mark.parametrize("defects", [_TIME_DEFECTS, {**_TIME_DEFECTS, **_OTHER_DEFECTS}],
                         ids=["time-defects-only", "every-defect"])
def test_protobuf_rows_and_rejections_match_the_rules(defects: dict[str, dict[str, Any]]) -> None:
    rng = random.Random(3)
    a, b = _corrupted(rng, defects, 300), _corrupted(rng, defects, 200)
    rejects = RejectCounter()
    batch = decode_traces_pb(body(("api", a), ("db", b)), rejects)
    reasons = [(svc, s, _expected_reason(s))
               for svc, spans in (("api", a), ("db", b)) for s in spans]
    good = [(svc, s) for svc, s, why in reasons if why is None]
    assert rejects.as_dict() == dict(Counter(why for _, _, why in reasons if why))
    assert batch.keys == [f"{svc}:{s.name}" for svc, s in good]
    assert batch.trace_ids == [s.trace_id.hex() for _, s in good]
    assert batch.start_ns.tolist() == [s.start_time_unix_nano for _, s in good]
    assert batch.duration_ns.tolist() == [s.end_time_unix_nano - s.start_time_unix_nano
                                          for _, s in good]
    assert batch.error.tolist() == [s.status.code == 2 for _, s in good]
    assert batch.start_ns.dtype == np.int64 and batch.error.dtype == np.bool_
    starts, durations = batch.start_ns.tolist(), batch.duration_ns.tolist()
    assert batch.bounds() == (min(starts), max(starts), min(durations), max(durations))


@pytest.mark.parametrize(("start", "end", "rejected"), [
    ((1 << 63) - 10, (1 << 63) + 10, {"bad_timestamp": 1}),  # int64 end wraps; duration is 20
    ((1 << 63) - 100, (1 << 63) - 50, {}),  # close to the limit, still valid
])
def test_an_end_past_2_63_is_caught_when_the_duration_looks_sane(
        start: int, end: int, rejected: dict[str, int]) -> None:
    spans = [span(f"op{i}", start=T0 + i) for i in range(5)]
    spans[3].start_time_unix_nano, spans[3].end_time_unix_nano = start, end
    rejects = RejectCounter()
    batch = decode_traces_pb(body(("api", spans)), rejects)
    assert rejects.as_dict() == rejected
    assert len(batch) == 5 - len(rejected)
    starts, durations = batch.start_ns.tolist(), batch.duration_ns.tolist()
    assert batch.bounds() == (min(starts), max(starts), min(durations), max(durations))


def test_materialize_builds_the_full_span_lazily() -> None:
    root = span("POST /checkout", kind=2)
    child = span("charge", trace_id=root.trace_id, parent=root.span_id, kind=3, code=2,
                 flags=0x300, duration=7_000)
    child.attributes.extend([kv("http.status_code", 503), kv("retry", True), kv("ratio", 0.5),
                             kv("blob", b"\x00\x01"), kv("peer", "payments")])
    child.attributes.add(key="tags").value.array_value.values.extend(
        [kv("", "a").value, kv("", 2).value])
    rejects = RejectCounter()
    batch = decode_traces_pb(body(("checkout", [root, child])), rejects)
    got = batch.materialize(1)
    assert (got.trace_id, got.span_id, got.parent_id) == (
        root.trace_id.hex(), child.span_id.hex(), root.span_id.hex())
    assert (got.service, got.operation, got.kind) == ("checkout", "charge", SpanKind.CLIENT)
    assert (got.start_ns, got.duration_ns, got.error) == (T0, 7_000, True)
    assert got.status_message == "boom"
    assert got.attributes == {"http.status_code": 503, "retry": True, "ratio": 0.5,
                              "blob": "AAE=", "peer": "payments", "tags": ["a", "2"],
                              "otel.scope.name": "tests.lib", "otel.scope.version": "1.0"}
    assert got.resource == {"service.name": "checkout", "host.name": "h1"}
    assert batch.materialize(0).parent_id is None and batch.error.tolist() == [False, True]
    assert got.key == batch.keys[1] and rejects.total() == 0


def test_error_flags_are_exact_when_status_is_not_the_last_field() -> None:
    """A hand-ordered encoding defeats the fast error lookup; the fallback must still be exact."""
    plain = [span(f"op{i}") for i in range(6)]
    spans = []
    for i, s in enumerate(plain):
        raw = s.SerializeToString()
        spans.append(b"\x7a\x02\x18\x02" + raw if i % 2 else raw)  # status first
    req = raw_request(spans)
    assert [s.status.code for s in ExportTraceServiceRequest.FromString(req)
            .resource_spans[0].scope_spans[0].spans] == [0, 2, 0, 2, 0, 2]
    batch = decode_traces_pb(req, RejectCounter())
    assert batch.error.tolist() == [False, True] * 3
    assert batch.keys[0] == "unknown_service:op0"  # no service.name: what SDKs report


def test_invalid_utf8_rejects_only_the_spans_it_touches() -> None:
    ok, bad_name, bad_attr = span("fine"), span("NAME_"), span("attr")
    bad_attr.attributes.append(kv("note", "VALUE_"))
    other = [span("x"), span("y")]
    raw = body(("api", [ok, bad_name, bad_attr]), ("SVC_", other))
    raw = raw.replace(b"NAME_", b"NA\xffE_").replace(b"VALUE_", b"VA\xc3(E_")
    raw = raw.replace(b"SVC_", b"S\xfeC_")
    with pytest.raises(DecodeError, match="UTF-8"):  # what upb does: refuses the whole request
        ExportTraceServiceRequest.FromString(raw)
    rejects = RejectCounter()
    batch = decode_traces_pb(raw, rejects)
    assert batch.keys == ["api:fine", "api:attr"]
    assert rejects.as_dict() == {"invalid_utf8": 3}  # one bad name, two spans of the bad service
    assert batch.materialize(1).attributes["note"] == "VA\ufffd(E_"


def test_corrupt_attributes_keep_the_span_without_them() -> None:
    s = span("op")
    raw = s.SerializeToString() + b"\x4a\x03\x0a\x05a"  # attribute whose key overruns it
    with pytest.raises(DecodeError):
        PbSpan.FromString(raw)
    batch = decode_traces_pb(raw_request([raw]), RejectCounter())
    got = batch.materialize(0)
    assert (got.operation, got.span_id, got.duration_ns) == ("op", s.span_id.hex(), 5_000_000)
    assert got.attributes == {"opsbot.attributes_dropped": "undecodable attributes"}


def test_megabyte_attributes_and_names_are_bounded_and_the_span_kept() -> None:
    s = span("n" * 1000)
    s.attributes.extend([kv("huge", "x" * 3_000_000)] + [kv(f"a{i}", i) for i in range(200)])
    batch = decode_traces_pb(body(("api", [s])), rejects := RejectCounter())
    got = batch.materialize(0)
    assert rejects.total() == 0 and len(batch) == 1
    assert got.attributes["huge"] == "x" * MAX_ATTRIBUTE_VALUE_CHARS + "...[truncated]"
    assert len(got.attributes) == MAX_ATTRIBUTES
    assert batch.keys[0] == "api:" + "n" * 256 and got.key == batch.keys[0]


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x10short", b"\x0a"])
def test_undecodable_protobuf_raises(payload: bytes) -> None:
    with pytest.raises(OtlpDecodeError, match="not an OTLP ExportTraceServiceRequest") as exc:
        decode_traces_pb(payload, RejectCounter())
    assert exc.value.reason.value == "malformed"


def test_empty_requests_are_empty_batches() -> None:
    assert len(decode_traces_pb(b"", RejectCounter())) == 0
    assert len(decode_traces_pb(request(("api", [])).SerializeToString(), RejectCounter())) == 0
    assert len(decode_traces_json(b"{}", RejectCounter())) == 0


# -- OTLP/JSON -------------------------------------------------------------------------


def _json_spans(obj: Any) -> tuple[list[Any], dict[str, int]]:
    rejects = RejectCounter()
    batch = decode_traces_json(json.dumps(obj) if not isinstance(obj, bytes) else obj, rejects)
    return [batch.materialize(i) for i in range(len(batch))], rejects.as_dict()


def test_the_otlp_spec_example() -> None:
    spans, rejected = _json_spans(shared_path("jaeger", "otel-proto", "trace.json").read_bytes())
    assert rejected == {} and len(spans) == 1
    s = spans[0]
    assert (s.trace_id, s.span_id, s.parent_id) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert (s.service, s.operation, s.kind) == ("my.service", "I'm a server span", SpanKind.SERVER)
    assert (s.start_ns, s.duration_ns, s.error) == (1544712660000000000, 10**9, False)
    assert s.attributes["my.span.attr"] == "some value"
    assert s.attributes["otel.scope.name"] == "my.library"


def test_jaeger_fixtures_attribute_types_and_statuses() -> None:
    path = shared_path("jaeger", "jaeger",
                       "internal__storage__v2__memory__fixtures__otel_traces_01.json")
    spans, rejected = _json_spans(path.read_bytes())
    assert rejected == {} and len(spans) == 4
    assert [s.kind for s in spans] == [SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER,
                                       SpanKind.CONSUMER]
    assert all(s.error and s.service == "service-x" and s.duration_ns == 5000 for s in spans)
    assert spans[0].attributes["peer.ipv4"] == 23456  # intValue is a string in OTLP/JSON
    assert spans[0].attributes["blob"] == "AAAwOQ=="  # bytesValue stays base64
    assert spans[0].attributes["temperature"] == 72.5
    assert spans[0].trace_id == "00000000000000010000000000000000"


def test_empty_parent_and_absent_kind() -> None:
    combined = shared_path("jaeger", "jaeger-ui",
                           "utils__fixtures__otlp2jaeger-multi-in-combined.json")
    spans, _ = _json_spans(combined.read_bytes())
    assert [s.parent_id for s in spans][-1] is None and spans[0].duration_ns == 46460625
    example = shared_path("jaeger", "jaeger", "internal__storage__integration__fixtures__traces__"
                          "example_trace.json")
    spans, _ = _json_spans(example.read_bytes())
    assert [s.kind for s in spans] == [SpanKind.UNSPECIFIED] * 3 + [SpanKind.SERVER,
                                                                      SpanKind.CLIENT]
    assert {s.service for s in spans} == {"example-service-1", "example-service-2",
                                          "example-service-3"}


def _tempo(span_fields: dict[str, Any]) -> dict[str, Any]:
    return {"trace": {"batches": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "instrumentationLibrarySpans": [{"instrumentationLibrary": {"name": "old"},
                                         "spans": [span_fields]}],
    }]}}


def _good_span(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
        "name": "GetCart", "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000000000500000, "kind": "SPAN_KIND_CLIENT",
        "status": {"code": "STATUS_CODE_ERROR", "message": "nope"},
        "attributes": [
            {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1},
                                                                {"stringValue": "b"}]}}},
            {"key": "map", "value": {"kvlistValue": {"values": [
                {"key": "k", "value": {"boolValue": True}}]}}},
            {"key": "nan", "value": {"doubleValue": "NaN"}},
        ],
    }
    fields.update(over)
    return fields


def test_tempo_wrappers_enum_names_numbers_and_anyvalues() -> None:
    spans, rejected = _json_spans(_tempo(_good_span()))
    assert rejected == {}
    s = spans[0]
    assert (s.service, s.kind, s.error, s.status_message) == ("cart", SpanKind.CLIENT, True, "nope")
    assert s.duration_ns == 500_000 and s.attributes["otel.scope.name"] == "old"
    assert s.attributes["list"] == ["1", "b"]  # bound_attributes renders list items as text
    assert s.attributes["map"] == str({"k": True})
    assert math.isnan(s.attributes["nan"])


def test_snake_case_and_base64_ids_are_accepted() -> None:
    snake = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": "AQIDBAUGBwgJCgsMDQ4PEA==", "span_id": "AQIDBAUGBwg=", "name": "x",
        "start_time_unix_nano": 1.7e18, "end_time_unix_nano": 1.7e18 + 4096, "kind": 1}]}]}]}
    spans, rejected = _json_spans(snake)
    assert rejected == {} and spans[0].trace_id == "0102030405060708090a0b0c0d0e0f10"
    assert (spans[0].span_id, spans[0].service, spans[0].duration_ns) == (
        "0102030405060708", "unknown_service", 4096)


@pytest.mark.parametrize(("over", "reason"), [
    ({"startTimeUnixNano": "NaN"}, "nan_duration"),
    ({"endTimeUnixNano": float("nan")}, "nan_duration"),
    ({"endTimeUnixNano": "1699999999999999999"}, "negative_duration"),
    ({"endTimeUnixNano": "1800000000000000000"}, "duration_too_long"),
    ({"startTimeUnixNano": "Infinity"}, "bad_timestamp"),
    ({"startTimeUnixNano": "soon"}, "bad_timestamp"),
    ({"startTimeUnixNano": -5}, "bad_timestamp"),
    ({"startTimeUnixNano": None}, "missing_field"),
    ({"traceId": None}, "missing_field"),
    ({"name": ""}, "missing_field"),
    ({"traceId": "zz02030405060708090a0b0c0d0e0f10"}, "bad_id"),
    ({"spanId": "0000000000000000"}, "bad_id"),
    ({"parentSpanId": "abc"}, "bad_id"),
    ({"kind": 9}, "unknown_enum"),
    ({"kind": "SPAN_KIND_SIDEWAYS"}, "unknown_enum"),
    ({"status": {"code": 7}}, "unknown_enum"),
    ({"status": "bad"}, "malformed"),
    ({"attributes": {"not": "a list"}}, "malformed"),
])
def test_each_bad_json_span_is_counted_not_raised(over: dict[str, Any], reason: str) -> None:
    fine = _good_span(spanId="1112131415161718")
    spans, rejected = _json_spans(
        {"resourceSpans": [{"scopeSpans": [{"spans": [_good_span(**over), fine]}]}]})
    assert rejected == {reason: 1}
    assert [s.span_id for s in spans] == ["1112131415161718"]


def test_invalid_utf8_and_megabyte_values_in_json() -> None:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        _good_span(name="NAME_", spanId="1112131415161718"),
        _good_span(attributes=[{"key": "note", "value": {"stringValue": "VALUE_"}},
                               {"key": "big", "value": {"stringValue": "y" * 2_000_000}}]),
    ]}]}]}
    raw = json.dumps(doc).encode().replace(b"NAME_", b"NA\xffE_").replace(b"VALUE_", b"VA\xffE_")
    spans, rejected = _json_spans(raw)
    assert rejected == {"invalid_utf8": 1}
    assert spans[0].attributes["note"] == "VA\ufffdE_"
    assert spans[0].attributes["big"] == "y" * MAX_ATTRIBUTE_VALUE_CHARS + "...[truncated]"


@pytest.mark.parametrize(("payload", "message"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"resourceSpans": 5}', "not a list"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_undecodable_json_raises(payload: bytes, message: str) -> None:
    with pytest.raises(OtlpDecodeError, match=message):
        decode_traces_json(payload, RejectCounter())


def test_broken_containers_are_counted_as_malformed() -> None:
    doc = {"resourceSpans": ["nope", {"scopeSpans": [{"spans": ["nope", _good_span()]}]},
                             {"scopeSpans": 3}]}
    spans, rejected = _json_spans(doc)
    assert len(spans) == 1 and rejected == {"malformed": 3}


def test_sdk_encoded_requests_take_the_column_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Span-by-span decoding is exact but slow; what real SDKs send must not need it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    import bot.ingest.otlp as otlp

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    for i in range(30):
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child") as c:
            c.set_attribute("i", i)
            if i % 7 == 0:
                c.set_status(Status(StatusCode.ERROR, "x"))

    def slow(*args: Any) -> None:
        raise AssertionError("an SDK payload went span by span")

    monkeypatch.setattr(otlp, "_one_by_one", slow)
    batch = decode_traces_pb(encode_spans(memory.get_finished_spans()).SerializeToString(),
                             RejectCounter())
    assert len(batch) == 60
    assert batch.error.tolist() == [s.status.status_code is StatusCode.ERROR
                                    for s in memory.get_finished_spans()]


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, varint length, payload."""
    length, n = bytearray(), len(payload)
    while n > 0x7F:
        length.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([tag]) + bytes(length + bytes([n])) + payload


def test_resources_and_scopes_parse_as_a_full_parse_would() -> None:
    """Resources and scopes are read from their bytes, once per distinct bytes: a field sent
    twice merges (service.name from the first, host.name from the second), a request seen
    before decodes the same, and a corrupt resource or scope is refused even with no spans."""
    req = request(("api", [span("GET /")]))
    rs = req.resource_spans[0]
    rs.scope_spans[0].scope.name = "lib-a"
    wire = bytes(req.SerializeToString())
    extra = rs.resource.__class__(attributes=[kv("host.name", "h2")]).SerializeToString()
    scope_extra = rs.scope_spans[0].scope.__class__(version="9").SerializeToString()
    scope_spans = rs.scope_spans[0].SerializeToString() + _field(0x0A, scope_extra)
    merged = rs.SerializeToString() + _field(0x0A, extra) + _field(0x12, scope_spans)
    twice = wire + _field(0x0A, merged)
    official = ExportTraceServiceRequest.FromString(twice).resource_spans[1]
    assert [kv.value.string_value for kv in official.resource.attributes] == ["api", "h1", "h2"]
    assert (official.scope_spans[1].scope.name, official.scope_spans[1].scope.version) == (
        "lib-a", "9")
    for _ in range(2):  # the second time from the cache
        batch = decode_traces_pb(twice, RejectCounter())
        assert batch.keys == ["api:GET /", "api:GET /", "api:GET /"]
        got = [batch.materialize(i) for i in range(3)]
        assert got[0].resource == {"service.name": "api", "host.name": "h1"}
        assert got[1].resource == got[2].resource == {"service.name": "api", "host.name": "h2"}
        scope_attrs = [{k: v for k, v in g.attributes.items() if k.startswith("otel.scope")}
                       for g in got]
        assert scope_attrs[:2] == [{"otel.scope.name": "lib-a", "otel.scope.version": "1.0"}] * 2
        assert scope_attrs[2] == {"otel.scope.name": "lib-a", "otel.scope.version": "9"}
    for field in (_field(0x0A, b"\x0a\x01\xff"), _field(0x12, b"\x0a\x01\xff")):
        corrupt = wire + _field(0x0A, field)  # a resource, or a scope with no spans
        with pytest.raises(DecodeError):
            ExportTraceServiceRequest.FromString(corrupt)
        with pytest.raises(OtlpDecodeError):
            decode_traces_pb(corrupt, RejectCounter())
