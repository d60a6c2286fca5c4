"""Feedback from Slack (reactions and buttons) -> stored verdicts, acks, mutes, and the
alert message re-rendered to show who said what ("Marked false positive by @maria")."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.slack.metrics import SlackMetrics
from bot.slack.notifier import AlertNotifier
from bot.store import SqliteStore, Verdict

__all__ = ["CONFIRMED_EMOJI", "FALSE_POSITIVE_EMOJI", "FeedbackDesk", "ReactionMap"]

FALSE_POSITIVE_EMOJI = ("-1", "x", "no_entry_sign")
CONFIRMED_EMOJI = ("+1", "white_check_mark", "fire")


@dataclass(frozen=True, slots=True)
class ReactionMap:
    """Which reaction names mean which verdict (skin tones ignored: `+1::skin-tone-3`)."""

    false_positive: Iterable[str] = FALSE_POSITIVE_EMOJI
    confirmed: Iterable[str] = CONFIRMED_EMOJI

    def verdict(self, reaction: str) -> Verdict | None:
        name = reaction.split("::", 1)[0].strip(":")
        if name in self.false_positive:
            return "false_positive"
        if name in self.confirmed:
            return "confirmed"
        return None


class FeedbackDesk:
    """Writes what people say about alerts and refreshes the alert message."""

    def __init__(self, store: SqliteStore, notifier: AlertNotifier, metrics: SlackMetrics,
                 reactions: ReactionMap | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store, self.notifier, self.metrics = store, notifier, metrics
        self.reactions, self.clock = reactions or ReactionMap(), clock

    async def anomalies_at(self, channel: str, ts: str) -> list[int]:
        """The anomalies a reaction on the message at (channel, ts) speaks about: the alert's
        one, or every member of an incident (a verdict on the parent is about the whole
        incident, so each member records it); [] for any other message."""
        ref = await self.store.slack_message_at(channel, ts)
        if ref is None:
            return []
        if ref.kind == "alert" and ref.anomaly_id is not None:
            return [ref.anomaly_id]
        if ref.kind == "incident" and ref.incident_id is not None:
            return [m.id for m in await self.store.list_anomalies(incident_id=ref.incident_id)]
        return []

    async def record(self, anomaly_id: int, verdict: Verdict, user_id: str, source: str) -> None:
        await self.store.add_feedback(anomaly_id, verdict, user_id, source, self.clock())
        self.metrics.feedback.labels(verdict, source).inc()
        await self.notifier.refresh(anomaly_id)

    async def withdraw(self, anomaly_id: int, verdict: Verdict, user_id: str) -> None:
        if await self.store.withdraw_feedback(anomaly_id, verdict, user_id, self.clock()):
            self.metrics.feedback.labels(f"withdrawn_{verdict}", "reaction").inc()
            await self.notifier.refresh(anomaly_id)

    async def react(self, anomaly_ids: Sequence[int], verdict: Verdict, user_id: str,
                    added: bool) -> None:
        """A reaction added or removed on a message about `anomaly_ids`, one after another
        (so the incident parent, re-rendered after each, ends showing all of them)."""
        for anomaly_id in anomaly_ids:
            if added:
                await self.record(anomaly_id, verdict, user_id, "reaction")
            else:
                await self.withdraw(anomaly_id, verdict, user_id)

    async def acknowledge(self, anomaly_id: int, user_id: str) -> None:
        if await self.store.acknowledge(anomaly_id, user_id, self.clock()):
            self.metrics.feedback.labels("acknowledged", "button").inc()
            await self.notifier.refresh(anomaly_id)

    async def mute(self, target: str, duration_s: int, user_id: str,
                   anomaly_id: int | None = None) -> int:
        """Mute a key or service; returns the mute's end (ns)."""
        now = self.clock()
        mute = await self.store.add_mute(target, now + duration_s * 10**9, user_id, now)
        if anomaly_id is not None:
            await self.notifier.refresh(anomaly_id)
        return mute.until_ns

    async def unmute(self, target: str) -> int:
        return await self.store.lift_mutes(target, self.clock())
