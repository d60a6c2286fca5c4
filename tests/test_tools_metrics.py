"""metrics: real Prometheus answers over HTTP, failures, the stand-in, and a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.simulator import MINUTE_NS, Simulator, TrafficModel
from bot.simulator.metrics import render_exposition
from tests.conftest import shared_path
from tests.prometheus_support import (
    ExpositionServer,
    QueryRangeStandIn,
    free_port,
    real_prometheus,
    wrap_matrix,
)
from tests.test_tools_support import T0, settings_for
from tools.base import ToolContext, ToolStatus, invoke
from tools.metrics.prometheus import (
    PrometheusClient,
    PrometheusFormatError,
    PrometheusQueryError,
    parse_range_answer,
)
from tools.metrics.promql import SIMULATOR_TEMPLATES, TemplateError, check_templates, render
from tools.metrics.standin import MetricStandIn
from tools.metrics.tool import MetricsTool

UP = "up_201907300000.json"


def _ctx(path: Path, url: str | None, now_ns: int) -> ToolContext:
    """Metrics read no store; the settings say where Prometheus is (or that it is not)."""
    return ToolContext(store=None, settings=settings_for(path, prometheus_url=url),
                       now_ns=now_ns)


def _up_series() -> list[dict[str, Any]]:
    series: list[dict[str, Any]] = json.loads(
        shared_path("prometheus", "prometheus-api-client", UP).read_text())
    return series


def test_parse_real_envelopes() -> None:
    folder = shared_path("prometheus", "jaeger-metricstore")
    prefix = "internal__storage__metricstore__prometheus__metricstore__testdata__"
    point = parse_range_answer(json.loads((folder / f"{prefix}service_datapoint_response.json")
                                          .read_text()))
    assert point.series[0].labels == {"service_name": "emailservice"}
    assert point.series[0].ts_s.tolist() == [1620351786.0]
    assert point.series[0].values.tolist() == [9223372036854.0]
    warned = parse_range_answer(json.loads((folder / f"{prefix}warning_response.json")
                                           .read_text()))
    assert warned.series == [] and warned.warnings == ["warning0", "warning1"]
    up = parse_range_answer(wrap_matrix(_up_series()))
    assert len(up.series) == 9 and up.series[0].values.size == 1080
    with pytest.raises(PrometheusQueryError, match="bad_data"):
        parse_range_answer({"status": "error", "errorType": "bad_data", "error": "parse error"})
    with pytest.raises(PrometheusFormatError):
        parse_range_answer({"data": []})


def test_templates_escape_the_service_and_reject_unknown_metrics() -> None:
    query = render('x{service="{service}"}', 'a"b\\c')
    assert query == 'x{service="a\\"b\\\\c"}'
    assert check_templates({})["cpu_percent"].startswith("sum(rate(process_cpu")
    with pytest.raises(TemplateError, match="unknown metric"):
        check_templates({"gpu": "x"})
    with pytest.raises(TemplateError, match="placeholder"):
        check_templates({"cpu_percent": "up"})


async def test_metrics_from_a_real_range_answer(tmp_path: Path) -> None:
    series = _up_series()
    job = str(series[2]["metric"]["job"])
    values = np.array([[float(t), float(v)] for t, v in series[2]["values"]])
    at = float(values[540, 0])
    with QueryRangeStandIn() as prom:
        prom.script.body = wrap_matrix([series[2]])
        tool = MetricsTool({"cpu_percent": 'up{job="{service}"}'})
        ctx = _ctx(tmp_path / "s.db", prom.url, int(at * 1e9))
        result = await invoke(tool, {"service": job, "window": "1h",
                                     "metrics": ["cpu_percent"]}, ctx)
    assert result.status is ToolStatus.OK, result.error
    assert result.source == "prometheus"
    sent = prom.script.requests[0]
    assert sent["query"] == f'up{{job="{job}"}}'
    assert float(sent["end"]) == pytest.approx(at, abs=1e-3)
    assert float(sent["start"]) == pytest.approx(at - 3600, abs=1e-3)
    facts = result.data["metrics"]["cpu_percent"]
    before = values[(values[:, 0] >= at - 3600) & (values[:, 0] <= at), 1]
    assert facts["at"] == values[540, 1]
    assert facts["mean_before"] == pytest.approx(before.mean(), abs=1e-4)
    assert f"CPU {values[540, 1]:.1f}%" in result.summary


@pytest.mark.parametrize(("status", "body", "expect", "message"), [
    (200, wrap_matrix([], "warning", warnings=["warning0"]), ToolStatus.EMPTY, "no prometheus"),
    (400, {"status": "error", "errorType": "bad_data", "error": "1:5: parse error"},
     ToolStatus.ERROR, "bad_data"),
    (503, {"status": "error", "errorType": "unavailable", "error": "shutting down"},
     ToolStatus.ERROR, "unavailable"),
    (200, "<html>login</html>", ToolStatus.ERROR, "Prometheus base URL"),
])
async def test_failures_become_clear_results(tmp_path: Path, status: int, body: object,
                                             expect: ToolStatus, message: str) -> None:
    with QueryRangeStandIn() as prom:
        prom.script.body, prom.script.status = body, status
        ctx = _ctx(tmp_path / "s.db", prom.url, 1_564_437_609 * 10**9)
        result = await invoke(MetricsTool(), {"service": "kx-exchange"}, ctx)
    assert result.status is expect
    assert message in (result.error or "")
    assert len(prom.script.requests) == 5  # one query per metric, all sent


async def test_timeout_and_unreachable(tmp_path: Path) -> None:
    with QueryRangeStandIn() as prom:
        prom.script.body, prom.script.delay_s = wrap_matrix([]), 2.0
        ctx = _ctx(tmp_path / "s.db", prom.url, 1_564_437_609 * 10**9)
        async with PrometheusClient(prom.url, timeout_s=0.3) as client:
            ctx.clients["prometheus"] = client
            slow = await invoke(MetricsTool(), {"service": "kx-exchange",
                                                "metrics": ["p99_ms"]}, ctx)
        ctx.clients.clear()
        ctx.settings = settings_for(tmp_path / "s.db",
                                    prometheus_url=f"http://127.0.0.1:{free_port()}")
        down = await invoke(MetricsTool(), {"service": "kx-exchange"}, ctx)
    assert slow.status is ToolStatus.ERROR and "did not answer within 0.3 s" in (slow.error or "")
    assert down.status is ToolStatus.ERROR and "unreachable" in (down.error or "")


async def test_stand_in_is_the_simulator_and_says_so(tmp_path: Path) -> None:
    sim = Simulator(3, traffic=TrafficModel(sampled_per_minute=5))
    at = T0 + 10 * 60 * MINUTE_NS
    minute = at // MINUTE_NS
    expected = {s.name: s.value for s in sim.metrics(minute, sim.generate(at, MINUTE_NS))
                if s.labels["service"] == "kx-wallet"}
    tool = MetricsTool(standin=MetricStandIn(sim, max_points=100))
    ctx = _ctx(tmp_path / "s.db", None, at + 3600 * 10**9)
    result = await invoke(tool, {"service": "kx-wallet", "at": "2024-05-06T10:00:00Z"}, ctx)
    unknown = await invoke(tool, {"service": "payments"}, ctx)
    assert result.status is ToolStatus.OK and result.source == "stand-in"
    assert result.summary.startswith("STAND-IN values from the simulator")
    facts = result.data["metrics"]
    assert facts["cpu_percent"]["at"] == round(expected["opsbot_sim_cpu_percent"], 4)
    assert facts["error_rate_pct"]["at"] == round(100 * expected["opsbot_sim_error_rate"], 4)
    assert facts["memory_mb"]["at"] == round(expected["opsbot_sim_memory_mb"], 4)
    assert f"memory {expected['opsbot_sim_memory_mb']:.0f}MB" in result.summary
    assert unknown.status is ToolStatus.EMPTY and "kx-wallet" in (unknown.error or "")


@pytest.mark.prometheus
async def test_against_a_real_prometheus(tmp_path: Path) -> None:
    sim = Simulator(5, traffic=TrafficModel(sampled_per_minute=5))
    minute = (T0 // MINUTE_NS) + 600
    samples = sim.metrics(minute, sim.generate(minute * MINUTE_NS, MINUTE_NS))
    want = {s.name: s.value for s in samples if s.labels["service"] == "order-matcher"}
    with ExpositionServer(lambda: render_exposition(samples, timestamps=False)) as target, \
            real_prometheus(f"127.0.0.1:{target.port}", tmp_path) as url:
        tool = MetricsTool(SIMULATOR_TEMPLATES)
        result = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ctx = _ctx(tmp_path / "s.db", url, time.time_ns())
            result = await invoke(tool, {"service": "order-matcher", "window": "5m"}, ctx)
            if result.ok and len(result.data["metrics"]) == 5:
                break
            await asyncio.sleep(0.5)
    assert result is not None and result.status is ToolStatus.OK, result and result.error
    assert target.scrapes >= 1
    facts = result.data["metrics"]
    assert facts["cpu_percent"]["at"] == round(want["opsbot_sim_cpu_percent"], 4)
    assert facts["request_rate_rps"]["at"] == round(want["opsbot_sim_request_rate"], 4)
    assert facts["error_rate_pct"]["at"] == pytest.approx(
        100 * want["opsbot_sim_error_rate"], abs=1e-4)
    assert facts["p99_ms"]["at"] == round(want["opsbot_sim_p99_ms"], 4)
    assert result.source == "prometheus" and "STAND-IN" not in result.summary
