"""The Slack bot: slack-bolt's AsyncApp, its listeners, the outbox worker and background work.

HTTP mode mounts `/slack/events` on the service's ASGI app (bolt verifies each request's
signature and rejects timestamps older than 5 minutes); Socket Mode connects out when an
app token (xapp-) is set. The Web API base URL comes from settings, so the same app runs
against a local stand-in. Each Slack event is handled once, whatever Slack retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.listeners import register_all
from bot.settings import Settings
from bot.slack.admins import AdminCheck
from bot.slack.agent_port import load_agent
from bot.slack.charts import ChartUploader
from bot.slack.conversation import Conversations
from bot.slack.deps import BotDeps, SlackDeps
from bot.slack.feedback import FeedbackDesk, ReactionMap
from bot.slack.metrics import SlackMetrics
from bot.slack.notifier import AlertNotifier
from bot.slack.ops import OpsCommands
from bot.slack.outbox import Outbox, client_for
from bot.slack.storm import ChannelRateCap
from bot.slack.tasks import BackgroundTasks
from bot.slack.threads import ThreadHistory

__all__ = ["SlackBot", "SlackConfigError", "create_slack"]

log = logging.getLogger(__name__)
EVENT_MEMORY_S = 24 * 3600  # Slack retries within minutes; a day of event ids is plenty
# An alert folded into a storm digest stays unposted while it lasts; a week covers all but
# the rarest anomaly (one still open after that would be posted on its next update).
CAPPED_MEMORY_S = 7 * 24 * 3600


class SlackConfigError(ValueError):
    """Slack is half-configured; the message names the missing setting."""


class SlackBot:
    """One bolt app plus its workers; `routes()` for HTTP mode, `start()`/`stop()` around use."""

    prints_events = False  # Slack is not the terminal: the service still logs each event

    def __init__(self, settings: Settings, app: AsyncApp, deps: SlackDeps) -> None:
        self.settings, self.app, self.deps = settings, app, deps
        self._handler = AsyncSlackRequestHandler(app)
        self._worker: asyncio.Task[None] | None = None
        self._socket: Any = None

    @property
    def notifier(self) -> AlertNotifier:
        return self.deps.notifier

    @property
    def socket_mode(self) -> bool:
        return self.settings.slack_app_token is not None

    def routes(self) -> list[Route]:
        async def events(request: Request) -> Response:
            return await self._handler.handle(request)

        return [Route("/slack/events", events, methods=["POST"])]

    async def start(self) -> None:
        """Start the agent (when it has a start), the outbox worker, and Socket Mode when an
        app token is set."""
        await self.deps.store.forget_events(self.deps.clock() - EVENT_MEMORY_S * 10**9)
        await self.deps.store.forget_capped(self.deps.clock() - CAPPED_MEMORY_S * 10**9)
        await self._start_agent()
        self._worker = asyncio.create_task(self.deps.outbox.run(self.deps.client),
                                           name="slack outbox")
        if self.notifier.charts is not None:
            await self.notifier.charts.resume()
        if self.settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(
                self.app, self.settings.slack_app_token.get_secret_value())
            await self._socket.connect_async()
            log.info("Slack: connected in Socket Mode")
        else:
            log.info("Slack: HTTP mode; Slack posts events to /slack/events")

    async def _start_agent(self) -> None:
        conversations = self.deps.conversations
        start = getattr(conversations.agent, "start", None)
        if start is None:
            return
        try:
            await start()
        except Exception as exc:  # a model that cannot load must not keep alerts from Slack
            log.warning("the agent did not start (%s); questions get 'not available'", exc)
            conversations.agent = None
            self.deps.ops.agent_loaded = False

    async def stop(self) -> None:
        """Finish background work (briefly), then stop the worker; nothing queued is lost."""
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
            self._socket = None
        await self.deps.tasks.close()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        close = getattr(self.deps.conversations.agent, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


def _check(settings: Settings) -> None:
    if settings.slack_bot_token is None:
        raise SlackConfigError("Slack needs OPSBOT_SLACK_BOT_TOKEN (xoxb-...)")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        raise SlackConfigError("HTTP mode needs OPSBOT_SLACK_SIGNING_SECRET to verify requests;"
                               " or set OPSBOT_SLACK_APP_TOKEN (xapp-...) for Socket Mode")


def _parts(settings: Settings, deps: BotDeps) -> SlackDeps:
    store, clock = deps.store, deps.clock
    client = client_for(settings)
    metrics = SlackMetrics.on(deps.registry)
    outbox, tasks = Outbox(store), BackgroundTasks()
    charts = ChartUploader(store, outbox, client, tasks, metrics, clock=clock)
    rate_cap = ChannelRateCap(settings.slack_alert_rate_cap, settings.slack_alert_rate_window_s)
    notifier = AlertNotifier(store, outbox, settings.slack_channel, metrics, rate_cap=rate_cap,
                             charts=charts, trace_url_template=settings.trace_ui_url, clock=clock)
    desk = FeedbackDesk(store, notifier, metrics, clock=clock, reactions=ReactionMap(
        tuple(r.strip(":") for r in settings.slack_false_positive_reactions),
        tuple(r.strip(":") for r in settings.slack_confirmed_reactions)))
    agent = deps.agent
    if agent is None and deps.load_agent:
        agent = load_agent(settings, store)
    admins = AdminCheck(settings.slack_admins, client)
    conversations = Conversations(store, outbox, agent, ThreadHistory(), metrics, admins=admins)
    ops = OpsCommands(settings, store, desk, recalculator=deps.recalculator,
                      health=deps.health, agent_loaded=agent is not None, clock=clock)
    return SlackDeps(settings, store, client, outbox, notifier, desk, conversations, ops,
                     admins, tasks, metrics, clock)


def _once_per_event(parts: SlackDeps) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Global middleware: a repeated event_id (Slack's retries) is acknowledged, not handled."""

    async def middleware(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> \
            BoltResponse | None:  # noqa: A002 (bolt injects arguments by name)
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        kind = str((body.get("event") or {}).get("type", "?"))
        if event_id and not await parts.store.first_sight(str(event_id), parts.clock()):
            parts.metrics.events.labels(kind, "duplicate").inc()
            log.info("Slack event %s (%s) was already handled; ignoring the retry", event_id,
                     kind)
            return BoltResponse(status=200, body="")
        if event_id:
            parts.metrics.events.labels(kind, "handled").inc()
        await next()
        return None

    return middleware


def create_slack(settings: Settings, deps: BotDeps) -> SlackBot:
    """Build the bot; raises SlackConfigError when Slack settings are incomplete."""
    _check(settings)
    parts = _parts(settings, deps)
    secret = settings.slack_signing_secret
    app = AsyncApp(client=parts.client, name="opsbot",
                   signing_secret=secret.get_secret_value() if secret else "",
                   request_verification_enabled=True, ignoring_self_events_enabled=True)
    app.middleware(_once_per_event(parts))
    register_all(app, parts)
    return SlackBot(settings, app, parts)
