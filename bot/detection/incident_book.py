"""Which current anomalies form which incident, and what changed since the last step (pure).

The book keeps every open anomaly, and resolved ones until no new anomaly could
still join them (`overlap_slack_s` after their end), as `IncidentMember`s; each
step regroups them with `detectors.group_incidents` and compares the result
with the previous step, so only incidents that changed are written and
announced. An incident's uid is the anomaly id of its earliest member; when two
incidents merge, the later one is closed with `merged_into` pointing at the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.detection.events import EventKind
from detectors.grouping import CallGraph, Incident, IncidentMember, group_incidents

__all__ = ["IncidentBook", "IncidentChange"]


@dataclass(frozen=True, slots=True)
class IncidentChange:
    kind: EventKind
    incident: Incident | None  # None when merged away
    uid: str
    merged_into: str | None = None


@dataclass(slots=True)
class IncidentBook:
    slack_ns: int
    members: dict[str, IncidentMember] = field(default_factory=dict)
    severity: dict[str, int] = field(default_factory=dict)  # anomaly uid -> peak severity
    keys: dict[str, str] = field(default_factory=dict)  # anomaly uid -> span key
    seen: dict[str, list[Any]] = field(default_factory=dict)  # incident uid -> last snapshot
    incident_of: dict[str, str] = field(default_factory=dict)  # anomaly uid -> incident uid
    _last: list[Incident] = field(default_factory=list)  # the latest grouping

    def put(self, member: IncidentMember, key: str, severity: int) -> None:
        self.members[member.anomaly_id] = member
        self.keys[member.anomaly_id] = key
        self.severity[member.anomaly_id] = severity

    def regroup(self, graph: CallGraph, now_ns: int) -> list[IncidentChange]:
        """Group and diff against the last step (call `forget` once the changes are written)."""
        incidents = group_incidents(list(self.members.values()), graph, now_ns)
        changes: list[IncidentChange] = []
        current: dict[str, Incident] = {inc.incident_id: inc for inc in incidents}
        for inc in incidents:
            snap = self._snapshot(inc)
            before = self.seen.get(inc.incident_id)
            if before == snap:
                continue
            if before is None:
                kind: EventKind = "opened" if inc.end_ns is None else "resolved"
            elif inc.end_ns is not None and before[3] is None:
                kind = "resolved"
            else:
                kind = "updated"
            self.seen[inc.incident_id] = snap
            changes.append(IncidentChange(kind, inc, inc.incident_id))
        for uid in [u for u in self.seen if u not in current]:
            into = next((self.incident_of_new(m, current) for m in self.seen[uid][0]), None)
            changes.append(IncidentChange("resolved", None, uid, into))
            del self.seen[uid]
        for inc in incidents:
            for m in inc.members:
                self.incident_of[m.anomaly_id] = inc.incident_id
        self._last = incidents
        return changes

    def forget(self, now_ns: int) -> None:
        """After the step is written: drop incidents no new anomaly can join any more."""
        self._forget(self._last, now_ns)
        self._last = []

    @staticmethod
    def incident_of_new(anomaly_uid: str, current: dict[str, Incident]) -> str | None:
        for uid, inc in current.items():
            if any(m.anomaly_id == anomaly_uid for m in inc.members):
                return uid
        return None

    def peak_severity(self, inc: Incident) -> int:
        return min(self.severity.get(m.anomaly_id, 5) for m in inc.members)

    def _snapshot(self, inc: Incident) -> list[Any]:
        return [sorted(m.anomaly_id for m in inc.members), inc.origin.anomaly_id,
                self.peak_severity(inc), inc.end_ns, list(inc.chain)]

    def _forget(self, incidents: list[Incident], now_ns: int) -> None:
        """Drop incidents whose members all ended more than the slack ago: none can join now."""
        for inc in incidents:
            if inc.end_ns is None or now_ns - inc.end_ns <= self.slack_ns:
                continue
            for m in inc.members:
                for table in (self.members, self.severity, self.keys, self.incident_of):
                    table.pop(m.anomaly_id, None)
            self.seen.pop(inc.incident_id, None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": [asdict(m) for m in self.members.values()],
            "severity": self.severity, "keys": self.keys, "seen": self.seen,
            "incident_of": self.incident_of,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], slack_ns: int) -> IncidentBook:
        book = cls(slack_ns)
        book.members = {m["anomaly_id"]: IncidentMember(**m) for m in d["members"]}
        book.severity = {k: int(v) for k, v in d["severity"].items()}
        book.keys = dict(d["keys"])
        book.seen = {k: list(v) for k, v in d["seen"].items()}
        book.incident_of = dict(d["incident_of"])
        return book
