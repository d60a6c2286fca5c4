"""Block Kit for anomaly alerts and alert-storm digests (pure: a view in, a message out).

A message is `{"text", "blocks", "attachments", "metadata"}`, ready as chat.postMessage or
chat.update arguments; the attachment carries the severity colour, and the metadata
carries the anomaly/incident ids that the outbox links to the posted message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict

__all__ = ["ACTION_IDS", "SEVERITY_STYLE", "AlertView", "DigestEntry", "DigestView",
           "FeedbackNote", "IncidentMember", "IncidentView", "Message", "ServiceMetrics",
           "alert_message", "digest_message", "hour_of_week_label", "incident_message",
           "plain_message"]

# severity -> (emoji, attachment colour); SEV1 is the most severe.
SEVERITY_STYLE: dict[int, tuple[str, str]] = {
    1: (":red_circle:", "#D0021B"),
    2: (":large_orange_circle:", "#F2711C"),
    3: (":large_yellow_circle:", "#F2C94C"),
    4: (":large_blue_circle:", "#2F80ED"),
    5: (":white_circle:", "#9B9B9B"),
}
ACTION_IDS = ("investigate", "false_positive", "acknowledge", "mute_1h")
_FEEDBACK_WORDS = {"false_positive": "Marked false positive", "confirmed": "Confirmed",
                   "acknowledged": "Acknowledged", "muted": "Muted for 1 h"}
_MAX_KEY = 150  # keeps the headline well inside Slack's 3000-character section limit


class Message(TypedDict):
    text: str
    blocks: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServiceMetrics:
    """The origin service's vitals around the anomaly; None where unknown."""

    cpu_pct: float | None = None
    memory_pct: float | None = None
    error_rate: float | None = None  # fraction of requests, 0..1
    request_rate: float | None = None  # requests per second


@dataclass(frozen=True, slots=True)
class FeedbackNote:
    kind: Literal["false_positive", "confirmed", "acknowledged", "muted"]
    user_id: str


@dataclass(frozen=True, slots=True)
class AlertView:
    """Everything one alert message shows, as plain values (no engine types)."""

    anomaly_id: int
    severity: int  # current severity, 1 (worst) .. 5
    service: str
    operation: str
    observed: float
    baseline_p50: float
    baseline_p99: float
    baseline_bucket: str  # e.g. "Tue 14:00" (see hour_of_week_label)
    score: float
    percentile: float | None  # percentile of the key's history that set the severity
    started: datetime
    updated: datetime  # last anomalous window; "open for" counts up to here
    state: Literal["open", "resolved"] = "open"
    ended: datetime | None = None
    peak_severity: int | None = None  # None: the current severity
    unit: str = "ms"
    incident_id: int | None = None
    metrics: ServiceMetrics | None = None
    origin_service: str | None = None
    exemplar_trace_ids: Sequence[str] = ()
    trace_url_template: str | None = None  # with {trace_id}
    feedback: Sequence[FeedbackNote] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for sev in (self.severity, self.peak_severity or self.severity):
            if sev not in SEVERITY_STYLE:
                raise ValueError(f"severity must be 1..5 (SEV1 is the worst), got {sev}")


@dataclass(frozen=True, slots=True)
class DigestEntry:
    key: str  # service:operation
    count: int
    worst_severity: int


@dataclass(frozen=True, slots=True)
class DigestView:
    """An alert storm: `total` anomalies on `keys` keys in the last `window_minutes`."""

    total: int
    keys: int
    window_minutes: int
    top: Sequence[DigestEntry]


@dataclass(frozen=True, slots=True)
class IncidentMember:
    key: str  # service:operation
    severity: int
    state: Literal["open", "resolved"]


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident's parent message: its members are posted in its thread."""

    incident_id: int
    severity: int
    started: datetime
    updated: datetime
    members: Sequence[IncidentMember]
    state: Literal["open", "resolved"] = "open"
    origin_service: str | None = None
    origin_key: str | None = None
    feedback: Sequence[FeedbackNote] = field(default_factory=tuple)  # held by every member


def hour_of_week_label(at: datetime) -> str:
    """The baseline bucket of a time, as the message names it: 'Tue 14:00'."""
    return at.strftime("%a %H:00")


