"""Prometheus-style service metrics of the simulated platform, and their text exposition.

Rates and resources come from the traffic model; error rate and p99 are read
from the same minute's spans, so metrics and traces tell one story.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bot.simulator.columns import SpanColumns
from bot.simulator.topology import ServiceProfile

__all__ = [
    "CPU_PERCENT",
    "ERROR_RATE",
    "MEMORY_MB",
    "METRIC_HELP",
    "P99_MS",
    "REQUEST_RATE",
    "MetricSample",
    "ServiceLoad",
    "render_exposition",
    "quantile",
    "service_metrics",
]

CPU_PERCENT = "opsbot_sim_cpu_percent"
MEMORY_MB = "opsbot_sim_memory_mb"
ERROR_RATE = "opsbot_sim_error_rate"
REQUEST_RATE = "opsbot_sim_request_rate"
P99_MS = "opsbot_sim_p99_ms"

METRIC_HELP = {
    CPU_PERCENT: "CPU use of the service, percent of its limit.",
    MEMORY_MB: "Resident memory of the service in megabytes.",
    ERROR_RATE: "Share of the service's requests that failed in the minute.",
    REQUEST_RATE: "Requests per second served by the service.",
    P99_MS: "99th percentile latency of the service's requests in the minute, ms.",
}

_CPU_NOISE = 1.5  # percentage points
_MEMORY_NOISE_MB = 4.0


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One sample: `ts_ns` is the start of the minute it describes."""

    name: str
    labels: dict[str, str]
    ts_ns: int
    value: float


@dataclass(frozen=True, slots=True)
class ServiceLoad:
    """What the model says about one minute, per service (arrays in service order)."""

    rps: np.ndarray  # true requests per second
    load: float  # seasonality multiplier of the minute
    cpu_add: np.ndarray  # incident CPU, percentage points
    memory_add_mb: np.ndarray  # incident memory


def service_metrics(ts_ns: int, services: Sequence[ServiceProfile], model: ServiceLoad,
                    spans: SpanColumns, server_service: np.ndarray,
                    rng: np.random.Generator) -> list[MetricSample]:
    """The five metrics of every service for the minute starting at ts_ns.

    `server_service` maps a key index to the service whose requests it counts
    (SERVER and CONSUMER spans), or -1.
    """
    k = len(services)
    observed = rng.poisson(np.maximum(model.rps, 0.0) * 60.0) / 60.0
    cpu_base = np.array([s.cpu_base for s in services])
    cpu_rps = np.array([s.cpu_per_rps for s in services])
    cpu = cpu_base + cpu_rps * observed + rng.normal(0.0, _CPU_NOISE, k) + model.cpu_add
    memory = (np.array([s.memory_mb for s in services]) * (0.97 + 0.03 * model.load)
              + rng.normal(0.0, _MEMORY_NOISE_MB, k) + model.memory_add_mb)
    owner = server_service[spans.key_idx] if len(spans) else np.zeros(0, np.int64)
    served = owner >= 0
    counts = np.bincount(owner[served], minlength=k)
    errors = np.bincount(owner[served], weights=spans.error[served], minlength=k)
    out: list[MetricSample] = []
    for i, svc in enumerate(services):
        labels = {"service": svc.name}
        durs = spans.duration_ns[owner == i]
        p99 = quantile(durs, 0.99) / 1e6
        err = float(errors[i] / counts[i]) if counts[i] else 0.0
        out += [
            MetricSample(CPU_PERCENT, labels, ts_ns, float(np.clip(cpu[i], 0.0, 100.0))),
            MetricSample(MEMORY_MB, labels, ts_ns, float(max(memory[i], 0.0))),
            MetricSample(ERROR_RATE, labels, ts_ns, err),
            MetricSample(REQUEST_RATE, labels, ts_ns, float(observed[i])),
            MetricSample(P99_MS, labels, ts_ns, p99),
        ]
    return out


def quantile(values: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile, without its per-call overhead; NaN when empty."""
    if values.size == 0:
        return math.nan
    ordered = np.sort(values)
    pos = q * (ordered.size - 1)
    lo = int(pos)
    hi = min(lo + 1, ordered.size - 1)
    return float(ordered[lo] + (pos - lo) * (float(ordered[hi]) - float(ordered[lo])))


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_exposition(samples: Iterable[MetricSample], *, timestamps: bool = True) -> str:
    """Prometheus text format 0.0.4: samples grouped by name, each name with HELP and TYPE.

    A scrape should hold one sample per series; pass the latest minute's samples.
    """
    by_name: dict[str, list[MetricSample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    lines: list[str] = []
    for name, group in by_name.items():
        help_text = METRIC_HELP.get(name, name).replace("\\", "\\\\").replace("\n", "\\n")
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for s in group:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            series = f"{name}{{{labels}}}" if labels else name
            stamp = f" {s.ts_ns // 1_000_000}" if timestamps else ""
            lines.append(f"{series} {_format_value(s.value)}{stamp}")
    return "\n".join(lines) + "\n" if lines else ""
