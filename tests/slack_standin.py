"""SlackStandIn: a fake of Slack's Web API (starlette + uvicorn on 127.0.0.1) for tests.

Real slack_sdk clients talk to it over HTTP (`AsyncWebClient(token=s.token, base_url=s.url)`).
It keeps a tiny workspace (channels, users, messages), records every call, and can be
scripted to answer 429 / 5xx / `ok: false` for the next N calls, or be taken down and up.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["Call", "Reply", "SlackError", "SlackStandIn", "rate_limited", "server_error",
           "slack_error"]

TEAM_ID, BOT_USER, BOT_ID = "T0STANDIN", "U0OPSBOT", "B0OPSBOT"
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


class SlackError(Exception):
    """Raised by a method handler: becomes `{"ok": false, "error": code}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SlackStandIn:
    """A running stand-in. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, token: str = "xoxb-standin-token") -> None:
        self.token = token
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
            self._seq = 0
            self.channels: dict[str, dict[str, Any]] = {}
            self.users: dict[str, dict[str, Any]] = {}
            self.messages: dict[str, list[dict[str, Any]]] = {}
            self.uploads: dict[str, bytes | None] = {}
        self.add_channel("opsbot-alerts", "C0ALERTS")
        self.add_user(BOT_USER, "opsbot", is_bot=True)
        self.add_user("U123", "alice")

    def add_channel(self, name: str, channel_id: str, member: bool = True) -> str:
        self.channels[channel_id] = {
            "id": channel_id, "name": name, "is_channel": True, "is_private": False,
            "is_member": member, "is_archived": False, "created": 1690000000,
        }
        self.messages[channel_id] = []
        return channel_id

    def add_user(self, user_id: str, name: str, is_bot: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id, "team_id": TEAM_ID, "name": name, "real_name": name.title(),
            "is_bot": is_bot, "tz": "Europe/Berlin", "profile": {"display_name": name},
        }

    def script(self, reply: Reply, times: int = 1, method: str | None = None) -> None:
        """Answer the next `times` calls (of `method`, or any) with `reply`."""
        with self._lock:
            self._script.append((method, reply, [times]))

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def posted(self, channel_id: str = "C0ALERTS") -> list[dict[str, Any]]:
        """Messages in a channel, oldest first, as stored (edits applied)."""
        with self._lock:
            return list(self.messages[channel_id])

    # -- HTTP --

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
            Route("/upload/{file_id}", self._upload, methods=["POST"]),
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
        if auth.removeprefix("Bearer ") != self.token:
            return slack_error("invalid_auth")
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return slack_error("unknown_method")
        try:
            return Reply(200, {"ok": True, **handler(params)})
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

    # -- the workspace (called with the lock held) --

    def _next_ts(self) -> str:
        self._seq += 1
        micros = 1_700_000_000_000_000 + self._seq * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, ref: Any, by_name: bool = True) -> dict[str, Any]:
        ref = str(ref or "")
        for ch in self.channels.values():
            if ref == ch["id"] or (by_name and ref.lstrip("#") == ch["name"]):
                return ch
        raise SlackError("channel_not_found")

    def _message(self, channel_id: str, ts: Any) -> dict[str, Any]:
        for msg in self.messages[channel_id]:
            if msg["ts"] == ts:
                return msg
        raise SlackError("message_not_found")

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://standin.slack.com/", "team": "Stand-in", "user": "opsbot",
                "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID,
                "is_enterprise_install": False}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"))
        if not ch["is_member"]:
            raise SlackError("not_in_channel")
        if not any(p.get(k) for k in ("text", "blocks", "attachments", "files")):
            raise SlackError("no_text")
        msg = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "team": TEAM_ID,
               "ts": self._next_ts(), "text": p.get("text", "")}
        for key in ("blocks", "attachments", "metadata", "thread_ts", "files"):
            if p.get(key):
                msg[key] = p[key]
        self.messages[ch["id"]].append(msg)
        return {"channel": ch["id"], "ts": msg["ts"], "message": msg}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        msg = self._message(ch["id"], p.get("ts"))
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                msg[key] = p[key]
        msg["edited"] = {"user": BOT_USER, "ts": self._next_ts()}
        return {"channel": ch["id"], "ts": msg["ts"], "text": msg["text"], "message": msg}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"))
        if p.get("user") not in self.users:
            raise SlackError("user_not_in_channel")
        if not ch["is_member"]:
            raise SlackError("not_in_channel")
        return {"message_ts": self._next_ts()}

    def _m_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        msg = self._message(ch["id"], p.get("timestamp"))
        reactions = msg.setdefault("reactions", [])
        if any(r["name"] == p.get("name") for r in reactions):
            raise SlackError("already_reacted")
        reactions.append({"name": p.get("name"), "users": [BOT_USER], "count": 1})
        return {}

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("user") not in self.users:
            raise SlackError("user_not_found")
        return {"user": self.users[p["user"]]}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel(p.get("channel"), by_name=False)}

    def _m_users_conversations(self, p: dict[str, Any]) -> dict[str, Any]:
        mine = [ch for ch in self.channels.values() if ch["is_member"]]
        return {"channels": mine, "response_metadata": {"next_cursor": ""}}

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        if not ch["is_member"]:
            raise SlackError("not_in_channel")
        oldest, latest = float(p.get("oldest") or 0), float(p.get("latest") or 1e12)
        with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [
            {k: v for k, v in m.items() if with_meta or k != "metadata"}
            for m in reversed(self.messages[ch["id"]])
            if oldest <= float(m["ts"]) <= latest and m.get("thread_ts", m["ts"]) == m["ts"]
        ]
        limit = int(p.get("limit") or 100)
        return {"messages": found[:limit], "has_more": len(found) > limit}

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        parent = self._message(ch["id"], p.get("ts"))
        with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [parent] + [m for m in self.messages[ch["id"]]
                             if m.get("thread_ts") == parent["ts"] != m["ts"]]
        oldest = float(p.get("oldest") or 0)
        found = [{k: v for k, v in m.items() if with_meta or k != "metadata"}
                 for m in thread if m is parent or float(m["ts"]) >= oldest]
        return {"messages": found, "has_more": False}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not p.get("length"):
            raise SlackError("invalid_arguments")
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = None
        return {"file_id": file_id, "upload_url": self.url.replace("/api/", f"/upload/{file_id}")}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files") or []
        if any(self.uploads.get(f.get("id")) is None for f in files):
            raise SlackError("file_not_found")
        out = [{"id": f["id"], "title": f.get("title", ""), "name": f.get("title", ""),
                "size": len(self.uploads[f["id"]] or b"")} for f in files]
        if p.get("channel_id"):
            self._m_chat_postMessage({"channel": p["channel_id"], "files": out,
                                      "text": p.get("initial_comment") or "",
                                      "thread_ts": p.get("thread_ts")})
        return {"files": out}


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
