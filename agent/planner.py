"""Which tools to call: a fixed list, typed arguments from the subject, bounded rounds.

Arguments come from the resolved subject and from structured fields of earlier
results (trace ids, checked to be hex), never from free text in tool output:
a span attribute cannot steer which tools run or what they write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agent.evidence import EvidencePack
from agent.subject import Intent, Subject, feedback_verdict

__all__ = ["MAX_CALLS", "MAX_ROUNDS", "call_signature", "plan_calls", "validate_call"]

MAX_ROUNDS = 3
MAX_CALLS = 10
_TRACE_ID = re.compile(r"^[0-9a-f]{16,32}$")
_READ_ONLY_FIRST_ROUND = ("anomalies", "incident", "baseline", "slow_traces", "metrics",
                          "similar_incidents", "service_graph")


def call_signature(tool: str, args: Mapping[str, Any]) -> str:
    return tool + json.dumps(args, sort_keys=True, default=str)


def _iso(ns: int) -> str:
    """The tools' TimeArg form: '2024-05-01T12:03:00Z'."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_round(s: Subject, intent: Intent, ask: Mapping[str, Any], question: str
                 ) -> list[tuple[str, dict[str, Any]]]:
    at, window = _iso(s.get("at_ns", 0)), s.get("window", "30m")
    key, service = s.get("key"), s.get("service")
    if intent == "feedback":
        anomaly = s.get("anomaly_id") or ask.get("anomaly_id")
        if anomaly is None:
            return [("anomalies", {"service": service, "since": "24h"})]
        return [("record_feedback", {"anomaly_id": anomaly, "verdict": feedback_verdict(question),
                                     "reason": question[:500]})]
    if intent == "recalculate":
        return [("recalculate", {"scope": "thresholds"})]
    if intent == "list" or (key is None and service is None):
        return [("anomalies", {"service": service, "since": "24h"})]
    calls: list[tuple[str, dict[str, Any]]] = []
    if s.get("incident_id") is not None:
        calls.append(("incident", {"incident": str(s["incident_id"])}))
    calls.append(("anomalies", {"service": service, "since": "24h", "key": key}))
    if key:
        calls += [("baseline", {"key": key, "at": at}),
                  ("slow_traces", {"key": key, "window": window, "at": at})]
    calls.append(("metrics", {"service": service, "at": at, "window": window}))
    anomaly = s.get("anomaly_id")
    calls.append(("similar_incidents", {"anomaly_id": anomaly, "text": None if anomaly
                                        else question[:300]}))
    calls.append(("service_graph", {"service": service}))
    return calls


def _slowest_trace(pack: EvidencePack) -> str | None:
    for item in pack.by_tool("slow_traces"):
        for t in item.data.get("traces") or []:
            tid = str(t.get("trace_id", "")) if isinstance(t, dict) else ""
            if _TRACE_ID.match(tid):
                return tid
    for item in pack.by_tool("anomalies", "incident"):
        for a in item.data.get("anomalies") or []:
            for tid in a.get("exemplar_trace_ids") or []:
                if _TRACE_ID.match(str(tid)):
                    return str(tid)
    return None


def plan_calls(subject: Subject | None, intent: Intent, ask: Mapping[str, Any], question: str,
               rounds: int, pack: EvidencePack, extra: list[str] | None = None
               ) -> list[tuple[str, dict[str, Any]]]:
    """The calls of this round: the first round from the subject, later ones from results."""
    if rounds >= MAX_ROUNDS:
        return []
    if rounds == 0:
        calls = _first_round(subject or Subject(), intent, ask, question)
        done = {c[0] for c in calls}
        key, service = (subject or {}).get("key"), (subject or {}).get("service")
        for name in extra or []:  # the model's picks: read-only tools, rule-made arguments
            if name in _READ_ONLY_FIRST_ROUND and name not in done and (key or service):
                calls += [c for c in _first_round(subject or Subject(), "investigate", ask,
                                                  question) if c[0] == name]
        return calls
    if intent == "investigate" and (subject or {}).get("key"):
        trace = _slowest_trace(pack)
        if trace:
            return [("trace_breakdown", {"trace_id": trace,
                                         "key": (subject or {}).get("key")})]
    return []


def validate_call(tool: Any, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Keep the arguments the tool declares, drop None, and validate them against its Args."""
    fields = tool.Args.model_fields
    kept = {k: v for k, v in args.items() if k in fields and v is not None}
    try:
        tool.Args.model_validate(kept)
    except ValidationError as exc:
        first = exc.errors()[0]
        return None, f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return kept, None
