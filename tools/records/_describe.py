"""How an anomaly record is told in a summary and in data, the same way in every tool."""

from __future__ import annotations

from typing import Any

from bot.store.records import AnomalyRecord
from tools._format import fmt_ms, fmt_time, iso_time, name

__all__ = ["anomaly_facts", "anomaly_line", "baseline_p99"]


def baseline_p99(a: AnomalyRecord) -> float | None:
    """The p99 of the baseline snapshot, whichever name the detector used for it."""
    for field in ("p99_ms", "p99"):
        value = a.baseline.get(field)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def anomaly_facts(a: AnomalyRecord) -> dict[str, Any]:
    return {
        "id": a.id, "uid": a.uid, "key": a.key, "service": a.service, "state": a.state,
        "severity": f"SEV{a.peak_severity}", "peak_score": round(a.peak_score, 2),
        "started": iso_time(a.started_ns),
        "ended": iso_time(a.ended_ns) if a.ended_ns is not None else None,
        "observed_ms": round(a.observed, 2) if a.observed is not None else None,
        "baseline_p99_ms": (round(p99, 2) if (p99 := baseline_p99(a)) is not None else None),
        "baseline_bucket": a.baseline.get("bucket") or a.baseline.get("bucket_type"),
        "baseline": dict(a.baseline),  # the detector's snapshot, as it wrote it
        "percentile": a.percentile, "incident_id": a.incident_id,
        "exemplar_trace_ids": a.exemplar_trace_ids[:3],
    }


def anomaly_line(a: AnomalyRecord) -> str:
    """'#12 kx-exchange:pg-pool.connect SEV2 open since 2024-05-01 11:40:00Z, observed
    286.94ms vs baseline p99 3.10ms, score 26.88'."""
    when = f"open since {fmt_time(a.started_ns)}"
    if a.state != "open":
        lasted = (f", lasted {(a.ended_ns - a.started_ns) / 60e9:.0f}min"
                  if a.ended_ns is not None else "")
        when = f"resolved, started {fmt_time(a.started_ns)}{lasted}"
    text = f"#{a.id} {name(a.key)} SEV{a.peak_severity} {when}"
    if a.observed is not None:
        p99 = baseline_p99(a)
        # Span keys are in ms; a metric series (name{labels}) is in its own unit.
        unit = fmt_ms if "{" not in a.key else (lambda v: f"{v:.2f}")
        text += f", observed {unit(a.observed)}"
        text += f" vs baseline p99 {unit(p99)}" if p99 is not None else ""
    text += f", score {a.peak_score:.2f}"
    if a.incident_id is not None:
        text += f", incident #{a.incident_id}"
    return text
