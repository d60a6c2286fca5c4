"""Typed facts read out of the evidence pack's structured data, for rules and the checker.

Tools return JSON-able `data`; key names differ a little between backends, so each
fact is looked up under a few aliases. Every fact remembers the evidence id it
came from, so an answer can cite it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.evidence import EvidenceItem, EvidencePack

__all__ = ["Child", "Facts", "metric_anomaly", "read_facts"]


@dataclass(slots=True)
class Child:
    """One span on the slow trace's critical path, under the subject span."""

    key: str
    duration_ms: float
    share: float | None  # of the parent's duration, 0..1
    baseline_p99_ms: float | None
    error: bool
    attributes: dict[str, Any]
    evidence: str
    depth: int = 1  # 1: called by the subject span; 2: by one of its children; ...


@dataclass(slots=True)
class Metric:
    value: float
    baseline: float | None
    evidence: str


@dataclass(slots=True)
class Facts:
    key: str | None = None
    service: str | None = None
    operation: str | None = None
    anomaly_id: int | None = None
    signal: str | None = None  # what moved: latency | errors | cpu | memory | request_rate
    observed_ms: float | None = None
    expected_ms: float | None = None
    spread_ms: float | None = None
    deviation: float | None = None
    baseline_p99_ms: float | None = None
    current_p50_ms: float | None = None  # observed around the time asked about
    current_p99_ms: float | None = None
    current_count: int | None = None
    current_error_pct: float | None = None
    baseline_p50_ms: float | None = None
    related: list[dict[str, Any]] = field(default_factory=list)  # other anomalies, same service
    subject_attrs: dict[str, Any] = field(default_factory=dict)
    error_messages: list[str] = field(default_factory=list)  # status messages on the slow trace
    trace_id: str | None = None
    trace_ms: float | None = None
    self_ms: float | None = None
    children: list[Child] = field(default_factory=list)
    metrics: dict[str, Metric] = field(default_factory=dict)  # cpu, memory, errors, rate, p99
    key_errors: Metric | None = None  # error rate of the subject key, percent
    similar: list[dict[str, Any]] = field(default_factory=list)
    deploy: str | None = None
    callees: list[str] = field(default_factory=list)
    trace_links: list[str] = field(default_factory=list)
    cite: dict[str, str] = field(default_factory=dict)  # fact name -> evidence id

    def metric(self, name: str) -> float | None:
        m = self.metrics.get(name)
        return m.value if m else None


