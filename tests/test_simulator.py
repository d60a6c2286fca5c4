"""The telemetry simulator: determinism, trace validity, distributions, incidents and sinks."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from bot.simulator import (
    DEFAULT_TOPOLOGY,
    HOUR_NS,
    MINUTE_NS,
    SCENARIOS,
    Entry,
    MetricSample,
    Operation,
    OtlpExportError,
    OtlpHttpEmitter,
    RetryPolicy,
    Scenario,
    ScheduleError,
    ServiceProfile,
    Signal,
    SimulationRangeError,
    Simulator,
    SpanColumns,
    Topology,
    TopologyError,
    TrafficModel,
    encode_otlp_protobuf,
    load_ground_truth,
    make_incident,
    otlp_json,
    render_exposition,
    schedule_incidents,
    write_ground_truth,
    write_otlp_json,
    write_otlp_jsonl,
    write_replay,
)
from bot.simulator.metrics import CPU_PERCENT, MEMORY_MB, P99_MS, REQUEST_RATE, quantile
from bot.spans import SpanKind

MONDAY = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC, a Monday
BUSY = MONDAY + 10 * HOUR_NS
Sleep = Callable[[float], Awaitable[None]]
_COLUMNS = ("key_idx", "trace_row", "trace_hi", "trace_lo", "span_id", "parent_id",
            "start_ns", "duration_ns", "status")


def same(a: SpanColumns, b: SpanColumns) -> bool:
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in _COLUMNS)


def parent_rows(spans: SpanColumns) -> np.ndarray:
    """Row of each span's parent (-1 for roots); asserts every parent is in the chunk."""
    order = np.argsort(spans.span_id)
    pos = np.searchsorted(spans.span_id[order], spans.parent_id)
    pos = np.minimum(pos, len(spans) - 1)
    rows = np.where(spans.parent_id == 0, -1, order[pos])
    found = spans.span_id[np.maximum(rows, 0)] == spans.parent_id
    assert (found | (rows < 0)).all(), "a parent id is missing from the chunk"
    return rows


def exclusive_ms(spans: SpanColumns) -> np.ndarray:
    """Each span's duration minus its children's (they run one after another)."""
    up = parent_rows(spans)
    child = up >= 0
    kids = np.bincount(up[child], weights=spans.duration_ns[child], minlength=len(spans))
    return np.asarray((spans.duration_ns - kids) / 1e6)


# -- determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_output_and_other_seed_differs() -> None:
    a = Simulator(7).generate(BUSY, 20 * MINUTE_NS)
    b = Simulator(7).generate(BUSY, 20 * MINUTE_NS)
    c = Simulator(8).generate(BUSY, 20 * MINUTE_NS)
    assert len(a) > 1000
    assert same(a, b)
    assert json.dumps(otlp_json(a)) == json.dumps(otlp_json(b))
    assert not np.array_equal(a.span_id[:100], c.span_id[:100])


def test_output_does_not_depend_on_chunk_size() -> None:
    sim = Simulator(3)
    whole = sim.generate(BUSY - 30 * MINUTE_NS, 90 * MINUTE_NS)  # crosses an hour block
    chunks = list(Simulator(3).replay(BUSY - 30 * MINUTE_NS, 90 * MINUTE_NS, 7 * MINUTE_NS))
    assert [c.end_ns - c.start_ns for c in chunks][:2] == [7 * MINUTE_NS] * 2
    assert same(whole, SpanColumns.concat(sim.table, [c.spans for c in chunks]))
    assert len({s.ts_ns for c in chunks for s in c.metrics}) == 90
    [one] = Simulator(3).replay(BUSY - 30 * MINUTE_NS, 90 * MINUTE_NS, 90 * MINUTE_NS)
    assert same(whole, one.spans)
    assert one.metrics == [s for c in chunks for s in c.metrics]


def test_unaligned_range_is_refused() -> None:
    with pytest.raises(SimulationRangeError, match="whole minutes"):
        Simulator(0).generate(BUSY + 1, MINUTE_NS)
    with pytest.raises(SimulationRangeError, match="step_ns"):
        next(Simulator(0).replay(BUSY, MINUTE_NS, 1000))


