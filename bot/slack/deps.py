"""What the Slack listeners get: the parts of the bot, built once by `create_slack`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.admins import AdminCheck
from bot.slack.agent_port import AgentPort
from bot.slack.conversation import Conversations
from bot.slack.feedback import FeedbackDesk
from bot.slack.metrics import SlackMetrics
from bot.slack.notifier import AlertNotifier
from bot.slack.ops import HealthProbe, OpsCommands, Recalculator
from bot.slack.outbox import Outbox
from bot.slack.tasks import BackgroundTasks
from bot.store import SqliteStore

__all__ = ["BotDeps", "SlackDeps"]


@dataclass
class BotDeps:
    """What the service hands the bot. With `agent=None` and `load_agent`, the bot loads
    `agent.service.AgentService` if that module exists; `load_agent=False`: no agent."""

    store: SqliteStore
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    agent: AgentPort | None = None
    load_agent: bool = True
    recalculator: Recalculator | None = None
    health: HealthProbe | None = None
    clock: Callable[[], int] = time.time_ns


@dataclass
class SlackDeps:
    """Everything a listener may hand work to; listeners hold no logic of their own."""

    settings: Settings
    store: SqliteStore
    client: AsyncWebClient
    outbox: Outbox
    notifier: AlertNotifier
    desk: FeedbackDesk
    conversations: Conversations
    ops: OpsCommands
    admins: AdminCheck
    tasks: BackgroundTasks
    metrics: SlackMetrics
    clock: Callable[[], int] = time.time_ns
