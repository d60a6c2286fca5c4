"""A real Prometheus: simulator metrics with an injected incident, polled into the engine.

History is backfilled with `promtool tsdb create-blocks-from openmetrics` (six
simulated hours, the incident in the last twenty minutes) and the current
minute is scraped live from our exposition endpoint; the poller reads both
through PromQL and the engine persists an anomaly on the saturated service.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.detection.engine import DetectionEngine
from bot.detection.metrics_poller import MetricsPoller, parse_queries
from bot.simulator import HOUR_NS, MINUTE_NS, Simulator, TrafficModel, make_incident
from bot.simulator.metrics import CPU_PERCENT, MEMORY_MB, MetricSample, render_exposition
from bot.store import SqliteStore
from detectors.config import BaselineConfig, DetectorConfig
from tests.prometheus_support import ExpositionServer, real_prometheus
from tools.metrics.prometheus import PrometheusClient

pytestmark = pytest.mark.prometheus

HISTORY_MIN = 6 * 60
# six hours of history instead of a day before the global bucket may score
CONFIG = DetectorConfig(baseline=replace(BaselineConfig(), global_min_span_s=3 * 3600.0))
RESOURCE = (CPU_PERCENT, MEMORY_MB)


def _openmetrics(samples: list[MetricSample], extra: dict[str, str]) -> str:
    """OpenMetrics text for promtool: one family at a time, each series in time order."""
    lines: list[str] = []
    for name in RESOURCE:
        lines.append(f"# TYPE {name} gauge")
        series = sorted((s for s in samples if s.name == name),
                        key=lambda s: (sorted(s.labels.items()), s.ts_ns))
        for s in series:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted({**s.labels, **extra}.items()))
            lines.append(f"{name}{{{labels}}} {s.value!r} {s.ts_ns // 10**9}")
    return "\n".join(lines) + "\n# EOF\n"


def _backfill(text: str, folder: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install -y prometheus)")
    source = folder / "history.om"
    source.write_text(text)
    (folder / "tsdb").mkdir()
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q",
                           str(source), str(folder / "tsdb")], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-500:]


async def test_scraped_incident_is_polled_detected_and_persisted(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (apt-get install -y prometheus)")
    now = time.time_ns() // MINUTE_NS * MINUTE_NS  # the live minute
    incident = make_incident("cpu_saturation", now - 20 * MINUTE_NS, 60 * MINUTE_NS)
    # the simulated clock reads 15:00 at `now` whatever the real hour: six hours of history
    # cannot hold a daily cycle, and at some hours its slope alone would open an anomaly on
    # the young global baseline before the incident (the test then failed by time of day)
    phase = TrafficModel(utc_offset_hours=(15 * HOUR_NS - now % (24 * HOUR_NS)) / HOUR_NS)
    sim = Simulator(42, incidents=[incident], traffic=phase)
    history = [s for chunk in sim.replay(now - HISTORY_MIN * MINUTE_NS, HISTORY_MIN * MINUTE_NS,
                                         60 * MINUTE_NS)
               for s in chunk.metrics if s.name in RESOURCE]
    live = [s for s in sim.metrics(now // MINUTE_NS, sim.generate(now, MINUTE_NS))
            if s.name in RESOURCE]
    # the live minute is served with its own timestamp: the poller's last step reads it
    with ExpositionServer(lambda: render_exposition(live)) as exporter:
        target = f"127.0.0.1:{exporter.port}"
        _backfill(_openmetrics(history, {"job": "opsbot-sim", "instance": target}), tmp_path)
        with real_prometheus(target, tmp_path) as url:
            deadline = time.monotonic() + 10
            while exporter.scrapes < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert exporter.scrapes >= 2, "Prometheus never scraped the exposition endpoint"
            db = tmp_path / "opsbot.db"
            queries = parse_queries([CPU_PERCENT, f"mem={MEMORY_MB}"])
            async with SqliteStore(db) as store:
                engine = DetectionEngine(store, CONFIG)
                await engine.start()
                poller = MetricsPoller(PrometheusClient(url), engine, queries,
                                       backfill_s=HISTORY_MIN * 60, delay_s=0,
                                       clock=lambda: now + 30 * 10**9)
                fed = await poller.poll_once()
                await engine.close()
                anomalies = await store.list_anomalies()
                series = {s.name: s for s in await store.list_series("metric")}
            async with SqliteStore(db) as store:  # a restart: the cursor says all is fed
                engine = DetectionEngine(store, CONFIG)
                await engine.start()
                poller.engine = engine
                assert await poller.poll_once() == 0
                await engine.close()
            await poller.client.aclose()
    n_series = len({(s.name, s.labels["service"]) for s in history})
    # the steps in (now - backfill, now]: 359 backfilled minutes and the live one
    assert fed == n_series * HISTORY_MIN
    cpu = f'{CPU_PERCENT}{{instance="{target}",job="opsbot-sim",service="kx-exchange"}}'
    mem = f'mem{{instance="{target}",job="opsbot-sim",service="kx-exchange"}}'
    assert cpu in series and mem in series
    assert series[cpu].service == "kx-exchange" and series[cpu].operation == CPU_PERCENT
    hits = [a for a in anomalies if a.key == cpu]
    assert hits, f"no anomaly on {cpu}; got {[a.key for a in anomalies]}"
    assert incident.start_ns <= hits[0].started_ns <= incident.start_ns + 5 * MINUTE_NS
    assert hits[0].service == "kx-exchange" and hits[0].state == "open"
    assert all(a.service == "kx-exchange" for a in anomalies)  # quiet services stay quiet
    # the live, scraped minute reached the engine too
    assert engine.metrics.last_sample_ns[cpu] == now
    value = next(s.value for s in live if s.name == CPU_PERCENT
                 and s.labels["service"] == "kx-exchange")
    assert engine.metrics.detectors[cpu].pending_values()[-1] == pytest.approx(value)
