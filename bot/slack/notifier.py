"""Detector events -> alert messages through the outbox: post once, then edit in place.

An anomaly posts one message (dedupe key `alert:<uid>`), edited as it grows or resolves.
An anomaly in an incident is posted in the thread of the incident's parent message
(`incident:<uid>`), which is edited as members join. New top-level messages per channel
are capped; the rest fold into a storm digest. The cap's state and which alerts were
folded are kept in the store, so after a restart mid-storm a folded alert stays folded and
new ones keep going to the same digest. Muted keys post nothing. The chart is uploaded
into the thread after the message is sent, so rendering never delays an alert.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from bot.slack.blocks import Message, alert_message, digest_message, incident_message
from bot.slack.charts import ChartUploader
from bot.slack.metrics import SlackMetrics
from bot.slack.outbox import Outbox
from bot.slack.storm import ChannelRateCap
from bot.slack.views import alert_view, feedback_notes, incident_notes, incident_view
from bot.store import AnomalyRecord, IncidentRecord, SqliteStore

__all__ = ["AlertNotifier", "AlertSink", "EventKind", "alert_key", "incident_key"]

log = logging.getLogger(__name__)

EventKind = Literal["opened", "updated", "resolved"]


class AlertSink(Protocol):
    """Where detector events go: Slack (AlertNotifier) or the terminal (TerminalChannel)."""

    async def on_event(self, kind: EventKind, anomaly: AnomalyRecord | None,
                       incident: IncidentRecord | None = None) -> None: ...


def alert_key(anomaly: AnomalyRecord) -> str:
    return f"alert:{anomaly.uid}"


def incident_key(incident: IncidentRecord) -> str:
    return f"incident:{incident.uid}"


class AlertNotifier:
    """Turns persisted anomaly/incident records into outbox rows (see the module docstring)."""

    def __init__(self, store: SqliteStore, outbox: Outbox, channel: str, metrics: SlackMetrics,
                 *, rate_cap: ChannelRateCap | None = None, charts: ChartUploader | None = None,
                 trace_url_template: str | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store, self.outbox, self.channel, self.metrics = store, outbox, channel, metrics
        self.rate_cap = rate_cap or ChannelRateCap()
        self.charts, self.trace_url_template, self.clock = charts, trace_url_template, clock
        self._seq = itertools.count()
        self._capped: set[str] = set()  # uids folded into a storm digest (never posted)
        self._restored = False  # the rate cap's persisted state has been read back

    async def on_event(self, kind: EventKind, anomaly: AnomalyRecord | None,
                       incident: IncidentRecord | None = None) -> None:
        """One detector event, after its records were persisted."""
        if anomaly is None:
            if incident is not None:
                await self._refresh_incident(incident)
            return
        if incident is None and anomaly.incident_id is not None:
            incident = await self.store.get_incident(anomaly.incident_id)
        if await self.outbox.entry(alert_key(anomaly)) is not None:
            await self._update(alert_key(anomaly), await self._alert(anomaly, incident))
            self.metrics.alerts.labels("updated").inc()
        elif await self._was_capped(anomaly.uid):
            self.metrics.alerts.labels("skipped").inc()
        elif kind == "opened" or anomaly.state == "open":
            await self._post_new(anomaly, incident)
        if incident is not None:
            await self._refresh_incident(incident)

    async def on_engine_event(self, event: Any) -> None:
        """Subscriber for bot.detection's EngineEvent (kind, anomaly, incident)."""
        await self.on_event(event.kind, event.anomaly, event.incident)

    async def refresh(self, anomaly_id: int, *, parent: bool = True) -> bool:
        """Re-render an anomaly's message (after feedback), and with `parent` its incident's
        parent message (which shows verdicts all members share); False when it has none."""
        anomaly = await self.store.get_anomaly(anomaly_id)
        if anomaly is None:
            return False
        incident = (await self.store.get_incident(anomaly.incident_id)
                    if anomaly.incident_id is not None else None)
        if parent and incident is not None:
            await self._refresh_incident(incident)
        if await self.outbox.entry(alert_key(anomaly)) is None:
            return False
        await self._update(alert_key(anomaly), await self._alert(anomaly, incident))
        return True

    async def _post_new(self, anomaly: AnomalyRecord, incident: IncidentRecord | None) -> None:
        now = self.clock()
        mutes = await self.store.active_mutes(now)
        if any(m.covers(anomaly.key, now) for m in mutes):
            self.metrics.alerts.labels("muted").inc()
            log.info("alert %s: %s is muted; not posted", anomaly.uid, anomaly.key)
            return
        message = await self._alert(anomaly, incident)
        target = None
        if incident is not None:
            target = await self._ensure_parent(incident, now)
            if target is None:
                await self._fold(anomaly, now)
                return
            self.metrics.alerts.labels("in_thread").inc()
        elif not await self._admit(now):
            await self._fold(anomaly, now)
            return
        else:
            self.metrics.alerts.labels("posted").inc()
        await self.outbox.enqueue(alert_key(anomaly), "chat.postMessage",
                                  {"channel": self.channel, **message}, target=target,
                                  now_ns=now)
        if self.charts is not None:
            await self.charts.schedule(anomaly, alert_key(anomaly))

    async def _ensure_parent(self, incident: IncidentRecord, now: int) -> str | None:
        """The parent's dedupe key, posting it first if needed; None if the storm took it."""
        key = incident_key(incident)
        if await self.outbox.entry(key) is not None:
            return key
        if await self._was_capped(incident.uid) or not await self._admit(now):
            await self._save_cap([incident.uid], now)
            return None
        message = await self._incident(incident)
        await self.outbox.enqueue(key, "chat.postMessage", {"channel": self.channel, **message},
                                  now_ns=now)
        self.metrics.alerts.labels("posted").inc()
        return key

    async def _fold(self, anomaly: AnomalyRecord, now: int) -> None:
        self.metrics.alerts.labels("capped").inc()
        await self._restore()
        storm, fresh = self.rate_cap.fold(self.channel, anomaly.key, anomaly.peak_severity, now)
        message = digest_message(storm.view())
        if fresh:
            await self.outbox.enqueue(storm.dedupe_key, "chat.postMessage",
                                      {"channel": self.channel, **message}, now_ns=now)
        else:
            await self._update(storm.dedupe_key, message)
        # after the digest is queued: a state naming a digest never queued would make
        # every later edit of it fail
        await self._save_cap([anomaly.uid], now)

    async def _restore(self) -> None:
        """Read the rate cap's persisted state back, once, before its first use."""
        if not self._restored:
            state = await self.store.storm_state(self.channel)
            if state is not None:
                self.rate_cap.restore(self.channel, state)
            self._restored = True

    async def _admit(self, now: int) -> bool:
        await self._restore()
        admitted = self.rate_cap.admit(self.channel, now)
        if admitted:
            await self._save_cap([], now)
        return admitted

    async def _was_capped(self, uid: str) -> bool:
        if uid in self._capped:
            return True
        if await self.store.is_capped(uid):
            self._capped.add(uid)
            return True
        return False

    async def _save_cap(self, capped: list[str], now: int) -> None:
        self._capped.update(capped)
        await self.store.save_storm_state(self.channel, self.rate_cap.state(self.channel),
                                          capped, now)

    async def _refresh_incident(self, incident: IncidentRecord) -> None:
        key = incident_key(incident)
        if await self.outbox.entry(key) is not None:
            await self._update(key, await self._incident(incident))

    async def _update(self, post_key: str, message: Message) -> None:
        # Each edit is its own row: the outbox folds it into a post not yet sent and
        # skips it when a newer edit of the same message is queued.
        await self.outbox.enqueue(f"{post_key}:edit:{self.clock()}:{next(self._seq)}",
                                  "chat.update", dict(message), target=post_key)

    async def _alert(self, anomaly: AnomalyRecord, incident: IncidentRecord | None) -> Message:
        now = self.clock()
        feedback = (await self.store.feedback_for([anomaly.id]))[anomaly.id]
        notes = feedback_notes(feedback, await self.store.acks_for(anomaly.id),
                               await self.store.active_mutes(now), anomaly.key, now)
        return alert_message(alert_view(anomaly, incident, notes, self.trace_url_template))

    async def _incident(self, incident: IncidentRecord) -> Message:
        members = await self.store.list_anomalies(incident_id=incident.id)
        notes = incident_notes(await self.store.feedback_for([m.id for m in members]))
        return incident_message(incident_view(incident, members, self.clock(), notes))