def _get(d: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return None


def _num(d: dict[str, Any], *names: str) -> float | None:
    v = _get(d, *names)
    try:
        return float(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def read_facts(pack: EvidencePack, subject_key: str | None = None) -> Facts:
    """Everything the rules need, from whichever tools ran."""
    f = Facts(key=subject_key)
    if subject_key:
        f.service, _, f.operation = subject_key.partition(":")
    readers = {"anomalies": _anomaly, "incident": _anomaly, "baseline": _baseline,
               "slow_traces": _slow_traces, "trace_breakdown": _breakdown, "metrics": _metrics,
               "similar_incidents": _similar, "service_graph": _graph}
    for item in pack.items:
        if item.status == "ok" and item.tool in readers:
            readers[item.tool](f, item)
    return f


def _is_latency(row: dict[str, Any]) -> bool:
    """A span key's latency anomaly (ms): not a metric series, not an error-ratio signal."""
    base = row.get("baseline") or {}
    unit = base.get("unit", "ms") if isinstance(base, dict) else "ms"
    return "{" not in str(row.get("key", "")) and unit == "ms" and row.get("signal") != "errors"


def _anomaly(f: Facts, item: EvidenceItem) -> None:
    rows = _get(item.data, "anomalies") or ([item.data["anomaly"]] if "anomaly" in item.data
                                            else [])
    rows = [r for r in rows if isinstance(r, dict)]
    if not rows:
        return
    # Only the subject's own anomaly speaks for the subject; the others are related facts.
    a = next((r for r in rows if r.get("key") == f.key), rows[0] if f.key is None else None)
    f.related = [r for r in rows if r is not a and r.get("key")]
    if a is None:
        return
    f.key = f.key or a.get("key")
    if f.key:
        f.service, _, f.operation = f.key.partition(":")
    f.anomaly_id = _get(a, "id", "anomaly_id")
    f.signal = _get(a, "signal") or f.signal
    f.cite["anomaly"] = item.id
    if isinstance(a.get("deploy"), str):
        f.deploy, f.cite["deploy"] = a["deploy"], item.id
    if not _is_latency(a):
        return
    f.observed_ms = _num(a, "observed_ms", "observed")
    base = _get(a, "baseline") or {}
    f.baseline_p99_ms = _num(a, "baseline_p99_ms")
    f.expected_ms = _num(base, "mean_ms", "expected_ms", "p50_ms", "p50")
    f.spread_ms = _num(base, "std_ms", "stddev_ms", "spread_ms")
    f.baseline_p99_ms = f.baseline_p99_ms or _num(base, "p99_ms", "p99")
    f.deviation = _num(a, "score", "peak_score", "deviation")
    f.baseline_p50_ms = _num(base, "p50_ms", "p50")
    f.current_p50_ms = _num(_get(a, "current") or {}, "p50_ms", "p50")


def metric_anomaly(f: Facts, metric: str) -> dict[str, Any] | None:
    """An open anomaly the detector raised on the subject service's `metric` series
    (cpu, memory, rate), when the anomalies tool listed one."""
    words = {"cpu": "cpu", "memory": "memory", "rate": "request_rate"}[metric]
    for r in f.related:
        key = str(r.get("key", ""))
        if "{" in key and words in key.split("{", 1)[0] and r.get("state", "open") == "open" \
                and (f.service is None or r.get("service") == f.service):
            return r
    return None


def _baseline(f: Facts, item: EvidenceItem) -> None:
    d = item.data
    seen = d.get("observed")
    if isinstance(seen, dict) and seen.get("count"):  # tools/detection/baseline.py
        f.current_p50_ms = _num(seen, "p50_ms") or f.current_p50_ms
        f.current_p99_ms = _num(seen, "p99_ms")
        f.current_count = int(seen["count"])
        f.current_error_pct = _num(seen, "error_rate_pct")
        f.cite["observed"] = item.id
    if f.expected_ms is None:
        f.expected_ms = _num(d, "mean_ms", "expected_ms", "p50_ms", "p50")
    if f.spread_ms is None:
        f.spread_ms = _num(d, "std_ms", "stddev_ms")
    f.baseline_p99_ms = _num(d, "p99_ms", "p99") or f.baseline_p99_ms
    # Observed figures come from this tool: compare them with its own baseline.
    f.baseline_p50_ms = (_num(d, "p50_ms", "p50") if "observed" in d else None) or \
        f.baseline_p50_ms or _num(d, "p50_ms", "p50")
    f.cite["baseline"] = item.id


def _slow_traces(f: Facts, item: EvidenceItem) -> None:
    traces = _get(item.data, "traces") or []
    if traces:
        f.trace_links = [str(t["link"]) for t in traces if isinstance(t, dict) and t.get("link")]
        f.cite["slow_traces"] = item.id
        if f.observed_ms is None:
            f.observed_ms = _num(traces[0], "duration_ms")


def _breakdown(f: Facts, item: EvidenceItem) -> None:
    d = item.data
    f.trace_id = _get(d, "trace_id")
    if isinstance(d.get("link"), str) and d["link"] not in f.trace_links:
        f.trace_links.insert(0, d["link"])
    if "path" in d:
        _critical_path(f, item)
    else:
        _call_tree(f, item)
    marker = _get(d, "deploy", "version_change")
    if isinstance(marker, str) and marker:
        f.deploy, f.cite["deploy"] = marker, item.id
    f.cite["breakdown"] = item.id


def _critical_path(f: Facts, item: EvidenceItem) -> None:
    """tools/traces/breakdown.py: `focus` and its critical `path` (depth 0 is the focus)."""
    focus = item.data.get("focus") or {}
    f.trace_ms = _num(focus, "duration_ms")
    for p in item.data.get("path") or []:
        if not isinstance(p, dict) or not p.get("key"):
            continue
        depth = int(p.get("depth") or 0)
        if depth == 0:
            f.self_ms = _num(p, "self_ms")
            f.subject_attrs = dict(p.get("attributes") or {})
            if p.get("error") and p.get("status_message"):
                f.error_messages.append(str(p["status_message"]))
            continue
        share = _num(p, "share_of_parent_pct") if depth == 1 else _num(p, "share_of_focus_pct")
        base = p.get("baseline") or {}
        f.children.append(Child(str(p["key"]), _num(p, "duration_ms") or 0.0,
                                share / 100 if share is not None else None,
                                _num(base, "p99_ms") if isinstance(base, dict) else None,
                                bool(p.get("error")), dict(p.get("attributes") or {}), item.id,
                                depth))
        if p.get("error") and p.get("status_message"):
            f.error_messages.append(str(p["status_message"]))


def _call_tree(f: Facts, item: EvidenceItem) -> None:
    """The simulated eval's shape: `root` and every span below it as `children`."""
    d = item.data
    root = _get(d, "root") or {}
    f.trace_ms = _num(root, "duration_ms")
    f.self_ms = _num(root, "self_ms")
    f.subject_attrs = dict(root.get("attributes") or {})
    f.error_messages = [str(x.get("status")) for x in [root, *(_get(d, "children") or [])]
                        if isinstance(x, dict) and x.get("status")]
    for c in _get(d, "children", "critical_path") or []:
        dur = _num(c, "duration_ms")
        if dur is None or not c.get("key"):
            continue
        f.children.append(Child(str(c["key"]), dur, _num(c, "share"),
                                _num(c, "baseline_p99_ms"), bool(c.get("error")),
                                dict(c.get("attributes") or {}), item.id,
                                int(c.get("depth") or 1)))


_METRIC_NAMES = {"cpu": ("cpu_percent", "cpu"), "memory": ("memory_mb", "memory"),
                 "errors": ("error_rate_percent", "error_rate_pct"),
                 "rate": ("request_rate", "rps"), "p99": ("p99_ms",)}


_REAL_METRICS = {"cpu": "cpu_percent", "memory": "memory_mb", "errors": "error_rate_pct",
                 "rate": "request_rate_rps", "p99": "p99_ms"}


def _metrics(f: Facts, item: EvidenceItem) -> None:
    real = item.data.get("metrics")
    if isinstance(real, dict):  # tools/metrics/tool.py: {name: {"at", "mean_before", ...}}
        for name, field_name in _REAL_METRICS.items():
            m = real.get(field_name)
            if isinstance(m, dict) and _num(m, "at") is not None:
                f.metrics[name] = Metric(float(m["at"]), _num(m, "mean_before"), item.id)
        f.cite["metrics"] = item.id
        return
    cur = _get(item.data, "current") or item.data
    base = _get(item.data, "baseline") or {}
    for name, aliases in _METRIC_NAMES.items():
        value = _num(cur, *aliases)
        if value is None:
            continue
        f.metrics[name] = Metric(value, _num(base, *aliases), item.id)
    key_err = _get(item.data, "key_error_rate_percent")
    if key_err is not None:
        f.key_errors = Metric(float(key_err), _num(item.data, "key_error_rate_baseline_percent"),
                              item.id)
    f.cite["metrics"] = item.id


def _similar(f: Facts, item: EvidenceItem) -> None:
    f.similar = [m for m in (_get(item.data, "matches", "incidents") or []) if isinstance(m, dict)]
    f.cite["similar"] = item.id


def _graph(f: Facts, item: EvidenceItem) -> None:
    f.callees = [str(c.get("service") if isinstance(c, dict) else c)
                 for c in _get(item.data, "callees") or []]
    f.cite["graph"] = item.id
