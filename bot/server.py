"""The one ASGI app: OTLP receiver, /healthz and /metrics (Slack events join it later).

`Service` owns the store, the ingest pipeline and its flusher; `create_app`
wires routes onto it; `serve` runs uvicorn until cancelled, flushing on exit.
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

from bot.ingest.pipeline import IngestPipeline, pipeline_for
from bot.ingest.receiver import otlp_routes
from bot.settings import Settings
from bot.spans import RejectCounter
from bot.store import SqliteStore

__all__ = ["Service", "create_app", "serve"]

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Long-lived parts shared by every route and background task."""

    settings: Settings
    store: SqliteStore
    pipeline: IngestPipeline
    rejects: RejectCounter
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    port: int = 0  # the bound port once serving (differs from settings when that is 0)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[Service]:
        """Open the store, start the flusher; on exit flush and close (nothing pending is lost)."""
        rejects = RejectCounter()
        async with SqliteStore(settings.db_path) as store:
            service = cls(settings, store, pipeline_for(settings, store, rejects), rejects)
            flusher = asyncio.create_task(service.pipeline.run_flusher(settings.flush_interval_s))
            try:
                yield service
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher


def create_app(service: Service) -> Starlette:
    _register_gauges(service)

    async def healthz(_: Request) -> JSONResponse:
        stats = service.pipeline.stats
        return JSONResponse({
            "status": "ok",
            "spans_ingested": stats.spans_ingested,
            "span_keys": len(service.pipeline.keys),
            "rejected": service.rejects.as_dict(),
        })

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        *otlp_routes(service.pipeline, service.rejects, service.settings.otlp_max_body_bytes,
                     registry=service.registry),
    ]
    return Starlette(routes=routes)


def _register_gauges(service: Service) -> None:
    keys = Gauge("opsbot_span_keys", "span keys tracked", registry=service.registry)
    keys.set_function(lambda: len(service.pipeline.keys))
    ingested = Gauge("opsbot_spans_ingested", "spans folded into aggregates", registry=service.registry)
    ingested.set_function(lambda: service.pipeline.stats.spans_ingested)


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
