"""Slack listeners, one module per surface; each `register(app, deps)` adds its handlers."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, commands, events
from bot.slack.deps import SlackDeps

__all__ = ["register_all"]


def register_all(app: AsyncApp, deps: SlackDeps) -> None:
    events.register(app, deps)
    actions.register(app, deps)
    commands.register(app, deps)
