"""Alert buttons: Investigate, False positive, Acknowledge, Mute 1 h (admins only)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.slack.admins import REFUSAL
from bot.slack.conversation import Question
from bot.slack.deps import SlackDeps

__all__ = ["INVESTIGATE_PROMPT", "register"]

INVESTIGATE_PROMPT = "Investigate this alert: what is the likely cause, and where should I look?"
MUTE_1H_S = 3600


def _where(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(channel, message ts, thread ts) of the message whose button was pressed."""
    container = body.get("container") or {}
    channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id"))
    message = body.get("message") or {}
    ts = str(container.get("message_ts") or message.get("ts"))
    return channel, ts, message.get("thread_ts") or container.get("thread_ts")


def _anomaly_id(action: dict[str, Any]) -> int | None:
    try:
        return int(str(action.get("value")))
    except ValueError:
        return None


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.action("investigate")
    async def investigate(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        channel, ts, thread_ts = _where(body)
        user = str(body["user"]["id"])
        q = Question(INVESTIGATE_PROMPT, user, channel, ts, thread_ts or ts,
                     event_id=f"action:{action.get('action_ts')}:{user}",
                     anomaly_id=_anomaly_id(action))
        deps.tasks.spawn(deps.conversations.ask(q), f"investigate {ts}")

    @app.action("false_positive")
    async def false_positive(ack: AsyncAck, body: dict[str, Any],
                             action: dict[str, Any]) -> None:
        await ack()
        if (anomaly_id := _anomaly_id(action)) is not None:
            deps.tasks.spawn(deps.desk.record(anomaly_id, "false_positive",
                                              str(body["user"]["id"]), "button"),
                             f"false positive {anomaly_id}")

    @app.action("acknowledge")
    async def acknowledge(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        if (anomaly_id := _anomaly_id(action)) is not None:
            deps.tasks.spawn(deps.desk.acknowledge(anomaly_id, str(body["user"]["id"])),
                             f"acknowledge {anomaly_id}")

    @app.action("mute_1h")
    async def mute_1h(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user, (channel, _, _) = str(body["user"]["id"]), _where(body)
        anomaly_id = _anomaly_id(action)
        if anomaly_id is None:
            return
        if not await deps.admins.allows(user):
            deps.metrics.commands.labels("mute_button", "refused").inc()
            await deps.outbox.enqueue(
                f"refusal:{action.get('action_ts')}:{user}", "chat.postEphemeral",
                {"channel": channel, "user": user, "text": REFUSAL.format(what="mute alerts")})
            return
        anomaly = await deps.store.get_anomaly(anomaly_id)
        if anomaly is not None:
            deps.tasks.spawn(deps.desk.mute(anomaly.key, MUTE_1H_S, user, anomaly_id),
                             f"mute {anomaly.key}")
