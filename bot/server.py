"""The one ASGI app: OTLP receiver, /healthz and /metrics (Slack events join it later).

`Service` owns the store, the ingest pipeline and its flusher, and the detection
engine fed from the pipeline (its ticker scores windows on the wall clock);
`create_app` wires routes onto it; `serve` runs uvicorn until cancelled,
flushing on exit. Subscribe to detection with `service.engine.subscribe(cb)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.detection.engine import DetectionEngine
from bot.detection.events import EngineEvent
from bot.detection.tap import detecting_pipeline, run_ticker
from bot.ingest.pipeline import IngestPipeline
from bot.ingest.receiver import otlp_routes
from bot.settings import Settings
from bot.slack.channel import AlertChannel, open_alert_channel
from bot.spans import RejectCounter
from bot.store import SqliteStore

__all__ = ["Service", "create_app", "describe_event", "log_event", "run_service", "serve"]

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Long-lived parts shared by every route and background task."""

    settings: Settings
    store: SqliteStore
    pipeline: IngestPipeline
    rejects: RejectCounter
    engine: DetectionEngine
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    port: int = 0  # the bound port once serving (differs from settings when that is 0)
    alerts: AlertChannel | None = None  # Slack (or the terminal), subscribed to the engine

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, settings: Settings, *, detect_interval_s: float | None = None
    ) -> AsyncIterator[Service]:
        """Open the store, start the flusher and the detection ticker; on exit flush, save
        the engine's state and close (nothing pending is lost)."""
        rejects = RejectCounter()
        async with SqliteStore(settings.db_path) as store:
            pipeline, engine = await detecting_pipeline(settings, store, rejects)
            service = cls(settings, store, pipeline, rejects, engine)
            service.alerts = await open_alert_channel(service)
            flusher = asyncio.create_task(service.pipeline.run_flusher(settings.flush_interval_s))
            ticker = asyncio.create_task(run_ticker(
                engine, detect_interval_s or settings.detection_interval_s))
            try:
                yield service
            finally:
                await service.alerts.stop()
                for task in (flusher, ticker):  # aggregates first, then the engine's state
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


def create_app(service: Service) -> Starlette:
    _register_gauges(service)

    async def healthz(_: Request) -> JSONResponse:
        stats = service.pipeline.stats
        return JSONResponse({
            "status": "ok",
            "spans_ingested": stats.spans_ingested,
            "span_keys": len(service.pipeline.keys),
            "rejected": service.rejects.as_dict(),
            "windows_scored": service.engine.stats.windows_scored,
            "anomalies_opened": service.engine.stats.anomalies_opened,
        })

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        *(service.alerts.routes() if service.alerts else []),
        *otlp_routes(service.pipeline, service.rejects, service.settings.otlp_max_body_bytes,
                     registry=service.registry),
    ]
    return Starlette(routes=routes)


def _register_gauges(service: Service) -> None:
    keys = Gauge("opsbot_span_keys", "span keys tracked", registry=service.registry)
    keys.set_function(lambda: len(service.pipeline.keys))
    ingested = Gauge("opsbot_spans_ingested", "spans folded into aggregates",
                     registry=service.registry)
    ingested.set_function(lambda: service.pipeline.stats.spans_ingested)
    windows = Gauge("opsbot_windows_scored", "key-windows scored by the detection engine",
                    registry=service.registry)
    windows.set_function(lambda: service.engine.stats.windows_scored)
    opened = Gauge("opsbot_anomalies_opened", "anomalies opened since start",
                   registry=service.registry)
    opened.set_function(lambda: service.engine.stats.anomalies_opened)


async def serve(service: Service, ready: asyncio.Event | None = None) -> None:
    """Run the HTTP server on the configured host/port until cancelled."""
    s = service.settings
    config = uvicorn.Config(create_app(service), host=s.http_host, port=s.http_port,
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(_serve_checked(server, f"{s.http_host}:{s.http_port}"))
    try:
        while not server.started:
            if task.done():
                await task  # surfaces bind errors
            await asyncio.sleep(0.02)
        service.port = server.servers[0].sockets[0].getsockname()[1]
        log.info("listening on http://%s:%d (OTLP: /v1/traces)", s.http_host, service.port)
        if ready is not None:
            ready.set()
        await task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _serve_checked(server: uvicorn.Server, where: str) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits the process when it cannot bind
        raise OSError(
            f"could not listen on {where}: the port is in use or not allowed; "
            "set OPSBOT_HTTP_PORT to a free port"
        ) from None
    if not server.started:
        raise OSError(f"could not listen on {where}; set OPSBOT_HTTP_PORT to a free port")


async def run_service(settings: Settings, console: object | None = None) -> None:
    """`opsbot run`: serve HTTP, detect, and when configured poll Jaeger/Tempo and Prometheus.

    Each detection event is logged, unless the alert channel is the terminal, which
    prints it itself (once, not twice).
    """
    from bot.detection.metrics_poller import poller_from_settings
    from bot.ingest.poller import TracePoller, source_from_settings

    async with Service.running(settings) as service:
        if service.alerts is None or not service.alerts.prints_events:
            service.engine.subscribe(log_event)
        source = source_from_settings(settings.jaeger_url, settings.tempo_url)
        tasks = [asyncio.create_task(serve(service))]
        if source is not None:
            poller = TracePoller(source, service.pipeline)
            tasks.append(asyncio.create_task(poller.run(settings.poll_interval_s)))
        metrics_poller = poller_from_settings(settings, service.engine)
        if metrics_poller is not None:  # Prometheus series into the same engine
            metrics_poller.register_gauges(service.registry)
            tasks.append(asyncio.create_task(metrics_poller.run(settings.metrics_poll_interval_s)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def log_event(event: EngineEvent) -> None:
    """One plain log line per anomaly/incident event (the minimal terminal channel)."""
    log.info("%s", describe_event(event))


def describe_event(event: EngineEvent) -> str:
    """'anomaly opened SEV3 kx-wallet:pg.query score 7.2 (p95) incident ... origin kx-wallet'."""
    if event.anomaly is not None:
        a = event.anomaly
        pct = "" if a.percentile is None else f" (>= p{a.percentile:g} threshold)"
        inc = event.incident
        origin = f", incident origin {inc.origin_service}" if inc and inc.origin_service else ""
        return (f"anomaly {event.kind} SEV{a.peak_severity} {a.key} "
                f"score {a.peak_score:.1f}{pct}{origin}")
    i = event.incident
    assert i is not None
    members = len(i.details.get("members", []))
    return (f"incident {event.kind} {i.uid}: {members} anomalies, SEV{i.peak_severity}, "
            f"origin {i.origin_service}")