# -- trace structure ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, Scenario.CASCADING_TIMEOUT, Scenario.RETRY_STORM])
def test_traces_are_valid_trees(scenario: Scenario | None) -> None:
    incidents = [make_incident(scenario, BUSY, 20 * MINUTE_NS)] if scenario else []
    spans = Simulator(5, incidents=incidents).generate(BUSY, 20 * MINUTE_NS)
    assert np.unique(spans.span_id).size == len(spans)
    assert (spans.span_id != 0).all()
    up = parent_rows(spans)
    child = np.flatnonzero(up >= 0)
    parent = up[child]
    assert (spans.trace_row[child] == spans.trace_row[parent]).all()
    end = spans.start_ns + spans.duration_ns
    assert (spans.start_ns[child] >= spans.start_ns[parent]).all()
    assert (end[child] <= end[parent]).all()
    assert (spans.duration_ns > 0).all()
    roots = np.bincount(spans.trace_row[up < 0], minlength=spans.trace_count)
    assert (roots == 1).all(), "every trace has exactly one root"
    assert (exclusive_ms(spans) >= 0).all(), "a parent outlasts its children's critical path"
    if scenario is Scenario.CASCADING_TIMEOUT:
        assert spans.error.mean() > 0.1  # the timeouts happened, and the tree stayed valid