def alert_message(view: AlertView) -> Message:
    """The alert for one anomaly; post it once, then chat.update it in place."""
    emoji, colour = SEVERITY_STYLE[view.severity]
    key = _escape(_clip(f"{view.service}:{view.operation}"))
    resolved = "  :white_check_mark: resolved" if view.state == "resolved" else ""
    headline = f"{emoji} *SEV{view.severity}*  `{key}`{resolved}"
    details = [
        _section(f"*{_value(view.observed, view.unit)}* vs {_baseline(view)}"),
        _context(_score_line(view)),
        *([_context(line)] if (line := _metrics_line(view.metrics)) else []),
        *([_section(f"Most likely origin: *{_escape(view.origin_service)}*")]
          if view.origin_service else []),
        *([_context(line)] if (line := _traces_line(view)) else []),
        _context(_state_line(view)),
        *([_context(line)] if (line := _feedback_line(view.feedback)) else []),
        _actions(view),
    ]
    return Message(
        text=f"SEV{view.severity} {view.service}:{view.operation}: "
             f"{_value(view.observed, view.unit)} vs {_baseline(view)}"
             + (" (resolved)" if view.state == "resolved" else ""),
        blocks=[_section(headline)],
        attachments=[{"color": colour, "blocks": details}],
        metadata=_metadata("alert", anomaly_id=view.anomaly_id, incident_id=view.incident_id),
    )


def digest_message(view: DigestView) -> Message:
    """One message that stands for many alerts during a storm."""
    worst = min((e.worst_severity for e in view.top), default=5)
    emoji, colour = SEVERITY_STYLE[worst]
    headline = (f"{emoji} *Alert storm:* {view.total} anomalies on {view.keys} keys "
                f"in the last {view.window_minutes} min")
    lines = [f"{SEVERITY_STYLE[e.worst_severity][0]} SEV{e.worst_severity}  "
             f"`{_escape(_clip(e.key))}` ×{e.count}" for e in view.top]
    shown = sum(e.count for e in view.top)
    rest = [_context(f"and {view.total - shown} more")] if view.total > shown else []
    return Message(
        text=f"Alert storm: {view.total} anomalies on {view.keys} keys in the last "
             f"{view.window_minutes} min",
        blocks=[_section(headline)],
        attachments=[{"color": colour,
                      "blocks": [_section("*Top keys*\n" + "\n".join(lines)), *rest]}],
        metadata=_metadata("digest"),
    )


def incident_message(view: IncidentView) -> Message:
    """The parent message of an incident; each member anomaly's alert goes in its thread."""
    emoji, colour = SEVERITY_STYLE[view.severity]
    services = sorted({m.key.partition(":")[0] for m in view.members})
    resolved = "  :white_check_mark: resolved" if view.state == "resolved" else ""
    headline = (f"{emoji} *SEV{view.severity} incident*: {len(view.members)} anomalies"
                f" across {len(services)} services{resolved}")
    ranked = sorted(view.members, key=lambda m: (m.state != "open", m.severity, m.key))
    lines = [f"{SEVERITY_STYLE[m.severity][0]} SEV{m.severity}  `{_escape(_clip(m.key))}`"
             + ("  (resolved)" if m.state == "resolved" else "") for m in ranked[:10]]
    origin = view.origin_key or view.origin_service
    details = [
        *([_section(f"Most likely origin: *{_escape(origin)}*")] if origin else []),
        *([_section("\n".join(lines))] if lines else []),
        *([_context(f"and {len(ranked) - 10} more in the thread")] if len(ranked) > 10 else []),
        *([_context(line)] if (line := _feedback_line(view.feedback)) else []),
        _context(_incident_state(view)),
    ]
    return Message(
        text=f"SEV{view.severity} incident: {len(view.members)} anomalies"
             + (f", origin {origin}" if origin else "")
             + (" (resolved)" if view.state == "resolved" else ""),
        blocks=[_section(headline)],
        attachments=[{"color": colour, "blocks": details}],
        metadata=_metadata("incident", incident_id=view.incident_id),
    )


