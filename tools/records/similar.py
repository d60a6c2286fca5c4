"""`similar_incidents`: past anomalies like this one (or like a question), with what people said.

Each match carries its feedback (verdicts and reasons) and any resolution note
from its details or its incident's, so the agent can say "last time this was a
planned load test" with the record to back it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field, model_validator

from bot.store.records import AnomalyRecord, FeedbackRecord
from detectors.buckets import DAY_NS as _DAY_NS
from detectors.buckets import HOUR_NS as _HOUR_NS
from tools._format import fmt_time, name, quoted
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.records._describe import anomaly_facts, baseline_p99
from tools.records.incident import note_of
from tools.records.similarity import Features, feature_similarity, text_similarity, tokens
from tools.traces.critical_path import critical_spans
from tools.traces.source import focus_span

__all__ = ["SimilarIncidentsTool", "dominant_child"]

_CANDIDATES = 500  # newest anomalies compared
_TRACE_LOOKUPS = 200  # exemplar traces read to find dominant children
_MIN_SCORE = 0.2


class SimilarArgs(ToolArgs):
    anomaly_id: int | None = Field(None, ge=1, le=10**12, description="compare with this anomaly")
    text: str | None = Field(None, min_length=2, max_length=300,
                             description="or: free-text description to match")
    limit: int = Field(3, ge=1, le=5)

    @model_validator(mode="after")
    def _one_subject(self) -> SimilarArgs:
        if (self.anomaly_id is None) == (self.text is None):
            raise ValueError("give exactly one of anomaly_id or text")
        return self


async def dominant_child(store: Any, a: AnomalyRecord) -> str | None:
    """Key of the child that dominated the anomaly's first exemplar trace, or None."""
    stored = a.details.get("dominant_child")
    if isinstance(stored, str):
        return stored
    if not a.exemplar_trace_ids:
        return None
    spans = await store.get_trace(a.exemplar_trace_ids[0])
    focus = focus_span(spans, a.key)
    if focus is None:
        return None
    steps = [s for s in critical_spans(spans, focus) if s.span.span_id != focus.span_id]
    top = max(steps, key=lambda s: s.self_ns, default=None)
    if top is None or 2 * top.self_ns < focus.duration_ns:
        return None  # nothing took half the time: no single-child signature
    return top.span.key


async def _features(store: Any, a: AnomalyRecord, lookups: list[int]) -> Features:
    dominant = None
    if lookups[0] > 0:
        lookups[0] -= 1
        dominant = await dominant_child(store, a)
    p99 = baseline_p99(a)
    ratio = (math.log(a.observed / p99) if a.observed and p99 and a.observed > 0 and p99 > 0
             else math.nan)
    words = " ".join([a.key, dominant or "", str(a.details.get("scenario", "")),
                      note_of(a.details) or ""])
    return Features(a.key, a.service, dominant, a.peak_severity,
                    (a.started_ns % _DAY_NS) / _HOUR_NS,
                    ratio, tokens(words))


def _why(q: Features | None, c: Features) -> list[str]:
    if q is None:
        return []
    out = ["same key" if c.key == q.key else "same service" if c.service == q.service else ""]
    if c.dominant and c.dominant == q.dominant:
        out.append(f"same dominant child {name(c.dominant)}")
    return [w for w in out if w]


def _feedback_text(fb: list[FeedbackRecord]) -> str:
    if not fb:
        return "no feedback"
    parts = [f"{f.verdict}" + (f" {quoted(f.reason, 60)}" if f.reason else "") for f in fb[:2]]
    return "feedback: " + ", ".join(parts)


class SimilarIncidentsTool:
    name: ClassVar[str] = "similar_incidents"
    description: ClassVar[str] = (
        "Past anomalies most like a given anomaly (same key or service, same dominant child "
        "span, severity, time of day) or like a free-text description, with the feedback "
        "people gave and resolution notes.")
    Args: ClassVar[type[BaseModel]] = SimilarArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        query = None
        if args.anomaly_id is not None:
            query = await ctx.store.get_anomaly(args.anomaly_id)
            if query is None:
                return ToolResult(self.name, ToolStatus.ERROR, source="store", error=(
                    f"no anomaly #{args.anomaly_id}; find its number with the anomalies tool"))
        until = query.started_ns - 1 if query else ctx.now_ns
        pool = [a for a in await ctx.store.list_anomalies(until_ns=until, limit=_CANDIDATES)
                if query is None or (a.id != query.id and (a.incident_id is None
                                                           or a.incident_id != query.incident_id))]
        lookups = [_TRACE_LOOKUPS]
        q = await _features(ctx.store, query, lookups) if query else None
        feats = [await _features(ctx.store, a, lookups) for a in pool]
        scores = (feature_similarity(q, feats) if q else text_similarity(tokens(args.text), feats))
        order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= _MIN_SCORE]
        chosen = order[: args.limit]
        subject = (f"anomaly #{query.id} ({name(query.key)}"
                   + (f", dominated by {name(q.dominant)})" if q and q.dominant else ")")
                   if query else f"text {quoted(args.text, 80)}")
        if not chosen:
            return ToolResult(self.name, ToolStatus.EMPTY, source="store", data={"matches": []},
                              summary=f"No past anomalies similar to {subject} "
                                      f"among {len(pool)} compared.")
        feedback = await ctx.store.feedback_for([pool[i].id for i in chosen])
        matches, parts = [], []
        for i in chosen:
            a, f = pool[i], feats[i]
            note = note_of(a.details)
            if note is None and a.incident_id is not None:
                inc = await ctx.store.get_incident(a.incident_id)
                note = note_of(inc.details) if inc else None
            fb = feedback[a.id]
            matches.append({**anomaly_facts(a), "similarity": round(float(scores[i]), 2),
                            "dominant_child": f.dominant, "why": _why(q, f), "note": note,
                            "feedback": [{"verdict": x.verdict, "reason": x.reason,
                                          "source": x.source} for x in fb]})
            why = ", ".join(_why(q, f))
            parts.append(f"#{a.id} {name(a.key)} {fmt_time(a.started_ns)} SEV{a.peak_severity}, "
                         f"similarity {scores[i]:.2f}" + (f" ({why})" if why else "")
                         + f", {_feedback_text(fb)}"
                         + (f", note {quoted(note, 80)}" if note else ""))
        summary = (f"{len(chosen)} past anomalies similar to {subject}: " + "; ".join(parts)
                   + ".")
        return ToolResult(self.name, ToolStatus.OK, summary,
                          {"subject": args.anomaly_id or args.text, "compared": len(pool),
                           "matches": matches}, source="store")
