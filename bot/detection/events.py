"""What the detection engine tells its subscribers: one event per persisted change.

An `EngineEvent` carries the record *after* it was written to the store (so its
numeric `id` is set and a subscriber may read more from the store):

    subject  "anomaly" | "incident"
    kind     "opened" | "updated" | "resolved"
    t_ns     the engine's clock when the change was decided (span time when replaying)
    anomaly  AnomalyRecord for subject "anomaly" (None otherwise)
    incident IncidentRecord: the anomaly's incident, or the incident itself

Subscribers are `async def callback(event: EngineEvent) -> None`; they run after
the step is persisted, in order, and an exception in one is logged, never
raised into the engine. Events of muted keys (`store.active_mutes`) are not
delivered; the records are stored all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.store.records import AnomalyRecord, IncidentRecord

__all__ = ["EngineEvent", "EventKind", "Subject", "Subscriber"]

Subject = Literal["anomaly", "incident"]
EventKind = Literal["opened", "updated", "resolved"]


@dataclass(frozen=True, slots=True)
class EngineEvent:
    subject: Subject
    kind: EventKind
    t_ns: int
    anomaly: AnomalyRecord | None = None
    incident: IncidentRecord | None = None

    @property
    def key(self) -> str | None:
        """The span key of an anomaly event (None for incident events)."""
        return self.anomaly.key if self.anomaly is not None else None


Subscriber = Callable[[EngineEvent], Awaitable[None]]