def test_batch_and_full_spans_agree() -> None:
    spans = Simulator(2).generate(BUSY, 3 * MINUTE_NS)
    batch = spans.to_batch()
    full = spans.spans()
    assert len(batch) == len(full) == len(spans)
    assert batch.keys == [s.key for s in full]
    assert batch.trace_ids == [s.trace_id for s in full]
    for i in (0, len(full) // 2, len(full) - 1):
        assert batch.materialize(i) == full[i]
    for s in full:
        s.validate()
        assert re.fullmatch(r"[0-9a-f]{32}", s.trace_id)
        assert re.fullmatch(r"[0-9a-f]{16}", s.span_id)
    assert {s.key for s in full} >= {"kx-exchange:pg-pool.connect", "kx-exchange:pg.query",
                                     "kx-exchange:publish orders", "order-matcher:match",
                                     "api-gateway:POST /orders", "kx-wallet:GET /balance"}


# -- distributions and seasonality --------------------------------------------------------


def test_self_time_of_every_operation_follows_its_log_normal() -> None:
    traffic = TrafficModel(sampled_per_minute=600, load_sensitivity=0.0)
    spans = Simulator(11, traffic=traffic).generate(BUSY, 20 * MINUTE_NS)
    self_ms = exclusive_ms(spans)
    keys = np.array(spans.keys())
    for op in DEFAULT_TOPOLOGY.operations:
        got = self_ms[keys == op.key]
        assert got.size > 500, op.key
        for q in (0.1, 0.5, 0.9):
            want = op.median_ms * np.exp(op.sigma * statistics.NormalDist().inv_cdf(q))
            assert np.quantile(got, q) == pytest.approx(want, rel=0.08), (op.key, q)
        assert np.log(got).std() == pytest.approx(op.sigma, rel=0.1), op.key


def test_busy_hours_have_more_requests_and_slightly_slower_medians() -> None:
    sim = Simulator(4)
    wednesday = MONDAY + 2 * 24 * HOUR_NS
    busy = sim.generate(wednesday + 14 * HOUR_NS, HOUR_NS)
    quiet = sim.generate(wednesday + 3 * HOUR_NS, HOUR_NS)
    saturday = sim.generate(MONDAY + 5 * 24 * HOUR_NS + 14 * HOUR_NS, HOUR_NS)
    assert busy.trace_count > 3 * quiet.trace_count
    assert busy.trace_count > 1.5 * saturday.trace_count

    def median_query(spans: SpanColumns) -> float:
        return float(np.median(spans.duration_ns[np.array(spans.keys()) == "kx-wallet:pg.query"]))

    assert median_query(busy) > 1.15 * median_query(quiet)


# -- incidents ---------------------------------------------------------------------------

_WINDOW = (BUSY + 30 * MINUTE_NS, 30 * MINUTE_NS)
_TRAFFIC = TrafficModel(sampled_per_minute=120)


@pytest.fixture(scope="module")
def clean() -> Simulator:
    return Simulator(3, traffic=_TRAFFIC)


def _root_signal(sim: Simulator, spec_key: str, signal: Signal) -> float:
    start, length = _WINDOW
    spans = sim.generate(start, length)
    mask = np.array(spans.keys()) == spec_key
    if signal is Signal.LATENCY:
        return float(np.quantile(spans.duration_ns[mask], 0.95))
    return float(spans.error[mask].mean())


def _metric_mean(sim: Simulator, name: str, service: str) -> float:
    start, length = _WINDOW
    values = [s.value for chunk in sim.replay(start, length, length) for s in chunk.metrics
              if s.name == name and s.labels["service"] == service]
    return float(np.mean(values))


_METRIC = {Signal.CPU: CPU_PERCENT, Signal.MEMORY: MEMORY_MB, Signal.REQUEST_RATE: REQUEST_RATE}


@pytest.mark.parametrize("scenario", list(Scenario))
def test_scenario_moves_its_root_cause_inside_its_window_only(
        scenario: Scenario, clean: Simulator) -> None:
    spec = SCENARIOS[scenario]
    incident = make_incident(scenario, *_WINDOW)
    sim = Simulator(3, traffic=_TRAFFIC, incidents=[incident])
    for signal in spec.signals:
        if signal in (Signal.LATENCY, Signal.ERRORS):
            base = _root_signal(clean, spec.root_key, signal)
            hit = _root_signal(sim, spec.root_key, signal)
            assert hit > (1.5 * base if signal is Signal.LATENCY else base + 0.1), signal
        else:
            base = _metric_mean(clean, _METRIC[signal], spec.root_service)
            hit = _metric_mean(sim, _METRIC[signal], spec.root_service)
            assert hit > {Signal.CPU: base + 5, Signal.MEMORY: base + 200,
                          Signal.REQUEST_RATE: 1.5 * base}[signal], signal
    start, length = _WINDOW
    for outside in (start - 30 * MINUTE_NS, start + length):
        assert same(sim.generate(outside, 30 * MINUTE_NS), clean.generate(outside, 30 * MINUTE_NS))
        [inc_chunk] = sim.replay(outside, 5 * MINUTE_NS, 5 * MINUTE_NS)
        [clean_chunk] = clean.replay(outside, 5 * MINUTE_NS, 5 * MINUTE_NS)
        assert inc_chunk.metrics == clean_chunk.metrics


def test_every_family_is_registered_with_a_known_root() -> None:
    assert len(Scenario) == 15 and set(SCENARIOS) == set(Scenario)
    for spec in SCENARIOS.values():
        DEFAULT_TOPOLOGY.index(spec.root_key)
        for effect in spec.effects:
            DEFAULT_TOPOLOGY.index(effect.key)
        assert spec.signals


def test_ground_truth_names_root_and_upstream_keys_and_round_trips(tmp_path: Path) -> None:
    inc = make_incident(Scenario.CONNECTION_POOL_EXHAUSTION, BUSY, 10 * MINUTE_NS, 1.2)
    assert (inc.root_service, inc.root_operation) == ("kx-exchange", "kx-exchange:pg-pool.connect")
    assert inc.end_ns - inc.start_ns == 10 * MINUTE_NS
    assert {"kx-exchange:pg-pool.wait", "kx-exchange:POST /orders",
            "api-gateway:GET /orderbook"} <= set(inc.affected_keys)
    assert "kx-wallet:GET /balance" not in inc.affected_keys
    path = write_ground_truth(tmp_path / "truth.json", [inc])
    assert load_ground_truth(path.read_text()) == [inc]
    assert json.loads(path.read_text())[0]["signals"] == ["latency"]
    with pytest.raises(ScheduleError, match="unknown scenario"):
        make_incident("power_cut", BUSY)


def test_schedule_places_each_family_apart_and_reproducibly() -> None:
    horizon = 7 * 24 * HOUR_NS
    plan = schedule_incidents(9, MONDAY, horizon, 15, min_gap_ns=HOUR_NS)
    assert plan == schedule_incidents(9, MONDAY, horizon, 15, min_gap_ns=HOUR_NS)
    assert plan != schedule_incidents(10, MONDAY, horizon, 15, min_gap_ns=HOUR_NS)
    assert {g.scenario for g in plan} == set(Scenario)
    ordered = sorted(plan, key=lambda g: g.start_ns)
    assert ordered[0].start_ns >= MONDAY + HOUR_NS
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert b.start_ns - a.end_ns >= HOUR_NS
    assert ordered[-1].scenario is Scenario.DEPLOY_REGRESSION
    assert ordered[-1].end_ns == MONDAY + horizon
    assert schedule_incidents(9, MONDAY, horizon, 0) == []
    with pytest.raises(ScheduleError, match="lengthen it"):
        schedule_incidents(9, MONDAY, 6 * HOUR_NS, 10)
    with pytest.raises(ScheduleError, match="persistent"):
        schedule_incidents(9, MONDAY, horizon, 2, [Scenario.DEPLOY_REGRESSION])


# -- metrics -----------------------------------------------------------------------------


def test_metrics_agree_with_the_minute_spans_and_the_traffic_model() -> None:
    sim = Simulator(6)
    [chunk] = sim.replay(BUSY, MINUTE_NS, MINUTE_NS)
    by = {(s.name, s.labels["service"]): s.value for s in chunk.metrics}
    assert len(chunk.metrics) == 5 * len(DEFAULT_TOPOLOGY.services)
    keys = np.array(chunk.spans.keys())
    served = np.isin(keys, ["kx-wallet:GET /balance", "kx-wallet:POST /reserve"])
    want = quantile(chunk.spans.duration_ns[served], 0.99) / 1e6
    assert by[(P99_MS, "kx-wallet")] == pytest.approx(want)
    load = float(sim.traffic.load(BUSY + MINUTE_NS // 2))
    # every request passes the gateway once
    assert by[(REQUEST_RATE, "api-gateway")] == pytest.approx(150 * load, rel=0.1)
    assert all(0 <= by[(CPU_PERCENT, s.name)] <= 100 for s in DEFAULT_TOPOLOGY.services)
    assert all(s.ts_ns == BUSY for s in chunk.metrics)


def test_exposition_parses_with_the_prometheus_client() -> None:
    samples = [
        MetricSample(CPU_PERCENT, {"service": "kx-exchange"}, BUSY, 42.5),
        MetricSample(CPU_PERCENT, {"service": 'we"ird\\'}, BUSY, 1.0),
        MetricSample(P99_MS, {"service": "kx-wallet"}, BUSY, float("nan")),
    ]
    text = render_exposition(samples)
    assert 'opsbot_sim_cpu_percent{service="kx-exchange"} 42.5 1704103200000' in text
    assert text.count("# TYPE opsbot_sim_cpu_percent gauge") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    cpu = families[CPU_PERCENT].samples
    assert [(s.labels["service"], s.value) for s in cpu] == [("kx-exchange", 42.5),
                                                              ('we"ird\\', 1.0)]
    assert np.isnan(families[P99_MS].samples[0].value)
    assert render_exposition([]) == ""


# -- file and HTTP sinks -----------------------------------------------------------------


def _check_otlp_json(doc: dict[str, object], spans: SpanColumns) -> None:
    seen = set()
    for rs in doc["resourceSpans"]:  # type: ignore[attr-defined]
        service = rs["resource"]["attributes"][0]["value"]["stringValue"]
        for span in rs["scopeSpans"][0]["spans"]:
            assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"])
            assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
            assert re.fullmatch(r"[0-9a-f]{16}", span.get("parentSpanId", "0" * 16))
            assert isinstance(span["startTimeUnixNano"], str)
            assert span["startTimeUnixNano"].isdigit()
            assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
            assert isinstance(span["kind"], int) and 1 <= span["kind"] <= 5
            for attr in span.get("attributes", []):
                if "intValue" in attr["value"]:
                    assert isinstance(attr["value"]["intValue"], str)
            seen.add((span["traceId"], span["spanId"], span.get("parentSpanId"), service,
                      span["name"], int(span["startTimeUnixNano"]), "status" in span))
    want = {(s.trace_id, s.span_id, s.parent_id, s.service, s.operation, s.start_ns, s.error)
            for s in spans.spans()}
    assert seen == want


def test_otlp_json_files_round_trip(tmp_path: Path) -> None:
    sim = Simulator(1, incidents=[make_incident(Scenario.ERROR_BURST, BUSY, 5 * MINUTE_NS)])
    spans = sim.generate(BUSY, 2 * MINUTE_NS)
    _check_otlp_json(json.loads(write_otlp_json(tmp_path / "a.json", spans).read_text()), spans)
    chunks = [c.spans for c in sim.replay(BUSY, 3 * MINUTE_NS)]
    assert write_otlp_jsonl(tmp_path / "b.jsonl", chunks) == sum(map(len, chunks))
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for line, chunk in zip(lines, chunks, strict=True):
        _check_otlp_json(json.loads(line), chunk)
    paths = write_replay(tmp_path / "replay", sim.replay(BUSY, 4 * MINUTE_NS, 2 * MINUTE_NS))
    assert [p.name for p in paths] == [f"{kind}-{BUSY + i * 2 * MINUTE_NS}.{ext}"
                                       for i in range(2) for kind, ext in
                                       (("spans", "json"), ("metrics", "prom"))]
    families = list(text_string_to_metric_families(paths[1].read_text()))
    assert sum(len(f.samples) for f in families) == 2 * 5 * len(DEFAULT_TOPOLOGY.services)


class RecordingCollector:
    """A real HTTP/1.1 server on 127.0.0.1 that answers with scripted statuses and keeps bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/traces"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: one connection carries the retries
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lines = head.decode("latin-1").split("\r\n")
            fields = (ln.split(":", 1) for ln in lines[1:] if ln)
            headers = {k.lower(): v.strip() for k, v in fields}
            self.paths.append(lines[0].split(" ")[1])
            self.bodies.append(await reader.readexactly(int(headers["content-length"])))
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nRetry-After: 0\r\n\r\n"
                         .encode())
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> RecordingCollector:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
def sleeps() -> tuple[list[float], Sleep]:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    return waited, sleep


@pytest.fixture
async def collector_503_then_ok() -> AsyncIterator[RecordingCollector]:
    async with RecordingCollector([503]) as c:
        yield c


async def test_protobuf_emitter_retries_and_posts_a_parsable_request(
        collector_503_then_ok: RecordingCollector, sleeps: tuple[list[float], Sleep]) -> None:
    waited, sleep = sleeps
    spans = Simulator(1).generate(BUSY, 2 * MINUTE_NS)
    retry = RetryPolicy(attempts=3, initial_backoff_s=0.25)
    async with OtlpHttpEmitter(collector_503_then_ok.url, retry=retry, sleep=sleep) as emitter:
        result = await emitter.send(spans)
    assert (result.spans, result.attempts, result.rejected) == (len(spans), 2, 0)
    assert waited == [0.25]
    assert collector_503_then_ok.paths == ["/v1/traces"] * 2
    request = ExportTraceServiceRequest()
    request.ParseFromString(collector_503_then_ok.bodies[-1])
    got = [(sp.trace_id.hex(), sp.span_id.hex(), sp.parent_span_id.hex() or None, sp.name)
           for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert len(got) == len(spans)
    assert sorted(got) == sorted((s.trace_id, s.span_id, s.parent_id, s.operation)
                                 for s in spans.spans())
    kinds = {sp.kind for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans}
    assert kinds == {int(k) for k in (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL,
                                      SpanKind.PRODUCER, SpanKind.CONSUMER)}


async def test_protobuf_emitter_fails_clearly(sleeps: tuple[list[float], Sleep]) -> None:
    waited, sleep = sleeps
    spans = Simulator(1).generate(BUSY, MINUTE_NS)
    async with RecordingCollector([400]) as bad:
        async with OtlpHttpEmitter(bad.url, sleep=sleep) as emitter:
            with pytest.raises(OtlpExportError, match="refused") as info:
                await emitter.send(spans)
        url = bad.url
    assert info.value.status_code == 400 and waited == []
    async with OtlpHttpEmitter(url, retry=RetryPolicy(attempts=3), sleep=sleep) as emitter:
        with pytest.raises(OtlpExportError, match="gave up .* 3 attempts .*ConnectError"):
            await emitter.send(spans)
    assert waited == [0.5, 1.0]


def test_retry_policy_backs_off_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, multiplier=2.0, max_backoff_s=4.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(1, "3") == 3.0
    assert policy.delay(1, "120") == 4.0  # capped
    assert policy.delay(2, "soon") == 1.0  # unreadable hint ignored


async def test_protobuf_emitter_retries_429(sleeps: tuple[list[float], Sleep]) -> None:
    waited, sleep = sleeps
    spans = Simulator(1).generate(BUSY, MINUTE_NS)
    async with (RecordingCollector([429, 502]) as busy,
                OtlpHttpEmitter(busy.url, sleep=sleep) as emitter):
        result = await emitter.send(spans)
    assert result.attempts == 3 and waited == [0.5, 1.0] and len(busy.bodies) == 3
    assert busy.bodies[0] == busy.bodies[2] == encode_otlp_protobuf(spans)


# -- topology validation -----------------------------------------------------------------


def _tiny(children: tuple[str, ...]) -> Topology:
    return Topology(
        operations=(Operation("a", "root", SpanKind.SERVER, 1.0, 0.2, children),
                    Operation("a", "leaf", SpanKind.CLIENT, 1.0, 0.2, ("a:root",))),
        entries=(Entry("a:root", 1.0),),
        services=(ServiceProfile("a", 1.0, 0.1, 100.0),),
    )


def test_topology_rejects_unknown_children_and_cycles() -> None:
    with pytest.raises(TopologyError, match="not an operation"):
        _tiny(("a:nope",))
    with pytest.raises(TopologyError, match="cycle"):
        _tiny(("a:leaf",))

