"""The boundary between the Slack bot and the investigation agent (issue 5).

The agent side implements `AgentPort` in `agent/service.py` (`AgentService`); the bot
only knows this Protocol. `load_agent` returns None while that module does not exist,
and the bot then answers that the agent is not available.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["AGENT_UNAVAILABLE", "AgentAnswer", "AgentPort", "AskContext", "load_agent"]

log = logging.getLogger(__name__)

AGENT_UNAVAILABLE = (
    ":warning: The agent is not available: no model is configured or loaded. "
    "Alerts, feedback and `/opsbot` commands still work; see `opsbot model pull`."
)


@dataclass(frozen=True, slots=True)
class AskContext:
    """Who asks where, and what the thread is about (its alert's anomaly / incident)."""

    user_id: str
    channel: str
    thread_ts: str | None
    anomaly_ids: Sequence[int] = ()
    incident_ids: Sequence[int] = ()
    anomaly_key: str | None = None  # service:operation of the thread's alert
    is_admin: bool = False  # may the asker change things (mute, recalc) through the agent
    # Earlier turns in this thread as (user id or "opsbot", text), oldest first; kept from
    # received events (the bot never re-reads threads with conversations.replies).
    history: Sequence[tuple[str, str]] = field(default_factory=tuple)

    @property
    def anomaly_id(self) -> int | None:
        """The thread's own anomaly (the first of `anomaly_ids`)."""
        return self.anomaly_ids[0] if self.anomaly_ids else None

    @property
    def incident_id(self) -> int | None:
        return self.incident_ids[0] if self.incident_ids else None


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    text: str  # final Slack mrkdwn


@runtime_checkable
class AgentPort(Protocol):
    async def answer(self, question: str, context: AskContext,
                     on_text: Callable[[str], Awaitable[None]]) -> AgentAnswer:
        """Answer `question`; call `on_text(text so far)` as the answer grows."""
        ...


def load_agent(settings: Any, store: Any) -> AgentPort | None:
    """The agent from `agent.service.AgentService(settings, store)`, or None when absent."""
    try:
        module = importlib.import_module("agent.service")
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name in ("agent.service", "agent"):
            return None
        log.warning("the agent cannot be imported (%s); questions get 'not available'", exc)
        return None
    factory = getattr(module, "AgentService", None)
    if factory is None:
        return None
    try:
        agent = factory(settings, store)
    except Exception as exc:  # a model that cannot load must not keep Slack down
        log.warning("the agent could not start (%s); questions get 'not available'", exc)
        return None
    return agent if isinstance(agent, AgentPort) else None
