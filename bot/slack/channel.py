"""Where `opsbot run` / `opsbot demo` send alerts: Slack when a bot token is set, else the
terminal. `open_alert_channel` builds it, subscribes it to the detection engine and starts it;
the service mounts its routes and stops it on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any, Protocol

from rich.console import Console
from starlette.routing import Route

from bot.slack.agent_port import AgentPort, load_agent
from bot.slack.app import SlackBot, create_slack
from bot.slack.deps import BotDeps
from bot.slack.engine_port import engine_health, engine_recalculator
from bot.terminal import TerminalChannel, stdin_lines

__all__ = ["AlertChannel", "TerminalAlerts", "open_alert_channel"]

log = logging.getLogger(__name__)


class AlertChannel(Protocol):
    # True when the channel itself prints every detection event (the terminal): the
    # service then adds no log line of its own, so each event shows once.
    prints_events: bool

    def routes(self) -> list[Route]: ...
    async def stop(self) -> None: ...


class TerminalAlerts:
    """The terminal channel with its input loop (only when stdin is a terminal)."""

    prints_events = True

    def __init__(self, channel: TerminalChannel, read_input: bool) -> None:
        self.channel = channel
        self._reader: asyncio.Task[None] | None = None
        if read_input:
            self._reader = asyncio.create_task(channel.run_input(stdin_lines()))

    def routes(self) -> list[Route]:
        return []

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def open_alert_channel(service: Any) -> AlertChannel:
    """SlackBot or TerminalAlerts for a running `bot.server.Service`, subscribed and started."""
    settings, engine = service.settings, service.engine
    if settings.slack_bot_token is None:
        async def agent() -> AgentPort | None:
            loaded = load_agent(settings, service.store)
            if loaded is not None and hasattr(loaded, "start"):
                await loaded.start()
            return loaded

        channel = TerminalChannel(Console(stderr=True), service.store, agent_loader=agent,
                                  trace_url_template=settings.trace_ui_url)
        engine.subscribe(channel.on_engine_event)
        return TerminalAlerts(channel, read_input=sys.stdin.isatty())
    bot: SlackBot = create_slack(settings, BotDeps(
        service.store, service.registry, recalculator=engine_recalculator(engine),
        health=engine_health(engine)))
    await bot.start()
    engine.subscribe(bot.notifier.on_engine_event)
    return bot
