"""Stand-ins for Jaeger's and Tempo's query APIs (starlette + uvicorn on 127.0.0.1) for tests.

Neither backend can run here, so these serve real recorded payloads from
../shared/data/jaeger on the real API paths, over real HTTP. They record every
request and can be scripted to fail the next N requests or to answer slowly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

__all__ = ["JaegerStandIn", "Script", "StandIn", "TempoStandIn", "free_port", "jaeger_traces_in",
           "otlp_traces_in"]

Handler = Callable[[Request], Awaitable[Response]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Script:
    """What the next requests get: `fail_next` answers of `fail_status`, then a delay."""

    fail_next: int = 0
    fail_status: int = 503
    delay_s: float = 0.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class StandIn:
    """Serves `routes` (also under `/prefix`) on a free port in a background thread."""

    def __init__(self, routes: list[Route]) -> None:
        self.script = Script()
        self._app = Starlette(routes=[*routes, Mount("/prefix", routes=routes)])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            self.script.requests.append((request.url.path, dict(request.query_params)))
            if self.script.fail_next > 0:
                self.script.fail_next -= 1
                response = PlainTextResponse("scripted failure", self.script.fail_status)
                return await response(scope, receive, send)
            if self.script.delay_s:
                await asyncio.sleep(self.script.delay_s)
        await self._app(scope, receive, send)

    def start(self) -> Self:
        config = uvicorn.Config(self._asgi, host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("trace backend stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)


def jaeger_traces_in(obj: Any) -> list[dict[str, Any]]:
    """The Jaeger traces of a fixture file, whichever way it wraps them."""
    if isinstance(obj, list):
        return obj
    data = obj.get("data", obj)
    return data if isinstance(data, list) else [data]


def _norm(trace_id: str) -> str:
    return trace_id.lower().rjust(32, "0")


class JaegerStandIn(StandIn):
    """`/api/services`, `/api/services/{s}/operations`, `/api/traces`, `/api/traces/{id}`."""

    def __init__(self, traces: list[dict[str, Any]]) -> None:
        self.traces = traces
        self.legacy_operations = False  # Jaeger < 1.14 answered ["name", ...]
        super().__init__([
            Route("/api/services", self._services),
            Route("/api/services/{service}/operations", self._operations),
            Route("/api/traces", self._find),
            Route("/api/traces/{trace_id}", self._trace),
            Route("/html", lambda r: PlainTextResponse("<html>not jaeger</html>")),
        ])

    @staticmethod
    def _envelope(data: Any, status: int = 200, errors: Any = None) -> JSONResponse:
        total = len(data) if isinstance(data, list) else 0
        return JSONResponse({"data": data, "total": total, "limit": 0, "offset": 0,
                             "errors": errors}, status)

    def _spans_of(self, trace: dict[str, Any], service: str) -> list[dict[str, Any]]:
        pids = {p for p, proc in trace["processes"].items() if proc["serviceName"] == service}
        return [s for s in trace["spans"] if s.get("processID") in pids]

    async def _services(self, request: Request) -> Response:
        names = {p["serviceName"] for t in self.traces for p in t["processes"].values()}
        return self._envelope(sorted(names))

    async def _operations(self, request: Request) -> Response:
        service = request.path_params["service"]
        ops: dict[str, str] = {}
        for trace in self.traces:
            for span in self._spans_of(trace, service):
                tags = span.get("tags", [])
                kind = next((t["value"] for t in tags if t["key"] == "span.kind"), "")
                ops.setdefault(span["operationName"], kind)
        if self.legacy_operations:
            return self._envelope(sorted(ops))
        return self._envelope([{"name": n, "spanKind": k} for n, k in sorted(ops.items())])

    async def _find(self, request: Request) -> Response:
        q = request.query_params
        if "service" not in q:
            errors = [{"code": 400, "msg": "parameter 'service' is required"}]
            return self._envelope(None, 400, errors)
        start, end = int(q.get("start", 0)), int(q.get("end", 2**62))
        min_us = _go_duration_us(q.get("minDuration", "0us"))
        hits = [t for t in self.traces if any(
            start <= s["startTime"] <= end and s["duration"] >= min_us
            and s["operationName"] == q.get("operation", s["operationName"])
            for s in self._spans_of(t, q["service"]))]
        return self._envelope(hits[: int(q.get("limit", 20))])

    async def _trace(self, request: Request) -> Response:
        wanted = _norm(request.path_params["trace_id"])
        for trace in self.traces:
            if _norm(trace["traceID"]) == wanted:
                return self._envelope([trace])
        return self._envelope(None, 404, [{"code": 404, "msg": "trace not found"}])


def _go_duration_us(text: str) -> float:
    units = {"us": 1.0, "ms": 1e3, "s": 1e6, "ns": 1e-3}
    match = re.fullmatch(r"(\d+)(ns|us|ms|s)", text)
    if match is None:
        raise ValueError(f"stand-in cannot read duration {text!r}")
    return int(match[1]) * units[match[2]]


def otlp_traces_in(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """resourceSpans of OTLP JSON files regrouped per trace id (lowercase hex), as in Tempo."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for rs in json.loads(path.read_text())["resourceSpans"]:
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    one = {**rs, "scopeSpans": [{**ss, "spans": [span]}]}
                    out.setdefault(span["traceId"].lower(), []).append(one)
    return out


