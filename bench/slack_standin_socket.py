"""Socket Mode for the Slack stand-in: `apps.connections.open` and the WebSocket behind it.

Slack's Socket Mode: the app calls `apps.connections.open` with its app-level token
(xapp-) and connects to the `wss://` URL it gets; Slack sends `hello`, then one envelope
per request (`envelope_id`, `type` events_api | slash_commands | interactive, `payload`,
`accepts_response_payload`, `retry_attempt`, `retry_reason`), and the app acknowledges
each by sending `{"envelope_id": ..., "payload"?: ...}` back. Here the URL is `ws://` on
the stand-in's own port. Tests run in another thread (and event loop) than the server,
so every public method is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["APP_ID", "EnvelopeType", "SocketAck", "SocketModeLink"]

APP_ID = "A0STANDIN"
EnvelopeType = Literal["events_api", "slash_commands", "interactive"]


@dataclass(frozen=True)
class SocketAck:
    """What the app sent back for one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float  # time.time() when it arrived


class SocketModeLink:
    """The stand-in's side of Socket Mode: one connection at a time, like a single app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outgoing: asyncio.Queue[dict[str, Any]] | None = None
        self._acks: dict[str, SocketAck] = {}
        self._sent: list[dict[str, Any]] = []
        self.connections = 0  # WebSocket connections accepted so far
        self.tickets: set[str] = set()  # issued by apps.connections.open

    def open_url(self, base: str) -> str:
        """A fresh connection URL, as `apps.connections.open` returns it."""
        ticket = f"ticket-{next(self._ids)}"
        with self._lock:
            self.tickets.add(ticket)
        return f"{base}link/?ticket={ticket}&app_id={APP_ID}"

    async def serve(self, ws: WebSocket) -> None:
        """The WebSocket route: check the ticket, say hello, relay envelopes and acks."""
        ticket = ws.query_params.get("ticket", "")
        with self._lock:
            known = ticket in self.tickets
        if not known:
            await ws.close(code=4001)  # Slack refuses a URL it did not issue
            return
        await ws.accept()
        outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with self._lock:
            self._loop, self._outgoing = asyncio.get_running_loop(), outgoing
            self.connections += 1
        await ws.send_text(json.dumps({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "applink-standin", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID}}))
        sender = asyncio.create_task(self._send_loop(ws, outgoing))
        try:
            while True:
                self._record_ack(await ws.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            with self._lock:
                if self._outgoing is outgoing:
                    self._loop = self._outgoing = None

    async def _send_loop(self, ws: WebSocket, outgoing: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            envelope = await outgoing.get()
            await ws.send_text(json.dumps(envelope))

    def _record_ack(self, text: str) -> None:
        message = json.loads(text)
        envelope_id = str(message.get("envelope_id", ""))
        with self._lock:
            self._acks[envelope_id] = SocketAck(envelope_id, message.get("payload"), time.time())

    # -- for tests --

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._outgoing is not None

    def wait_connected(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.connected:
            if time.monotonic() > deadline:
                raise TimeoutError("the app did not connect in Socket Mode")
            time.sleep(0.01)

    def send(self, kind: EnvelopeType, payload: dict[str, Any], *, retry_attempt: int = 0,
             retry_reason: str = "", envelope_id: str | None = None) -> str:
        """Send one envelope to the connected app, as Slack does; returns its envelope_id."""
        envelope_id = envelope_id or f"env-{next(self._ids):06d}-standin"
        envelope = {
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            # Slack lets the ack carry a response for commands and some interactions
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt, "retry_reason": retry_reason}
        with self._lock:
            loop, queue = self._loop, self._outgoing
            if loop is None or queue is None:
                raise RuntimeError("no app is connected in Socket Mode")
            self._sent.append(envelope)
        loop.call_soon_threadsafe(queue.put_nowait, envelope)
        return envelope_id

    def acks(self) -> dict[str, SocketAck]:
        with self._lock:
            return dict(self._acks)

    def sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._sent)

    def reset(self) -> None:
        """Forget acks and envelopes sent (an open connection stays open)."""
        with self._lock:
            self._acks.clear()
            self._sent.clear()
