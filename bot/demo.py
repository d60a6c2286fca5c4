"""`opsbot demo`: the service on embedded defaults, fed by the built-in simulator.

History is replayed straight into the pipeline (a simulated clock, fast); then
live traffic is generated minute by minute and sent to our own OTLP/HTTP
receiver as protobuf, exactly as an OpenTelemetry SDK would send it. The
detection engine scores both; each anomaly or incident event prints one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from rich.console import Console
from rich.progress import Progress

from bot.detection.events import EngineEvent
from bot.server import Service, describe_event, serve
from bot.settings import Settings
from bot.simulator import (
    MINUTE_NS,
    SCENARIOS,
    Simulator,
    TrafficModel,
    make_incident,
    otlp_request,
)
from bot.simulator.metrics import CPU_PERCENT, MEMORY_MB, MetricSample

__all__ = ["run_demo"]

DAY_NS = 86_400 * 10**9
LIVE_INCIDENTS_AFTER_NS = 5 * MINUTE_NS  # simulated time: 5 s into the live part by default
LIVE_INCIDENT_EVERY_NS = 40 * MINUTE_NS  # longer than every family's default length
# Resource metrics reach the engine as metric series, the path `opsbot run` feeds from
# Prometheus; the simulator's error rate and p99 would repeat what span windows score.
DEMO_METRICS = frozenset({CPU_PERCENT, MEMORY_MB})


async def run_demo(
    settings: Settings,
    console: Console,
    duration_s: float | None = None,
    seconds_per_minute: float = 1.0,
) -> dict[str, int]:
    """Replay history, then stream live minutes over OTLP until `duration_s` (or Ctrl-C).

    The live part carries injected incidents (every family in turn, the first a few
    simulated minutes in), so the detection engine has something to announce.
    """
    now = time.time_ns() // MINUTE_NS * MINUTE_NS
    families = sorted(SCENARIOS, key=lambda s: SCENARIOS[s].persistent)  # the lasting one last
    incidents = [make_incident(s, now + LIVE_INCIDENTS_AFTER_NS + i * LIVE_INCIDENT_EVERY_NS)
                 for i, s in enumerate(families)]
    sim = Simulator(settings.simulator_seed, incidents=incidents,
                    traffic=TrafficModel(sampled_per_minute=settings.simulator_requests_per_minute))
    history_start = now - settings.simulator_history_days * DAY_NS
    async with Service.running(settings) as service:
        if service.alerts is None or not service.alerts.prints_events:
            service.engine.subscribe(_printer(console))  # Slack posts; still show a line here
        ready = asyncio.Event()
        server = asyncio.create_task(serve(service, ready))
        await _wait_ready(server, ready)
        await _replay_history(service, sim, history_start, now, console)
        url = f"http://{settings.http_host}:{service.port}/v1/traces"
        console.print(f"live: one simulated minute every {seconds_per_minute:g}s, "
                      f"sent as OTLP to {url}")
        try:
            await _live(service, sim, now, url, console, duration_s, seconds_per_minute)
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        await service.pipeline.flush()
        stats = await service.store.stats()
        span_keys = len(await service.store.list_series("span"))
    return {"spans": service.pipeline.stats.spans_ingested, "keys": span_keys,
            "metric_series": len(service.engine.metrics.detectors),
            "aggregate_rows": stats.aggregate_rows, "exemplar_traces": stats.exemplar_traces,
            "windows_scored": service.engine.stats.windows_scored,
            "anomalies_opened": service.engine.stats.anomalies_opened}


def _printer(console: Console) -> Callable[[EngineEvent], Awaitable[None]]:
    """Print anomaly opened/resolved and incident events, one plain line each."""

    async def show(event: EngineEvent) -> None:
        if event.subject == "anomaly" and event.kind == "updated":
            return  # peaks and exemplars change often; the Slack channel edits in place
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(event.t_ns / 1e9))
        console.print(f"[{when} UTC] {describe_event(event)}", highlight=False, markup=False)

    return show


async def _wait_ready(server: asyncio.Task[None], ready: asyncio.Event) -> None:
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        waiter.cancel()
        await server  # raises the bind error


async def _replay_history(service: Service, sim: Simulator, start: int, end: int,
                          console: Console) -> None:
    if end <= start:
        return
    hours = (end - start) // (60 * MINUTE_NS)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"replaying {hours} h of simulated history", total=hours)
        for batch, metrics in sim.batches(start, end - start, step_ns=60 * MINUTE_NS):
            await service.pipeline.ingest(batch)
            _feed_metrics(service, metrics)
            progress.advance(task)
    await service.pipeline.flush()
    await service.engine.advance()
    console.print(f"history: {service.pipeline.stats.spans_ingested:,} spans, "
                  f"{len(service.pipeline.keys)} span keys")


def _feed_metrics(service: Service, samples: list[MetricSample]) -> None:
    """The demo's metric samples into the engine (scored now, written at its next step)."""
    service.engine.feed_metrics([s for s in samples if s.name in DEMO_METRICS])


async def _live(service: Service, sim: Simulator, start: int, url: str, console: Console,
                duration_s: float | None, seconds_per_minute: float) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    minute = start
    headers = {"Content-Type": "application/x-protobuf"}
    async with httpx.AsyncClient(timeout=10) as client:
        while deadline is None or time.monotonic() < deadline:
            cols = sim.generate(minute, MINUTE_NS)
            _feed_metrics(service, sim.metrics(minute // MINUTE_NS, cols))
            body = otlp_request(cols).SerializeToString()
            resp = await client.post(url, content=body, headers=headers)
            resp.raise_for_status()
            s = service.pipeline.stats
            console.print(f"{time.strftime('%H:%M:%S')} sent {len(cols)} spans "
                          f"(total {s.spans_ingested:,}, keys {len(service.pipeline.keys)}, "
                          f"rejected {service.rejects.total()})", highlight=False)
            minute += MINUTE_NS
            await asyncio.sleep(seconds_per_minute)