def plain_message(text: str, kind: str = "answer", **ids: int | None) -> Message:
    """A text reply (answers, command results) linked to the thread's anomaly/incident."""
    return Message(text=text, blocks=[_section(text[:3000])], attachments=[],
                   metadata=_metadata(kind, **ids))


def _incident_state(view: IncidentView) -> str:
    lasted = _duration(view.updated - view.started)
    if view.state == "resolved":
        return f":white_check_mark: Resolved after {lasted} · details in the thread"
    return f":rotating_light: Open for {lasted} · members in the thread"


def _baseline(view: AlertView) -> str:
    return (f"p50 {_value(view.baseline_p50, view.unit)} / p99 "
            f"{_value(view.baseline_p99, view.unit)} for {_escape(view.baseline_bucket)}")


def _score_line(view: AlertView) -> str:
    line = f"Score {view.score:.1f}"
    if view.percentile is not None:
        line += f" · SEV{view.severity} set by the p{view.percentile:g} of this key's history"
    return line


def _metrics_line(m: ServiceMetrics | None) -> str:
    if m is None:
        return ""
    parts = [
        f"CPU {m.cpu_pct:.0f}%" if m.cpu_pct is not None else "",
        f"memory {m.memory_pct:.0f}%" if m.memory_pct is not None else "",
        f"errors {m.error_rate * 100:.1f}%" if m.error_rate is not None else "",
        f"{m.request_rate:,.0f} req/s" if m.request_rate is not None else "",
    ]
    return " · ".join(p for p in parts if p)


def _traces_line(view: AlertView) -> str:
    links = []
    for trace_id in view.exemplar_trace_ids[:5]:
        label = f"{trace_id[:8]}…" if len(trace_id) > 8 else trace_id
        if view.trace_url_template:
            links.append(f"<{view.trace_url_template.format(trace_id=trace_id)}|{label}>")
        else:
            links.append(f"`{_escape(trace_id)}`")
    return ("Exemplar traces: " + " · ".join(links)) if links else ""


def _state_line(view: AlertView) -> str:
    peak = view.peak_severity or view.severity
    if view.state == "resolved":
        lasted = _duration((view.ended or view.updated) - view.started)
        return f":white_check_mark: Resolved after {lasted} · peak SEV{peak}"
    return f":rotating_light: Open for {_duration(view.updated - view.started)} · peak SEV{peak}"


def _feedback_line(notes: Sequence[FeedbackNote]) -> str:
    return " · ".join(f"{_FEEDBACK_WORDS[n.kind]} by <@{n.user_id}>" for n in notes)


def _actions(view: AlertView) -> dict[str, Any]:
    value = str(view.anomaly_id)
    buttons = [
        _button("investigate", "Investigate", value, style="primary"),
        _button("false_positive", "False positive", value),
    ]
    if view.state == "open":
        mute = _button("mute_1h", "Mute 1 h", value)
        mute["confirm"] = {
            "title": {"type": "plain_text", "text": "Mute this key?"},
            "text": {"type": "mrkdwn", "text": f"No alerts for `{_escape(_clip(view.service))}"
                                               f":{_escape(_clip(view.operation))}` for 1 hour."},
            "confirm": {"type": "plain_text", "text": "Mute"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
        buttons += [_button("acknowledge", "Acknowledge", value), mute]
    return {"type": "actions", "block_id": f"alert:{view.anomaly_id}", "elements": buttons}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value,
                              "text": {"type": "plain_text", "text": label}}
    if style:
        button["style"] = style
    return button


def _metadata(kind: str, **ids: int | None) -> dict[str, Any]:
    payload = {"kind": kind, **{k: v for k, v in ids.items() if v is not None}}
    return {"event_type": f"opsbot_{kind}", "event_payload": payload}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _value(v: float, unit: str) -> str:
    if unit == "ms":
        return f"{v / 1000:,.2f} s" if v >= 10_000 else f"{v:,.1f} ms"
    if unit == "%":
        return f"{v:.1f}%"
    return f"{v:,.4g} {unit}".rstrip()


def _duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_KEY else text[: _MAX_KEY - 1] + "…"


def _escape(text: str) -> str:
    """Slack mrkdwn control characters; user-supplied names must not become links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
