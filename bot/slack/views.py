"""Persisted records -> Block Kit views (pure): what an alert or incident message shows now.

The detector's records carry the numbers; feedback, acks and mutes come from people.
Everything optional in a record is optional in the message, never invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.slack.blocks import (
    AlertView,
    FeedbackNote,
    IncidentMember,
    IncidentView,
    ServiceMetrics,
    hour_of_week_label,
)
from bot.store.records import (
    AnomalyRecord,
    FeedbackRecord,
    IncidentRecord,
    MuteRecord,
    Verdict,
)
from bot.store.slack_records import AckRecord

__all__ = ["alert_view", "feedback_notes", "incident_notes", "incident_view"]


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def feedback_notes(feedback: Sequence[FeedbackRecord], acks: Sequence[AckRecord],
                   mutes: Sequence[MuteRecord], key: str, now_ns: int) -> list[FeedbackNote]:
    """Active verdicts, acks and a mute covering the key, in the order they happened."""
    dated: list[tuple[int, FeedbackNote]] = [
        (f.created_ns, FeedbackNote(f.verdict, f.user_id)) for f in feedback
        if f.withdrawn_ns is None]
    dated += [(a.created_ns, FeedbackNote("acknowledged", a.user_id)) for a in acks]
    dated += [(m.created_ns, FeedbackNote("muted", m.created_by)) for m in mutes
              if m.covers(key, now_ns)][-1:]
    return [note for _, note in sorted(dated, key=lambda d: d[0])]


def _metrics(details: dict[str, Any]) -> ServiceMetrics | None:
    m = details.get("metrics")
    if not isinstance(m, dict):
        return None
    fields = ("cpu_pct", "memory_pct", "error_rate", "request_rate")
    values = {f: (None if m.get(f) is None else _float(m.get(f))) for f in fields}
    return ServiceMetrics(**values) if any(v is not None for v in values.values()) else None


def alert_view(a: AnomalyRecord, incident: IncidentRecord | None, notes: Sequence[FeedbackNote],
               trace_url_template: str | None) -> AlertView:
    """The alert message's content for anomaly `a` as stored now."""
    base, details = a.baseline or {}, a.details or {}
    bucket = base.get("bucket_label") or base.get("bucket")
    severity = int(details.get("severity") or a.peak_severity)
    origin = details.get("origin_service") or (incident.origin_service if incident else None)
    return AlertView(
        anomaly_id=a.id, severity=severity, service=a.service, operation=a.operation,
        observed=_float(a.observed if a.observed is not None else details.get("observed")),
        baseline_p50=_float(base.get("p50")), baseline_p99=_float(base.get("p99")),
        baseline_bucket=bucket if isinstance(bucket, str) else hour_of_week_label(
            _dt(a.started_ns)),
        score=_float(details.get("score"), a.peak_score), percentile=a.percentile,
        started=_dt(a.started_ns), updated=_dt(max(a.updated_ns, a.started_ns)),
        state=a.state, ended=_dt(a.ended_ns) if a.ended_ns else None,
        peak_severity=a.peak_severity if a.peak_severity != severity else None,
        unit=_unit(base, details),
        incident_id=a.incident_id, metrics=_metrics(details), origin_service=origin,
        exemplar_trace_ids=tuple(a.exemplar_trace_ids), trace_url_template=trace_url_template,
        feedback=tuple(notes),
    )


def _unit(base: dict[str, Any], details: dict[str, Any]) -> str:
    """The baseline's unit; span latency is ms, a metric's unit may be unknown ("")."""
    for source in (base, details):
        if "unit" in source:
            return str(source["unit"] or "")
    return "" if details.get("signal") == "metric" else "ms"


def incident_notes(feedback: dict[int, list[FeedbackRecord]]) -> list[FeedbackNote]:
    """Verdicts every member holds (a reaction on the parent gives each member one), oldest
    first: the parent shows them; a verdict on one member shows on that member only."""
    held: list[dict[tuple[Verdict, str], int]] = [
        {(f.verdict, f.user_id): f.created_ns for f in records if f.withdrawn_ns is None}
        for records in feedback.values()]
    if not held:
        return []
    common = set.intersection(*(set(h) for h in held))
    first = {note: min(h[note] for h in held) for note in common}
    ordered = sorted(common, key=lambda n: (first[n], n))
    return [FeedbackNote(verdict, user) for verdict, user in ordered]


def incident_view(incident: IncidentRecord, members: Sequence[AnomalyRecord],
                  now_ns: int, notes: Sequence[FeedbackNote] = ()) -> IncidentView:
    severities = [m.peak_severity for m in members] or [incident.peak_severity or 5]
    updated = max([m.updated_ns for m in members] + [incident.ended_ns or 0, incident.started_ns])
    return IncidentView(
        incident_id=incident.id, severity=min(min(severities), incident.peak_severity or 5),
        started=_dt(incident.started_ns), updated=_dt(min(updated, max(now_ns, updated))),
        members=[IncidentMember(m.key, m.peak_severity, m.state) for m in members],
        state=incident.state, origin_service=incident.origin_service,
        origin_key=incident.origin_key, feedback=tuple(notes))