class TempoStandIn(StandIn):
    """`/api/search` and `/api/traces/{id}` (`/api/v2/traces/{id}`) over real OTLP examples."""

    def __init__(self, traces: dict[str, list[dict[str, Any]]]) -> None:
        self.traces = traces
        self.shape = "batches"  # or "resourceSpans"; /api/v2/traces answers {"trace": ...}
        self.base64_ids = False  # Tempo before 2.0 wrote ids as protobuf JSON does: base64
        self.search_extra: list[Any] = []  # appended to search results (malformed entries)
        super().__init__([
            Route("/api/search", self._search),
            Route("/api/traces/{trace_id}", self._trace),
            Route("/api/v2/traces/{trace_id}", self._trace_v2),
        ])

    def summary(self, trace_id: str) -> dict[str, Any]:
        """What Tempo's search says of a trace: root span, start, whole-trace duration."""
        spans = [(rs, rs["scopeSpans"][0]["spans"][0]) for rs in self.traces[trace_id]]
        root_rs, root = min(spans, key=lambda p: (bool(p[1].get("parentSpanId")),
                                                  int(p[1]["startTimeUnixNano"])))
        start = min(int(s["startTimeUnixNano"]) for _, s in spans)
        end = max(int(s["endTimeUnixNano"]) for _, s in spans)
        service = next(a["value"]["stringValue"] for a in root_rs["resource"]["attributes"]
                       if a["key"] == "service.name")
        out = {"traceID": trace_id.lstrip("0"), "rootServiceName": service,
               "rootTraceName": root["name"], "startTimeUnixNano": str(start)}
        if (end - start) // 10**6:  # protobuf JSON leaves a zero durationMs out
            out["durationMs"] = (end - start) // 10**6
        return out

    async def _search(self, request: Request) -> Response:
        q = request.query_params
        service = re.search(r'resource\.service\.name = "([^"]*)"', q.get("q", ""))
        wanted = service[1] if service else None
        if "tags" in q:
            wanted = dict(t.split("=", 1) for t in q["tags"].split()).get("service.name")
        found = [self.summary(t) for t in self.traces]
        found = [s for s in found if wanted in (None, s["rootServiceName"])]
        return JSONResponse({"traces": found[: int(q.get("limit", 20))] + self.search_extra,
                             "metrics": {"completedJobs": 1, "totalJobs": 1}})

    def _batches(self, trace_id: str) -> list[dict[str, Any]] | None:
        return self.traces.get(trace_id.lower().rjust(32, "0"))

    async def _trace(self, request: Request) -> Response:
        batches = self._batches(request.path_params["trace_id"])
        if batches is None:
            return PlainTextResponse("trace not found", 404)
        if self.base64_ids:
            batches = [_base64_ids(rs) for rs in batches]
        if self.shape not in ("batches", "resourceSpans"):
            return JSONResponse({"batches": self.shape})  # scripted garbage
        return JSONResponse({self.shape: batches})

    async def _trace_v2(self, request: Request) -> Response:
        batches = self._batches(request.path_params["trace_id"])
        if batches is None:
            return PlainTextResponse("trace not found", 404)
        return JSONResponse({"trace": {"resourceSpans": batches}, "status": "COMPLETE"})


def _base64_ids(rs: dict[str, Any]) -> dict[str, Any]:
    def b64(value: str) -> str:
        return base64.b64encode(bytes.fromhex(value)).decode() if value else value

    spans = [{**sp, **{k: b64(sp[k]) for k in ("traceId", "spanId", "parentSpanId") if k in sp}}
             for sp in rs["scopeSpans"][0]["spans"]]
    return {**rs, "scopeSpans": [{**rs["scopeSpans"][0], "spans": spans}]}
