"""Tool outputs for a seeded simulator incident, computed from the simulator's own spans.

The eval needs the same incident every time and the answer key with it. This
module runs the simulator over a quiet hour and the incident window and writes
what each tool reports (numbers as the tools print them) as `ToolResult`s,
so the agent is scored on real simulated telemetry without a running service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.simulator import (
    MINUTE_NS,
    SCENARIOS,
    GroundTruth,
    Profile,
    Scenario,
    Simulator,
    SpanColumns,
    make_incident,
)
from bot.simulator.columns import SpanStatus
from bot.simulator.metrics import CPU_PERCENT, ERROR_RATE, MEMORY_MB, P99_MS, REQUEST_RATE

__all__ = ["SimulatedIncident", "simulate"]

T0_NS = 1_717_408_800 * 10**9  # 2024-06-03 10:00 UTC, a Monday morning
_HISTORY_MIN = 60
_WINDOW_MIN = 10


@dataclass(slots=True)
class SimulatedIncident:
    truth: GroundTruth
    subject_key: str
    results: dict[str, dict[str, Any]]  # tool -> {"status", "summary", "data", "source"}


def _window(truth: GroundTruth) -> tuple[int, int]:
    """Where the incident shows best: the end of a ramp, the start of a decay, else early on."""
    length = (truth.end_ns - truth.start_ns) // MINUTE_NS
    minutes = min(_WINDOW_MIN, max(1, length - 2))
    if truth.spec.profile is Profile.RAMP:
        return truth.end_ns - minutes * MINUTE_NS, minutes
    if truth.spec.profile is Profile.DECAY:
        return truth.start_ns, min(minutes, 4)
    return truth.start_ns + 2 * MINUTE_NS, minutes


def _ms(ns: np.ndarray) -> np.ndarray:
    return ns.astype(np.float64) / 1e6


def _stats(d: np.ndarray) -> dict[str, float]:
    if d.size == 0:
        return {}
    p50, p95, p99 = np.percentile(d, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2), "mean_ms": round(float(d.mean()), 2),
            "std_ms": round(float(d.std()), 2), "count": int(d.size)}


def _key_rows(cols: SpanColumns, key: str) -> np.ndarray:
    idx = int(np.nonzero(cols.table.keys == key)[0][0])
    return np.nonzero(cols.key_idx == idx)[0]


def _metric_means(sim: Simulator, service: str, start_ns: int, minutes: int) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for chunk in sim.replay(start_ns, minutes * MINUTE_NS, minutes * MINUTE_NS):
        for m in chunk.metrics:
            if m.labels.get("service") == service:
                sums.setdefault(m.name, []).append(m.value)
    mean = {k: float(np.mean(v)) for k, v in sums.items()}
    return {"cpu_percent": round(mean.get(CPU_PERCENT, 0.0), 1),
            "memory_mb": round(mean.get(MEMORY_MB, 0.0)),
            "error_rate_percent": round(100 * mean.get(ERROR_RATE, 0.0), 2),
            "request_rate": round(mean.get(REQUEST_RATE, 0.0), 1),
            "p99_ms": round(mean.get(P99_MS, 0.0), 1)}


def simulate(scenario: str, seed: int = 1, magnitude: float = 1.0,
             subject_key: str | None = None) -> SimulatedIncident:
    """Simulate one incident and compute what each read-only tool would report."""
    truth = make_incident(Scenario(scenario), T0_NS, magnitude=magnitude)
    key = subject_key or truth.root_operation
    sim = Simulator(seed, incidents=[truth])
    hist_start = truth.start_ns - _HISTORY_MIN * MINUTE_NS
    history = sim.generate(hist_start, _HISTORY_MIN * MINUTE_NS)
    w_start, w_min = _window(truth)
    window = sim.generate(w_start, w_min * MINUTE_NS)
    service = key.split(":", 1)[0]
    base_rows, cur_rows = _key_rows(history, key), _key_rows(window, key)
    base = _stats(_ms(history.duration_ns[base_rows]))
    cur = _stats(_ms(window.duration_ns[cur_rows]))
    err_base = 100 * float(history.error[base_rows].mean()) if base_rows.size else 0.0
    err_cur = 100 * float(window.error[cur_rows].mean()) if cur_rows.size else 0.0
    deviation = (cur["p99_ms"] - base["mean_ms"]) / max(base["std_ms"], 1e-3)
    slow = cur_rows[np.argsort(-window.duration_ns[cur_rows])[:3]]
    trace_ids = window.trace_ids()
    results: dict[str, dict[str, Any]] = {}
    anomaly = {"id": 101, "uid": f"{key}@{w_start}", "key": key, "service": service,
               "operation": key.split(":", 1)[1], "state": "open",
               "signal": truth.spec.signals[0].value, "observed_ms": cur["p99_ms"],
               "score": round(deviation, 2), "severity": 2, "baseline": base,
               "current": {"p50_ms": cur["p50_ms"], "p99_ms": cur["p99_ms"]},
               "exemplar_trace_ids": [trace_ids[int(r)] for r in slow]}
    results["anomalies"] = _ok(
        f"1 open anomaly: {key} p99 {cur['p99_ms']} ms (median {cur['p50_ms']} ms) against "
        f"baseline p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms; score {anomaly['score']}σ; "
        f"errors {err_cur:.2f}% (baseline {err_base:.2f}%)", {"anomalies": [anomaly]}, "store")
    results["baseline"] = _ok(
        f"{key} baseline over the previous hour: p50 {base['p50_ms']} ms, p95 {base['p95_ms']} "
        f"ms, p99 {base['p99_ms']} ms, mean {base['mean_ms']} ms ± {base['std_ms']} ms, "
        f"{base['count']} samples, warm", {"key": key, **base, "warm": True}, "store")
    traces = [{"trace_id": trace_ids[int(r)], "duration_ms": round(float(_ms(
        window.duration_ns[[r]])[0]), 2), "error": bool(window.error[r])} for r in slow]
    results["slow_traces"] = _ok(
        f"slowest {key} spans: " + "; ".join(f"trace {t['trace_id']} {t['duration_ms']} ms"
                                               + (" (error)" if t["error"] else "")
                                               for t in traces),
        {"key": key, "traces": traces}, "store")
    results["trace_breakdown"] = _breakdown(window, history, int(slow[0]), trace_ids)
    cur_m = _metric_means(sim, service, w_start, w_min)
    base_m = _metric_means(sim, service, hist_start, _HISTORY_MIN)
    results["metrics"] = _ok(
        f"{service} now vs the hour before: CPU {cur_m['cpu_percent']}% (was "
        f"{base_m['cpu_percent']}%), memory {cur_m['memory_mb']} MB (was {base_m['memory_mb']} "
        f"MB), error rate {cur_m['error_rate_percent']}% (was {base_m['error_rate_percent']}%), "
        f"requests {cur_m['request_rate']}/s (was {base_m['request_rate']}/s); {key} errors "
        f"{err_cur:.2f}% (was {err_base:.2f}%)",
        {"service": service, "current": cur_m, "baseline": base_m,
         "key_error_rate_percent": round(err_cur, 2),
         "key_error_rate_baseline_percent": round(err_base, 2)}, "stand-in")
    results["similar_incidents"] = _ok("no similar past incidents with feedback",
                                       {"matches": []}, "store", status="empty")
    callees = list(sim.topology.op(key).children)
    callers = list(sim.topology.ancestors(key))
    results["service_graph"] = _ok(
        f"{key} is called by {', '.join(callers) or 'nobody'}; calls "
        f"{', '.join(callees) or 'nothing'}", {"service": service, "callers": callers,
                                               "callees": callees}, "topology")
    return SimulatedIncident(truth, key, results)


def _ok(summary: str, data: dict[str, Any], source: str, status: str = "ok") -> dict[str, Any]:
    return {"status": status, "summary": summary, "data": data, "source": source}


def _descendants(window: SpanColumns, row: int, depth: int = 1
                 ) -> list[tuple[int, int]]:
    """(row, depth) of every span under `row` in its trace, children before grandchildren."""
    same_trace = window.trace_row == window.trace_row[row]
    kids = np.nonzero((window.parent_id == window.span_id[row]) & same_trace)[0]
    out: list[tuple[int, int]] = []
    for k in kids[np.argsort(-window.duration_ns[kids])]:
        out.append((int(k), depth))
        if depth < 3:
            out += _descendants(window, int(k), depth + 1)
    return out


def _breakdown(window: SpanColumns, history: SpanColumns, row: int,
               trace_ids: list[str]) -> dict[str, Any]:
    """The slow span's call tree below it, each span with its share and its own baseline p99."""
    total = float(_ms(window.duration_ns[[row]])[0])
    key = str(window.table.keys[window.key_idx[row]])
    children: list[dict[str, Any]] = []
    parts: list[str] = []
    for k, depth in _descendants(window, row):
        ckey = str(window.table.keys[window.key_idx[k]])
        dur = float(_ms(window.duration_ns[[k]])[0])
        p99 = _stats(_ms(history.duration_ns[_key_rows(history, ckey)])).get("p99_ms")
        status = SpanStatus(int(window.status[k]))
        children.append({"key": ckey, "depth": depth, "duration_ms": round(dur, 2),
                         "share": round(dur / total, 3) if total else 0.0,
                         "baseline_p99_ms": p99, "error": status is not SpanStatus.OK,
                         "status": status.message})
        parts.append(f"{'>' * depth} {ckey} {dur:.2f} ms = {100 * dur / total:.1f}% (its "
                     f"baseline p99 {p99} ms)"
                     + (f" [{status.message}]" if status is not SpanStatus.OK else ""))
    direct = sum(c["duration_ms"] for c in children if c["depth"] == 1)
    self_ms = max(0.0, total - direct)
    status = SpanStatus(int(window.status[row]))
    attrs = dict(window.table.attributes[int(window.key_idx[row])])
    summary = (f"trace {trace_ids[row]}: {key} {total:.2f} ms, self time {self_ms:.2f} ms"
               + (f" [{status.message}]" if status is not SpanStatus.OK else "")
               + ("; below it: " + "; ".join(parts) if parts else "; no child spans"))
    data = {"trace_id": trace_ids[row], "root": {"key": key, "duration_ms": round(total, 2),
                                                  "self_ms": round(self_ms, 2),
                                                  "attributes": attrs, "status": status.message},
            "children": children}
    return _ok(summary, data, "store")


def scenario_families() -> list[str]:
    return [s.value for s in SCENARIOS]
