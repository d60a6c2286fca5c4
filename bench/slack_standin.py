"""SlackStandIn: a local server that speaks Slack's Web API (starlette + uvicorn on 127.0.0.1).

Real slack_sdk clients talk to it over HTTP (`AsyncWebClient(token=s.token, base_url=s.url)`).
It keeps a tiny workspace (channels, users, messages), records every call, and can be
scripted to answer 429 / 5xx / `ok: false` for the next N calls, or be taken down and up.
Socket Mode: `apps.connections.open` (with `app_token`) hands out a `ws://` URL of this
server, and `s.socket` sends envelopes over it and records the app's acks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from bench.slack_standin_socket import SocketModeLink
from bench.slack_standin_workspace import SlackError, StandInWorkspace

__all__ = ["Call", "Reply", "SlackStandIn", "rate_limited", "server_error", "slack_error"]

_JSON_FIELDS = ("blocks", "attachments", "metadata", "files")


@dataclass(frozen=True)
class Call:
    """One request as the stand-in saw it; `status` and `body` are what it answered."""

    method: str
    params: dict[str, Any]
    at: float  # time.time() when the request arrived
    status: int
    body: dict[str, Any] | str


@dataclass(frozen=True)
class Reply:
    """A scripted answer that replaces the normal one."""

    status: int
    body: dict[str, Any] | str
    headers: Mapping[str, str] = field(default_factory=dict)


def rate_limited(retry_after: int) -> Reply:
    return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})


def server_error(status: int = 503) -> Reply:
    return Reply(status, "<html><body>Slack is having trouble</body></html>")


def slack_error(error: str) -> Reply:
    return Reply(200, {"ok": False, "error": error})


class SlackStandIn:
    """A running stand-in. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, token: str = "xoxb-standin-token",
                 app_token: str = "xapp-1-standin-token") -> None:
        self.token, self.app_token = token, app_token
        self.socket = SocketModeLink()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._script: list[tuple[str | None, Reply, list[int]]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.reset()

    # -- lifecycle --

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/"

    def start(self) -> SlackStandIn:
        """Serve on a free port, or on the previous one after `stop()` (a restart)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self.workspace.upload_base = self.url.replace("/api/", "/upload/")
        config = uvicorn.Config(self._app(), log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("Slack stand-in did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving: clients then get 'connection refused' until `start()`."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state, scripting and records --

    def reset(self) -> None:
        """Forget calls, scripts and messages; back to one channel and two users."""
        with self._lock:
            self._calls.clear()
            self._script.clear()
            self.socket.reset()
            self.workspace = StandInWorkspace(self.url.replace("/api/", "/upload/"))

    @property
    def channels(self) -> dict[str, dict[str, Any]]:
        return self.workspace.channels

    @property
    def uploads(self) -> dict[str, bytes | None]:
        return self.workspace.uploads

    def add_channel(self, name: str, channel_id: str, member: bool = True) -> str:
        with self._lock:
            return self.workspace.add_channel(name, channel_id, member)

    def script(self, reply: Reply, times: int = 1, method: str | None = None) -> None:
        """Answer the next `times` calls (of `method`, or any) with `reply`."""
        with self._lock:
            self._script.append((method, reply, [times]))

    def unscript(self) -> None:
        """Drop scripted answers not yet used: every call is answered normally again."""
        with self._lock:
            self._script.clear()

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def posted(self, channel_id: str = "C0ALERTS") -> list[dict[str, Any]]:
        """Messages in a channel, oldest first, as stored (edits applied)."""
        with self._lock:
            return list(self.workspace.messages[channel_id])

    # -- HTTP --

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
            Route("/upload/{file_id}", self._upload, methods=["POST"]),
            WebSocketRoute("/link/", self.socket.serve),
        ])

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await _params(request)
        with self._lock:
            reply = self._scripted(method) or self._answer(method, params, request)
            self._calls.append(Call(method, params, time.time(), reply.status, reply.body))
        if isinstance(reply.body, str):
            return Response(reply.body, reply.status, dict(reply.headers), "text/html")
        return JSONResponse(reply.body, reply.status, dict(reply.headers))

    def _scripted(self, method: str) -> Reply | None:
        for entry in self._script:
            only, reply, left = entry
            if only in (None, method):
                left[0] -= 1
                if left[0] == 0:
                    self._script.remove(entry)
                return reply
        return None

    def _answer(self, method: str, params: dict[str, Any], request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return slack_error("not_authed")
        token = auth.removeprefix("Bearer ")
        if method == "apps.connections.open":  # the one method that takes the app token
            if token == self.token:
                return slack_error("not_allowed_token_type")
            if token != self.app_token:
                return slack_error("invalid_auth")
            base = self.url.replace("http://", "ws://").removesuffix("api/")
            return Reply(200, {"ok": True, "url": self.socket.open_url(base)})
        if token != self.token:
            return slack_error("invalid_auth")
        try:
            return Reply(200, {"ok": True, **self.workspace.handle(method, params)})
        except SlackError as err:
            return slack_error(err.code)

    async def _upload(self, request: Request) -> Response:
        file_id, body = request.path_params["file_id"], await request.body()
        with self._lock:
            if file_id not in self.uploads:
                return PlainTextResponse("no such upload", 404)
            self.uploads[file_id] = body
            self._calls.append(Call("upload", {"file_id": file_id, "length": len(body)},
                                    time.time(), 200, f"OK - {len(body)}"))
        return PlainTextResponse(f"OK - {len(body)}")


async def _params(request: Request) -> dict[str, Any]:
    """Query string, then a JSON or urlencoded form body; JSON-valued form fields decoded."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if "application/json" in request.headers.get("content-type", ""):
        params.update(json.loads(body or b"{}"))
    else:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str) and params[key][:1] in ("[", "{"):
            params[key] = json.loads(params[key])
    return params
