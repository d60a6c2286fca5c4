"""What a question is about: rules over the question text and the Slack thread.

Rules decide when they can (a key named in the question, the alert the thread
belongs to, the previous turn's subject); the model is asked only when they cannot,
and then only to pick from a closed list of known keys.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypedDict, cast

__all__ = ["Intent", "Subject", "intent_of", "resolve_subject", "time_shift_ns"]

Intent = Literal["investigate", "feedback", "recalculate", "list"]

_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9


class Subject(TypedDict, total=False):
    key: str | None
    service: str | None
    anomaly_id: int | None
    incident_id: int | None
    at_ns: int
    window: str
    source: str  # question | thread | memory | model | none


_FEEDBACK = re.compile(
    r"\b(false (positive|alarm)|ignore (it|this)|planned|load test|not a real|expected"
    r"|known issue|this (is|was) (real|genuine)|confirm(ed)? (it|this)|real incident)\b", re.I)
_CONFIRM = re.compile(r"\b(this (is|was) (real|genuine)|confirm(ed)? (it|this)|real incident)\b",
                      re.I)
_RECALC = re.compile(r"\b(recalc\w*|recompute|rebuild (the )?baselines?)\b", re.I)
_LIST = re.compile(r"\b(any anomal\w*|list (the )?anomal\w*|what('s| is) (broken|wrong|going on)"
                   r"|which services?)\b", re.I)


def intent_of(question: str) -> Intent:
    if _RECALC.search(question):
        return "recalculate"
    if _FEEDBACK.search(question):
        return "feedback"
    if _LIST.search(question):
        return "list"
    return "investigate"


def feedback_verdict(question: str) -> str:
    return "confirmed" if _CONFIRM.search(question) else "false_positive"


def time_shift_ns(question: str) -> int:
    """How far back the question looks: 'yesterday' is a day, 'last hour' an hour."""
    q = question.lower()
    if "yesterday" in q:
        return _DAY_NS
    if "last week" in q:
        return 7 * _DAY_NS
    m = re.search(r"\b(\d{1,3})\s*(h|hours?|d|days?) ago\b", q)
    if m:
        return int(m.group(1)) * (_DAY_NS if m.group(2).startswith("d") else _HOUR_NS)
    return 0


def _named_key(question: str, keys: list[str]) -> str | None:
    """The known key the question names: whole key first, then a unique operation name."""
    q = question.lower()
    whole = [k for k in keys if k.lower() in q]
    if whole:
        return max(whole, key=len)
    by_op = [k for k in keys if len(k.split(":", 1)[-1]) >= 4 and re.search(
        rf"(?<![\w.-]){re.escape(k.split(':', 1)[-1].lower())}(?![\w.-])", q)]
    if len(by_op) > 1:  # pg.query of which service? a named service decides
        service = _named_service(question, keys)
        by_op = [k for k in by_op if k.split(":", 1)[0] == service]
    longest = max((len(k.split(":", 1)[-1]) for k in by_op), default=0)
    by_op = [k for k in by_op if len(k.split(":", 1)[-1]) == longest]
    return by_op[0] if len(by_op) == 1 else None


def _named_service(question: str, keys: list[str]) -> str | None:
    services = sorted({k.split(":", 1)[0] for k in keys}, key=len, reverse=True)
    q = question.lower()
    return next((s for s in services if re.search(rf"(?<![\w-]){re.escape(s.lower())}(?![\w-])",
                                                  q)), None)


def _metric_service(series: str) -> str | None:
    """The service label of a metric series name: 'cpu{service="kx-wallet"}' -> kx-wallet."""
    m = re.search(r'\bservice(?:_name)?="([^"]+)"', series)
    return m.group(1) if m else None


def resolve_subject(question: str, ask: dict[str, Any], keys: list[str], now_ns: int,
                    previous: Subject | None) -> Subject | None:
    """Rules only; None means the rules could not decide (the caller may ask the model)."""
    at = now_ns - time_shift_ns(question)
    key = _named_key(question, keys)
    base = Subject(anomaly_id=ask.get("anomaly_id"), incident_id=ask.get("incident_id"),
                   at_ns=at, window="1h")
    if key:
        return _with(base, key=key, service=key.split(":", 1)[0], source="question")
    if ask.get("anomaly_key"):
        k = str(ask["anomaly_key"])
        if "{" in k:  # a metric series alert: its service, and its span key when it has one
            service = _metric_service(k)
            own = [x for x in keys if x.split(":", 1)[0] == service]
            return _with(base, key=own[0] if len(own) == 1 else None, service=service,
                         source="thread")
        return _with(base, key=k, service=k.split(":", 1)[0], source="thread")
    service = _named_service(question, keys)
    if service:
        return _with(base, key=None, service=service, source="question")
    if previous and (previous.get("key") or previous.get("service")):
        return _with(previous, at_ns=at, source="memory")
    if base.get("anomaly_id") is not None or base.get("incident_id") is not None:
        return _with(base, key=None, service=None, source="thread")
    return None


def _with(subject: Subject, **changes: Any) -> Subject:
    merged: dict[str, Any] = {**subject, **changes}
    return cast(Subject, merged)
