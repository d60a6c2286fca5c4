"""Events API: mentions, thread replies and DMs become questions; reactions become feedback.

A message in the thread of an opsbot alert is a question when it asks one: a "?", a
question word first ("why is it slow"), or an @-mention of the bot (answered through its
app_mention event); other thread replies are remembered as history for later questions.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.slack.conversation import Question, asks_question, mentions_bot
from bot.slack.deps import SlackDeps

__all__ = ["register"]

_MENTION = re.compile(r"<@[UWB][A-Z0-9]+>")
_PLAIN_SUBTYPES = (None, "file_share", "thread_broadcast")


def _question(event: dict[str, Any], body: dict[str, Any], is_dm: bool) -> Question:
    text = _MENTION.sub("", str(event.get("text") or "")).strip()
    return Question(text=text, user_id=str(event.get("user", "")),
                    channel=str(event["channel"]), ts=str(event["ts"]),
                    thread_ts=event.get("thread_ts"), event_id=str(body.get("event_id") or
                                                                   f"{event['channel']}:"
                                                                   f"{event['ts']}"),
                    is_dm=is_dm)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    def ask(q: Question) -> None:
        deps.tasks.spawn(deps.conversations.ask(q), f"question {q.event_id}")

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        ask(_question(event, body, is_dm=False))

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any],
                         context: AsyncBoltContext) -> None:
        if event.get("subtype") not in _PLAIN_SUBTYPES or event.get("bot_id"):
            return
        q = _question(event, body, is_dm=event.get("channel_type") == "im")
        if q.is_dm:
            ask(q)
            return
        if q.thread_ts is None:
            return
        bot = context.bot_user_id
        if mentions_bot(str(event.get("text") or ""), bot):
            return  # a question; the app_mention event for the same message answers it
        if await deps.store.slack_message_at(q.channel, q.thread_ts) is None:
            return  # not an opsbot thread
        if asks_question(q.text, bot):
            ask(q)
        else:
            deps.conversations.remember(q.channel, q.thread_ts, q.user_id, q.text)

    @app.event("reaction_added")
    async def on_reaction_added(event: dict[str, Any]) -> None:
        await _reaction(deps, event, added=True)

    @app.event("reaction_removed")
    async def on_reaction_removed(event: dict[str, Any]) -> None:
        await _reaction(deps, event, added=False)


async def _reaction(deps: SlackDeps, event: dict[str, Any], added: bool) -> None:
    item = event.get("item") or {}
    verdict = deps.desk.reactions.verdict(str(event.get("reaction", "")))
    if verdict is None or item.get("type") != "message":
        return
    # an alert's anomaly, or every member of an incident (reaction on its parent); [] for
    # a reaction on some other message
    anomaly_ids = await deps.desk.anomalies_at(str(item.get("channel")), str(item.get("ts")))
    if anomaly_ids:
        deps.tasks.spawn(deps.desk.react(anomaly_ids, verdict, str(event.get("user", "")), added),
                         f"reaction {item.get('ts')}")
