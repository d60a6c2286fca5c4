"""Questions in threads, mentions and DMs -> the agent -> an answer edited in place.

A placeholder is queued at once (the outbox worker wakes on enqueue, so it lands in well
under a second); the agent's growing text edits it at most once per `edit_interval_s`
(chat.update is rate limited), and the final answer always replaces it.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.slack.admins import AdminCheck
from bot.slack.agent_port import AGENT_UNAVAILABLE, AgentPort, AskContext
from bot.slack.blocks import plain_message
from bot.slack.metrics import SlackMetrics
from bot.slack.outbox import Outbox
from bot.slack.threads import ThreadHistory
from bot.store import SqliteStore

__all__ = ["PLACEHOLDER", "QUESTION_WORDS", "Conversations", "Question", "asks_question",
           "mentions_bot"]

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Looking at traces and metrics..."
BOT = "opsbot"
# A thread reply that starts with one of these asks something even without a "?"
# (people type "why is it slow" and expect an answer).
QUESTION_WORDS = frozenset({"why", "what", "how", "when", "where", "is", "are", "can", "which",
                            "who"})
_MENTION = re.compile(r"<@[UWB][A-Z0-9]+(?:\|[^>]*)?>")
_FIRST_WORD = re.compile(r"[a-z]+")


def mentions_bot(text: str, bot_user_id: str | None) -> bool:
    """Whether `text` @-mentions the bot (`<@U..>` or `<@U..|name>`)."""
    return bool(bot_user_id) and (f"<@{bot_user_id}>" in text or f"<@{bot_user_id}|" in text)


def asks_question(text: str, bot_user_id: str | None = None) -> bool:
    """Whether a reply in an alert's thread is a question for the bot: it has a "?",
    @-mentions the bot, or starts with a question word; anything else is conversation
    the bot only remembers."""
    if "?" in text or mentions_bot(text, bot_user_id):
        return True
    first = _FIRST_WORD.match(_MENTION.sub("", text).strip().lower())
    return first is not None and first.group() in QUESTION_WORDS


@dataclass(frozen=True, slots=True)
class Question:
    """One question as received: where to answer, and the event that carried it."""

    text: str
    user_id: str
    channel: str
    ts: str  # the question's own ts
    thread_ts: str | None  # the thread it was asked in, if any
    event_id: str
    is_dm: bool = False
    anomaly_id: int | None = None  # the alert a button was pressed on: first in the context

    @property
    def reply_thread(self) -> str | None:
        """Answers go in the question's thread; a top-level DM is answered top-level."""
        if self.thread_ts is not None:
            return self.thread_ts
        return None if self.is_dm else self.ts


class Conversations:
    def __init__(self, store: SqliteStore, outbox: Outbox, agent: AgentPort | None,
                 history: ThreadHistory, metrics: SlackMetrics, *,
                 admins: AdminCheck | None = None, edit_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.outbox, self.agent = store, outbox, agent
        self.history, self.metrics, self.admins = history, metrics, admins
        self.edit_interval_s, self.clock = edit_interval_s, clock
        self._seq = itertools.count()

    def remember(self, channel: str, thread_ts: str, who: str, text: str) -> None:
        """A message seen in a thread (any author), for the agent's context."""
        self.history.add(channel, thread_ts, who, text)

    async def context(self, q: Question) -> AskContext:
        anomalies: list[int] = [q.anomaly_id] if q.anomaly_id is not None else []
        incidents: list[int] = []
        if q.thread_ts is not None:
            ref = await self.store.slack_message_at(q.channel, q.thread_ts)
            if ref is not None and ref.anomaly_id is not None and ref.anomaly_id not in anomalies:
                anomalies.append(ref.anomaly_id)
            if ref is not None and ref.incident_id is not None:
                incidents.append(ref.incident_id)
                if ref.kind == "incident":
                    members = await self.store.list_anomalies(incident_id=ref.incident_id)
                    anomalies += [m.id for m in members if m.id not in anomalies]
        turns = self.history.turns(q.channel, q.thread_ts) if q.thread_ts else ()
        first = await self.store.get_anomaly(anomalies[0]) if anomalies else None
        admin = self.admins is not None and await self.admins.allows(q.user_id)
        return AskContext(q.user_id, q.channel, q.thread_ts, tuple(anomalies), tuple(incidents),
                          first.key if first else None, admin, turns)

    async def ask(self, q: Question) -> None:
        """Answer one question; call once per event (the listener deduplicates events)."""
        context = await self.context(q)
        thread = q.reply_thread
        if thread is not None:
            self.remember(q.channel, thread, q.user_id, q.text)
        ids = {"anomaly_id": context.anomaly_id, "incident_id": context.incident_id}
        key = f"answer:{q.event_id}"
        base = {"channel": q.channel, **({"thread_ts": thread} if thread else {})}
        if self.agent is None:
            await self.outbox.enqueue(key, "chat.postMessage",
                                      {**base, **plain_message(AGENT_UNAVAILABLE, "answer", **ids)})
            self.metrics.questions.labels("unavailable").inc()
            return
        await self.outbox.enqueue(key, "chat.postMessage",
                                  {**base, **plain_message(PLACEHOLDER, "answer", **ids)})
        started = self.clock()
        final = await self._answer(q, context, key)
        await self._edit(key, final)
        self.metrics.answer_seconds.observe(self.clock() - started)
        if thread is not None:
            self.remember(q.channel, thread, BOT, final)

    async def _answer(self, q: Question, context: AskContext, key: str) -> str:
        assert self.agent is not None
        last_edit = [self.clock()]

        async def on_text(text: str) -> None:
            now = self.clock()
            if text.strip() and now - last_edit[0] >= self.edit_interval_s:
                last_edit[0] = now
                await self._edit(key, text + " …")

        try:
            answer = await self.agent.answer(q.text, context, on_text)
        except Exception as exc:  # the agent failing must still end the placeholder
            log.exception("agent failed on %s", q.event_id)
            self.metrics.questions.labels("error").inc()
            return f":warning: Sorry, I could not finish that answer ({type(exc).__name__})."
        self.metrics.questions.labels("answered").inc()
        return answer.text or "_(the agent returned no answer)_"

    async def _edit(self, key: str, text: str) -> None:
        await self.outbox.enqueue(f"{key}:edit:{next(self._seq)}", "chat.update",
                                  {"text": text, "blocks": plain_message(text)["blocks"]},
                                  target=key)
