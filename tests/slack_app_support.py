"""Run the real bot (bolt, HTTP mode, uvicorn on loopback) against the Slack stand-in.

`SlackHarness` serves `/slack/events`, signs requests with the signing secret the way
Slack does (v0 HMAC-SHA256 over `v0:<timestamp>:<body>`), and builds events from the
real payloads in ../shared/data/slack/ with our ids put in.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette

from bot.settings import Settings, load_settings
from bot.slack.agent_port import AgentAnswer, AgentPort, AskContext
from bot.slack.app import SlackBot, create_slack
from bot.slack.deps import BotDeps
from bot.store import AnomalyRecord, IncidentRecord, SqliteStore
from tests.conftest import shared_path
from tests.slack_standin import SlackStandIn

__all__ = ["SECRET", "FakeAgent", "SlackHarness", "anomaly_record", "incident_record",
           "running_bot", "sign", "slack_payload"]

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN, USER = "UADMIN01", "U123"


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_payload(name: str) -> Any:
    """The `value` of one of the real Slack request bodies in shared data."""
    data = json.loads(shared_path("slack", f"{name}.json").read_text())
    return copy.deepcopy(data["value"])


@dataclass
class FakeAgent:
    """Stands in for agent.service.AgentService (issue 5): streams, then answers."""

    chunks: Sequence[str] = ("The p99 of ", "pg-pool.connect rose ", "after the deploy.")
    delay_s: float = 0.0
    contexts: list[AskContext] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)  # time.time() of each chunk

    async def answer(self, question: str, context: AskContext,
                     on_text: Callable[[str], Awaitable[None]]) -> AgentAnswer:
        self.questions.append(question)
        self.contexts.append(context)
        text = ""
        for chunk in self.chunks:
            await asyncio.sleep(self.delay_s)
            text += chunk
            self.chunk_times.append(time.time())
            await on_text(text)
        return AgentAnswer(text=text + f" (anomalies {list(context.anomaly_ids)})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SlackHarness:
    bot: SlackBot
    store: SqliteStore
    standin: SlackStandIn
    url: str
    http: httpx.AsyncClient
    _seq: int = 0

    def event_id(self) -> str:
        self._seq += 1
        return f"Ev{self._seq:08d}"

    async def post(self, body: bytes, content_type: str, *, timestamp: int | None = None,
                   secret: str = SECRET, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        ts = int(time.time()) if timestamp is None else timestamp
        return await self.http.post(self.url, content=body, headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(body, ts, secret), **(headers or {})})

    async def send_event(self, event: dict[str, Any], *, event_id: str | None = None,
                         retry: int | None = None, base: str = "test_events__valid_event_body"
                         ) -> httpx.Response:
        """An Events API callback built on a real payload, with `event` as its event."""
        body = slack_payload(base)
        body["event"] = event
        body["event_id"] = event_id or self.event_id()
        body["team_id"] = "T0STANDIN"
        headers = {} if retry is None else {"X-Slack-Retry-Num": str(retry),
                                            "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(json.dumps(body).encode(), "application/json", headers=headers)

    async def send_command(self, text: str, user: str = USER,
                           channel: str = "C0ALERTS") -> httpx.Response:
        form = dict(parse_qsl(slack_payload("test_slash_command__slash_command_body")))
        form.update(command="/opsbot", text=text, user_id=user, channel_id=channel,
                    team_id="T0STANDIN", trigger_id=f"trig.{self.event_id()}")
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def press(self, action_id: str, value: str, user: str, channel: str,
                    message_ts: str) -> httpx.Response:
        payload = slack_payload("test_block_actions__body")
        payload["user"]["id"] = user
        payload["container"].update(channel_id=channel, message_ts=message_ts,
                                    is_ephemeral=False)
        payload["channel"]["id"] = channel
        payload["actions"][0].update(action_id=action_id, value=value, block_id="alert",
                                     action_ts=f"{time.time():.6f}")
        payload["team"]["id"] = "T0STANDIN"
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait for bolt's listeners, background work and for the outbox to send everything
        due. Bolt answers Slack's request before its listener runs (in a task of its own),
        so a request having returned does not mean its listener is done."""
        deadline = time.monotonic() + timeout_s
        while _bolt_listeners_running() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.bot.deps.tasks.idle(timeout_s)
        while time.monotonic() < deadline:
            async with self.store.db.execute(
                    "SELECT count(*) FROM outbox WHERE state = 'pending'") as cur:
                row = await cur.fetchone()
            if row is not None and row[0] == 0 and not len(self.bot.deps.tasks):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the outbox did not drain in time")


def _bolt_listeners_running() -> bool:
    """Whether a listener bolt started for a request (after answering it) is still running."""
    return any(not t.done() and "run_ack_function_asynchronously"
               in getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks())


def bot_settings(db: Path, standin: SlackStandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_path": db, "slack_bot_token": standin.token, "slack_signing_secret": SECRET,
        "slack_api_base_url": standin.url, "slack_channel": "#opsbot-alerts",
        "slack_admins": ADMIN, **overrides}
    return load_settings(**values)


@contextlib.asynccontextmanager
async def running_bot(db: Path, standin: SlackStandIn, agent: AgentPort | None = None,
                      **overrides: Any) -> AsyncIterator[SlackHarness]:
    """The bot served over real HTTP; stops cleanly (worker, tasks, server) on exit."""
    settings = bot_settings(db, standin, **overrides)
    async with SqliteStore(settings.db_path) as store:
        bot = create_slack(settings, BotDeps(store, agent=agent, load_agent=False))
        await bot.start()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(Starlette(routes=bot.routes()), host="127.0.0.1",
                                               port=port, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                yield SlackHarness(bot, store, standin, f"http://127.0.0.1:{port}/slack/events",
                                   http)
        finally:
            server.should_exit = True
            await serving
            await bot.stop()


async def anomaly_record(store: SqliteStore, key: str = "checkout:pg-pool.connect", *,
                         uid: str | None = None, started_ns: int | None = None,
                         state: str = "open", severity: int = 2,
                         incident_id: int | None = None) -> AnomalyRecord:
    started = started_ns or time.time_ns() - 600 * 10**9
    service, _, operation = key.partition(":")
    ids = await store.touch_series({key: (started, started)}, "span")
    record = AnomalyRecord(
        uid=uid or f"{key}@{started}", key=key, service=service, operation=operation,
        state=state, started_ns=started, updated_ns=started + 300 * 10**9,  # type: ignore[arg-type]
        peak_score=7.4, peak_severity=severity, series_id=ids[key], percentile=99.9,
        observed=286.9, baseline={"p50": 0.4, "p99": 3.1, "bucket_label": "Tue 14:00"},
        exemplar_trace_ids=["4bf92f3577b34da6a3ce929d0e0e4736"], incident_id=incident_id)
    await store.upsert_anomalies([record])
    return record


async def incident_record(store: SqliteStore, uid: str = "inc-1",
                          origin: str = "payments-db") -> IncidentRecord:
    record = IncidentRecord(uid=uid, state="open", started_ns=time.time_ns() - 600 * 10**9,
                            origin_service=origin, peak_severity=2)
    await store.upsert_incidents([record])
    return record
