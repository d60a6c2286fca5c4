"""File loaders on the real Nezha CSVs, OTLP JSON and Jaeger JSON files, and on broken copies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bot.ingest._nezha import POD_ATTRIBUTE, service_of_pod
from bot.ingest.files import FileFormat, UnsupportedFileError, detect_format, load_file
from bot.ingest.otlp import spans_from_otlp_json
from bot.spans import RejectCounter, RejectReason, Span
from tests.conftest import shared_path
from tools.traces.jaeger_format import spans_from_jaeger

NEZHA_DAY = ("nezha", "rca_data", "2022-08-22", "trace")
ONLINE_BOUTIQUE = {"frontend", "productcatalogservice", "currencyservice", "adservice",
                   "recommendationservice", "shippingservice", "cartservice", "checkoutservice",
                   "paymentservice", "emailservice"}
GENAI = ("jaeger", "jaeger-ui", "components__TracePage__TraceTimelineViewer__genaiTestTrace.json")
OTLP_FILES = [("jaeger", "otel-proto", "trace.json"),
              ("jaeger", "jaeger-ui", "utils__fixtures__otlp2jaeger-multi-in-combined.json"),
              ("jaeger", "jaeger", "internal__storage__v2__memory__fixtures__otel_traces_01.json")]


def _nezha(name: str = "03_53_trace.csv") -> Path:
    return shared_path(*NEZHA_DAY, name)


def _load(path: Path, chunk: int = 50_000) -> tuple[list[Span], RejectCounter]:
    rejects = RejectCounter()
    spans = [b.materialize(i) for b in load_file(path, rejects, chunk) for i in range(len(b))]
    return spans, rejects


def test_nezha_rows_become_spans_with_exact_nanoseconds() -> None:
    path = _nezha()
    spans, rejects = _load(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rejects.total() == 0 and len(spans) == len(rows) > 20_000
    for span, row in zip(spans, rows, strict=True):
        assert span.start_ns == int(row["StartTimeUnixNano"])
        assert span.end_ns == int(row["EndTimeUnixNano"])
        assert span.duration_ns // 1000 == int(row["Duration"])
        assert span.parent_id == (None if row["ParentID"] == "root" else row["ParentID"])
        assert span.resource[POD_ATTRIBUTE] == row["PodName"]
        assert span.service == service_of_pod(row["PodName"]) == span.resource["service.name"]


def test_nezha_batches_are_columnar_and_bounded() -> None:
    rejects = RejectCounter()
    batches = list(load_file(_nezha(), rejects, chunk_spans=7_000))
    assert [len(b) for b in batches[:-1]] == [7_000] * (len(batches) - 1)
    for batch in batches:
        spans = [batch.materialize(i) for i in range(len(batch))]
        assert batch.keys == [s.key for s in spans]
        assert batch.trace_ids == [s.trace_id for s in spans]
        assert batch.start_ns.tolist() == [s.start_ns for s in spans]
        assert batch.duration_ns.tolist() == [s.duration_ns for s in spans]
        assert not batch.error.any()


def test_every_nezha_pod_maps_to_an_online_boutique_service() -> None:
    services: set[str] = set()
    for path in sorted(shared_path("nezha").rglob("*_trace.csv")):
        assert detect_format(path) is FileFormat.NEZHA_CSV
        rejects = RejectCounter()
        for batch in load_file(path, rejects):
            services.update(k.split(":", 1)[0] for k in set(batch.keys))
        assert rejects.total() == 0, path
    assert services == ONLINE_BOUTIQUE


@pytest.mark.parametrize(("pod", "service"), [
    ("frontend-579b9bff58-t2dbm", "frontend"), ("cartservice-579f59597d-wc2lz", "cartservice"),
    ("currencyservice-cf787dd48-vpjrd", "currencyservice"), ("redis-cart-0", "redis-cart-0"),
    ("my-app", "my-app"), ("api-gateway-v2-6cfdd55578-gfj6q", "api-gateway-v2")])
def test_service_of_pod(pod: str, service: str) -> None:
    assert service_of_pod(pod) == service


def _real_rows(n: int) -> tuple[str, list[str]]:
    lines = _nezha().read_text().splitlines()
    return lines[0], lines[1:n + 1]


@pytest.mark.parametrize("chunk", [50_000, 2])
def test_malformed_nezha_rows_are_counted_by_reason(tmp_path: Path, chunk: int) -> None:
    header, good = _real_rows(6)
    t, s, p, pod, op, start, end, dur = good[1].split(",")
    bad = [
        f"{t},{s},{p},{pod},{op},{start}",  # too few fields
        f"nothex{t[6:]},{s},{p},{pod},{op},{start},{end},{dur}",
        f"{t},{s},{p},{pod},{op},soon,{end},{dur}",
        f"{t},{s},{p},{pod},{op},{end},{start},{dur}",  # ends before it starts
        f"{t},{s},{p},,{op},{start},{end},{dur}",
        "",  # a blank line is not a span
        f'"{t}",{s},{p},"{pod}","{op}, quoted",{start},{end},{dur}',  # valid, needs the csv module
    ]
    path = tmp_path / "spans.csv"
    path.write_text("\n".join([header, *good[:3], *bad, *good[3:]]) + "\n")
    spans, rejects = _load(path, chunk)
    assert rejects.as_dict() == {"malformed": 1, "bad_id": 1, "bad_timestamp": 1,
                                 "negative_duration": 1, "missing_field": 1}
    assert len(spans) == 7 and spans[3].operation == f"{op}, quoted"
    assert rejects.last_detail[RejectReason.MALFORMED].startswith("spans.csv row 4:")


@pytest.mark.parametrize("block_chars", [1 << 22, 997])  # 997: lines and CRLFs cut across reads
def test_nezha_crlf_reordered_columns_and_uppercase_ids(tmp_path: Path, block_chars: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.ingest._nezha._BLOCK_CHARS", block_chars)
    header, good = _real_rows(50)
    names = header.split(",")
    order = [7, 6, 5, 4, 3, 2, 1, 0]
    lines = [",".join(names[i] for i in order)]
    lines += [",".join(row.split(",")[i] for i in order).upper() for row in good]
    path = tmp_path / "reordered.csv"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    spans, rejects = _load(path)
    expected, _ = _load(_nezha())
    assert rejects.total() == 0
    assert [(s.trace_id, s.span_id, s.start_ns, s.duration_ns) for s in spans] == [
        (s.trace_id, s.span_id, s.start_ns, s.duration_ns) for s in expected[:50]]


@pytest.mark.parametrize("parts", OTLP_FILES, ids=lambda p: p[-1][:30])
def test_otlp_json_files_match_the_decoder(parts: tuple[str, ...]) -> None:
    path = shared_path(*parts)
    assert detect_format(path) is FileFormat.OTLP_JSON
    spans, rejects = _load(path)
    assert spans == spans_from_otlp_json(json.loads(path.read_text()), RejectCounter())
    assert spans and rejects.total() == 0


def test_json_lines_stream_and_count_bad_lines(tmp_path: Path) -> None:
    docs = [json.loads(shared_path(*p).read_text()) for p in OTLP_FILES]
    jaeger = json.loads(shared_path(*GENAI).read_text())
    lines = [json.dumps(d) for d in docs] + ["{not json", '{"status": "success"}', "",
                                             json.dumps(jaeger)]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert detect_format(path) is FileFormat.JSON_LINES
    spans, rejects = _load(path, chunk=2)
    expected = [s for d in docs for s in spans_from_otlp_json(d, RejectCounter())]
    assert spans == expected + spans_from_jaeger(jaeger, RejectCounter())
    assert rejects.as_dict() == {"malformed": 2}


def test_jaeger_json_in_chunks() -> None:
    path = shared_path(*GENAI)
    assert detect_format(path) is FileFormat.JAEGER_JSON
    rejects = RejectCounter()
    batches = list(load_file(path, rejects, chunk_spans=10))
    assert [len(b) for b in batches] == [10] * 5 + [7]
    spans = [b.materialize(i) for b in batches for i in range(len(b))]
    assert spans == spans_from_jaeger(json.loads(path.read_text()), RejectCounter())


def test_jaeger_file_with_broken_ids_is_counted() -> None:
    spans, rejects = _load(shared_path("jaeger", "jaeger-ui",
                                       "components__TracePage__TraceGraph__testTrace.json"))
    assert spans == [] and rejects.as_dict() == {"bad_id": 11}


@pytest.mark.parametrize("parts", [
    ("jaeger", "jaeger-ui", "components__DependencyGraph__sample_data__small.json"),
    ("jaeger", "otel-proto", "logs.json"),
    ("nab", "data", "realKnownCause", "ec2_request_latency_system_failure.csv"),
], ids=["dependency-graph", "otlp-logs", "nab-csv"])
def test_unknown_formats_name_the_file_and_the_formats(parts: tuple[str, ...]) -> None:
    path = shared_path(*parts)
    with pytest.raises(UnsupportedFileError) as err:
        load_file(path, RejectCounter())  # at the call, before any batch is asked for
    assert str(path) in str(err.value) and "Nezha span CSV" in str(err.value)
    assert "Jaeger JSON" in str(err.value) and "OTLP JSON" in str(err.value)
    with pytest.raises(UnsupportedFileError):
        detect_format(path)


def test_empty_file_and_truncated_json(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(UnsupportedFileError, match="empty file"):
        list(load_file(empty, RejectCounter()))
    truncated = tmp_path / "cut.json"
    truncated.write_text(shared_path(*GENAI).read_text()[:5000])
    spans, rejects = _load(truncated)
    assert spans == [] and rejects.as_dict() == {"malformed": 1}
