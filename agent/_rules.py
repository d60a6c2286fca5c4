"""Evidence patterns the analyst knows, each a small function from facts to a finding.

A rule names the scenario family it points at (the simulator's incident families),
how strongly the evidence supports it, and a cause with and without numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.facts import Child, Facts, metric_anomaly
from agent.verify import metric_level

__all__ = ["Finding", "findings"]


@dataclass(slots=True)
class Finding:
    rule: str
    family: str
    strength: float  # 0..1
    cause: str
    plain_cause: str
    evidence: str
    recommendations: list[str] = field(default_factory=list)


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _dominant(f: Facts) -> tuple[Child, float] | None:
    direct = [c for c in f.children if c.depth == 1]
    if not direct:
        return None
    c = max(direct, key=lambda c: c.duration_ms)
    share = c.share if c.share is not None else (c.duration_ms / f.trace_ms if f.trace_ms else 0)
    return c, share


def _self_share(f: Facts) -> float:
    if f.self_ms is not None and f.trace_ms:
        return f.self_ms / f.trace_ms
    return 1.0 if not f.children else 0.0


def _ratio(cur: float | None, base: float | None) -> float | None:
    return cur / base if cur is not None and base else None


def _p99_ratio(f: Facts) -> float | None:
    """Observed p99 around the time asked about (else the anomaly's figure) over the baseline's."""
    return _ratio(f.current_p99_ms if f.current_p99_ms is not None else f.observed_ms,
                  f.baseline_p99_ms)


def _tail_grew(f: Facts) -> bool:
    """The slow tail moved far more than the median: some calls stall, most do not."""
    p50, p99 = _ratio(f.current_p50_ms, f.baseline_p50_ms), _p99_ratio(f)
    return p50 is not None and p99 is not None and p99 >= 3.0 and p99 >= 2.0 * p50


def _op(f: Facts) -> str:
    return (f.operation or "").lower()


def _is_db(f: Facts) -> bool:
    return "db.system" in f.subject_attrs or any(w in _op(f) for w in ("query", "sql", "pg."))


def _is_messaging(f: Facts) -> bool:
    return "messaging.system" in f.subject_attrs or any(
        w in _op(f) for w in ("publish", "consume", "queue", "match"))


def _metric_text(f: Facts, name: str, unit: str) -> str:
    m = f.metrics[name]
    base = f" (baseline {_n(m.baseline)}{unit})" if m.baseline is not None else ""
    return f"{_n(m.value)}{unit}{base}"


def _memory(f: Facts) -> Finding | None:
    if metric_level(f, "memory") != "high":
        return None
    m = f.metrics.get("memory")
    alarm = metric_anomaly(f, "memory")
    if m is not None:
        level = _metric_text(f, "memory", " MB")
    else:
        level = f"{_n(float((alarm or {}).get('observed_ms') or 0))} MB"
    cite = m.evidence if m is not None else f.cite.get("anomaly", "E1")
    alarm_text = " (the detector has an open memory anomaly on it)" if alarm else ""
    return Finding("memory growth", "memory_leak", 0.9,
                   f"memory of {f.service} is high at {level}{alarm_text}: a leak "
                   "or an unbounded cache, with more GC work as it grows",
                   f"memory of {f.service} is high and growing: a leak or an unbounded cache",
                   cite, ["Take a heap profile of the service and compare it with one "
                                "from before the growth.", "Restart one instance as a stopgap "
                                "and watch whether memory climbs again."])


def _errors_high(f: Facts) -> bool:
    return metric_level(f, "errors") == "high"


def _errors_cite(f: Facts) -> str:
    m = f.key_errors or f.metrics.get("errors")
    return m.evidence if m else f.cite.get("metrics", "E1")


def _errors_text(f: Facts) -> str:
    m = f.key_errors or f.metrics["errors"]
    base = f" (baseline {_n(m.baseline)}%)" if m.baseline is not None else ""
    return f"{_n(m.value)}%{base}"


def _retry_storm(f: Facts) -> Finding | None:
    rate = f.metrics.get("rate")
    surge = _ratio(rate.value if rate else None, rate.baseline if rate else None)
    rate_alarm = metric_anomaly(f, "rate") is not None
    if rate is None or not _errors_high(f) or not (rate_alarm or (surge or 0.0) >= 1.5):
        return None
    return Finding("errors with a request surge", "retry_storm", 0.9,
                   f"failures at {_errors_text(f)} while requests rose to "
                   f"{_metric_text(f, 'rate', ' req/s')}: clients retry failed calls without "
                   "backoff", "failures together with a request surge: clients retry without "
                   "backoff", _errors_cite(f),
                   ["Check client retry policies (backoff, jitter, retry budgets).",
                    "Find the first error that started the retries."])


def _cascading(f: Facts) -> Finding | None:
    slow = max([f.observed_ms or 0.0, f.trace_ms or 0.0])
    timeouts = any(w in m for m in f.error_messages for w in ("deadline", "timeout", "cancel"))
    if not _errors_high(f) or not (timeouts or slow >= 1000.0):
        return None
    return Finding("hang with timeouts", "cascading_timeout", 0.85,
                   f"{f.key} hangs ({_n(slow)} ms) and callers give up: errors at "
                   f"{_errors_text(f)} are timeouts and cancellations moving up the call chain",
                   f"{f.key} hangs and callers time out in turn", _errors_cite(f),
                   ["Check the health of the database or service behind the hanging call.",
                    "Align timeouts so the innermost call gives up first."])


def _error_burst(f: Facts) -> Finding | None:
    m = f.key_errors or f.metrics.get("errors")
    if not _errors_high(f) or m is None or m.value < 5.0:  # a burst, not a side effect
        return None
    return Finding("error burst", "error_burst", 0.8,
                   f"{f.key} fails at {_errors_text(f)}: a burst of errors, not a slowdown",
                   f"{f.key} fails far more often than usual", _errors_cite(f),
                   ["Read the error messages of the failing spans for a common input.",
                    "Check for a poisoned message or bad payload and skip or quarantine it."])


def _pool(f: Facts) -> Finding | None:
    d = _dominant(f)
    if d is None or d[1] < 0.4 or "pool" not in d[0].key or not any(
            w in d[0].key for w in ("wait", "acquire")):
        return None
    c, share = d
    return Finding("pool wait dominates", "connection_pool_exhaustion", 0.9,
                   f"{c.key} takes {_n(c.duration_ms)} ms, {_n(100 * share)}% of {f.key}: "
                   "callers queue for a free connection, the pool is exhausted",
                   "waiting for a pool connection dominates: the pool is exhausted", c.evidence,
                   ["Compare pool size with concurrent demand; look for connections held "
                    "during slow work or leaked.", "Raise the pool size only after checking "
                    "the database can take more connections."])


def _dns(f: Facts) -> Finding | None:
    d = _dominant(f)
    key = d[0].key if d and d[1] >= 0.4 else (f.key or "")
    if "dns" not in key.lower():
        return None
    cite = d[0].evidence if d else f.cite.get("anomaly", "E1")
    return Finding("DNS lookups slow", "dns_cache_miss", 0.85,
                   f"{key} dominates: lookups go to the upstream resolver (cache misses)",
                   f"{key} dominates: lookups go to the upstream resolver", cite,
                   ["Check the resolver cache (flushed, TTLs, size) and upstream resolver "
                    "latency.", "Consider a local caching resolver for the service."])


def _downstream(f: Facts) -> Finding | None:
    d = _dominant(f)
    if d is None or d[1] < 0.5 or d[0].key.split(":")[0] == f.service:
        return None
    c, share = d
    base = f", its baseline p99 is {_n(c.baseline_p99_ms)} ms" if c.baseline_p99_ms else ""
    return Finding("slow dependency", "slow_downstream_dependency", 0.85,
                   f"{c.key} takes {_n(c.duration_ms)} ms = {_n(100 * share)}% of the trace"
                   f"{base}: {f.service} waits on a slow dependency",
                   f"{c.key} dominates the trace: {f.service} waits on a slow dependency",
                   c.evidence, [f"Investigate {c.key} itself (its own anomaly and traces).",
                                "Check timeouts and fallbacks on the calling side."])


def _connect(f: Facts) -> Finding | None:
    d = _dominant(f)
    if d is None or d[1] < 0.5 or not any(w in d[0].key for w in _CONNECT_WORDS):
        return None
    c, share = d
    base = f" (its baseline p99 is {_n(c.baseline_p99_ms)} ms)" if c.baseline_p99_ms else ""
    return Finding("connection set-up dominates", "connection_setup", 0.8,
                   f"opening new connections: {c.key} takes {_n(c.duration_ms)} ms = "
                   f"{_n(100 * share)}% of {f.key}{base}; the pool is not reusing connections "
                   "or the network path to the server is slow",
                   f"opening new connections ({c.key}) dominates {f.key}", c.evidence,
                   ["Check why connections are not reused (pool max lifetime, idle timeout, "
                    "server-side disconnects).", "Check network latency and TLS set-up to the "
                    "server."])


_CONNECT_WORDS = ("tcp.connect", "handshake", "tls", "connect")


_SETUP_WORDS = ("tcp.connect", "handshake", "tls", "connect")
_COLD_WORDS = ("cold_start", "coldstart", "cold start", "warmup", "warm-up", "bootstrap", "init")


def _cold_marker(f: Facts) -> str | None:
    """A span or attribute that says so: an init/cold-start span, or faas.coldstart=true."""
    for c in f.children:
        op = c.key.split(":", 1)[-1].lower()
        if any(w in op for w in _COLD_WORDS):
            return c.key
    attrs = [f.subject_attrs, *(c.attributes for c in f.children)]
    return "faas.coldstart" if any(str(a.get("faas.coldstart", "")).lower() == "true"
                                   for a in attrs) else None


def _new_connections(f: Facts) -> str | None:
    """Connection set-up that moved with the slowdown: an open anomaly on a set-up span of the
    same service, or a set-up span on the slow trace."""
    for r in f.related:
        key = str(r.get("key", ""))
        if "{" not in key and r.get("service") == f.service and key != f.key and any(
                w in key.split(":", 1)[-1] for w in _SETUP_WORDS):
            return key
    return next((c.key for c in f.children if any(w in c.key for w in _SETUP_WORDS[:3])), None)


def _cold_start(f: Facts) -> Finding | None:
    marker = _cold_marker(f)
    setup = _new_connections(f)
    cpu = metric_level(f, "cpu") == "high" and (f.metric("cpu") or 0.0) < 70.0
    if marker is None and not (setup and cpu and _self_share(f) >= 0.5):
        return None
    why = (f"{marker} on the trace" if marker else
           f"new connections being set up ({setup} is anomalous at the same time) and raised CPU")
    p99 = f.current_p99_ms
    slow = (f" (p99 {_n(p99)} ms against a baseline p99 of {_n(f.baseline_p99_ms)} ms)"
            if p99 is not None and f.baseline_p99_ms else "")
    return Finding("cold start", "cold_start", 0.9 if marker else 0.8,
                   f"{f.key} is slow in its own work{slow} with {why}: fresh instances are "
                   "warming up (a cold start: empty caches and pools, new connections)",
                   f"{f.key} is slow in its own work with {why}: fresh instances are warming up",
                   f.cite.get("observed", f.cite.get("anomaly", "E1")),
                   ["Check for a recent scale-out, restart or deploy of the service.",
                    "Pre-warm instances (connection pools, caches) before they take traffic."])


def _saturation(f: Facts) -> Finding | None:
    if metric_level(f, "cpu") != "high":
        return None
    cpu = f.metrics.get("cpu")
    if cpu is None:  # only the detector's CPU anomaly: no figure to weigh it by
        return None
    if cpu.value >= 70.0:
        return Finding("CPU saturation", "cpu_saturation", 0.85,
                       f"CPU of {f.service} at {_metric_text(f, 'cpu', '%')}: requests queue "
                       "for CPU", f"{f.service} is at its CPU limit", cpu.evidence,
                       ["Scale out or raise the CPU limit.", "Profile the hottest endpoint."])
    rate = f.metrics.get("rate")
    flat = rate is None or (_ratio(rate.value, rate.baseline) or 1.0) < 1.2
    siblings = any("{" not in str(r.get("key", "")) and r.get("service") == f.service
                   for r in f.related)  # the whole service slowed, not one operation
    strong = flat and (siblings or (cpu.baseline is not None and cpu.value >= 2.5 * cpu.baseline))
    return Finding("CPU contention", "noisy_neighbour", 0.7 if strong else 0.4,
                   f"CPU of {f.service} up at {_metric_text(f, 'cpu', '%')} without more "
                   "traffic: something else on the node competes for CPU",
                   f"{f.service} competes for CPU", cpu.evidence,
                   ["Check other workloads on the same node (batch jobs).",
                    "Check CPU throttling of the pod."])


def _queue(f: Facts) -> Finding | None:
    p50 = _ratio(f.current_p50_ms, f.baseline_p50_ms)
    if not _is_messaging(f) or p50 is None or p50 < 2.0:
        return None
    return Finding("consumer behind", "message_queue_backlog", 0.75,
                   f"{f.key} is slow on every message (median {_n(f.current_p50_ms or 0)} ms "
                   f"against {_n(f.baseline_p50_ms or 0)} ms): the consumer falls behind and "
                   "messages wait in the queue",
                   f"{f.key} is slow on every message: the queue backs up",
                   f.cite.get("anomaly", "E1"), ["Check consumer lag and queue depth.",
                                                 "Add consumers or find what slowed each one."])


def _stall(f: Facts) -> Finding | None:
    p50 = _ratio(f.current_p50_ms, f.baseline_p50_ms)
    if p50 is None or _self_share(f) < 0.5 or not _tail_grew(f):
        return None
    cite = f.cite.get("observed", f.cite.get("anomaly", "E1"))
    tail = (f" (p99 {_n(f.current_p99_ms)} ms against a baseline p99 of "
            f"{_n(f.baseline_p99_ms)} ms)" if f.current_p99_ms and f.baseline_p99_ms else "")
    if _is_db(f):
        if p50 < 2.0:
            return Finding("noisy database round trips", "network_jitter", 0.55,
                           f"{f.key} varies widely{tail}: slower and faster calls mixed, "
                           "as with packet loss on the network path",
                           f"{f.key} varies widely{tail}: slower and faster calls mixed, "
                           "as with packet loss on the network path", cite,
                           ["Check packet loss and retransmits between the service and its "
                            "database."])
        return Finding("database waits", "lock_contention", 0.6,
                       f"{f.key} stalls on some calls{tail} while the rest return quickly: "
                       "rows locked by another transaction", f"{f.key} stalls on locks", cite,
                       ["Look for long transactions or batch jobs holding row locks "
                        "(pg_locks, pg_stat_activity)."])
    if p50 < 1.5:
        return Finding("intermittent stall", "gc_pause", 0.6,
                       f"{f.key} stalls on a few calls{tail} while its median stays near "
                       f"{_n(f.baseline_p50_ms or 0)} ms: stop-the-world pauses in the process",
                       f"{f.key} stalls on a few calls: stop-the-world pauses", cite,
                       ["Check GC pause logs and heap size of the service."])
    return None


def _regression(f: Facts) -> Finding | None:
    p50 = _ratio(f.current_p50_ms, f.baseline_p50_ms)
    marked = f.deploy is not None
    if not marked and (p50 is None or p50 < 3.0 or _self_share(f) < 0.5 or _tail_grew(f)):
        return None
    what = f"after {f.deploy}" if marked else "with no resource change"
    return Finding("step in own time", "deploy_regression", 0.9 if marked else 0.5,
                   f"{f.key} got slower in its own code {what}: a regression in a release or "
                   "config change", f"a regression in {f.key}'s own code",
                   f.cite.get("deploy", f.cite.get("anomaly", "E1")),
                   ["Check the service's recent deploys and config changes; roll back to "
                    "confirm."])


_RULES: tuple[Callable[[Facts], Finding | None], ...] = (
    _memory, _retry_storm, _cascading, _error_burst, _pool, _dns, _downstream, _connect,
    _cold_start,
    _saturation, _queue, _stall, _regression)


def findings(facts: Facts) -> list[Finding]:
    """Every rule that matched, strongest first (rule order breaks ties)."""
    found = [(f, i) for i, rule in enumerate(_RULES) if (f := rule(facts)) is not None]
    return [f for f, _ in sorted(found, key=lambda x: (-x[0].strength, x[1]))]
