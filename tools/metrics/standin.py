"""Stand-in service metrics when no Prometheus is configured: the simulator's metric model.

The numbers are what the embedded simulator (the demo's default source) would
export for that service and minute, not measurements; every result built from
them is labelled source="stand-in".
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from bot.simulator import MINUTE_NS, Simulator, TrafficModel
from bot.simulator.metrics import CPU_PERCENT, ERROR_RATE, MEMORY_MB, P99_MS, REQUEST_RATE
from tools.metrics.promql import MetricName

__all__ = ["MetricStandIn", "Series"]

Series = tuple[np.ndarray, np.ndarray]  # (unix seconds, values)

_FROM_SIM: dict[str, tuple[MetricName, float]] = {
    CPU_PERCENT: ("cpu_percent", 1.0), MEMORY_MB: ("memory_mb", 1.0),
    ERROR_RATE: ("error_rate_pct", 100.0), REQUEST_RATE: ("request_rate_rps", 1.0),
    P99_MS: ("p99_ms", 1.0),
}


class MetricStandIn:
    """Per-minute metrics of the simulator, sampled at most `max_points` minutes per query."""

    def __init__(self, simulator: Simulator, max_points: int = 30) -> None:
        self.simulator = simulator
        self.max_points = max_points
        self._lock = threading.Lock()  # the simulator caches one block; keep callers in line

    @classmethod
    def from_settings(cls, settings: Any) -> MetricStandIn:
        """The same simulator the demo runs (seed and sampling from the settings)."""
        seed = int(getattr(settings, "simulator_seed", 42))
        rpm = float(getattr(settings, "simulator_requests_per_minute", 60))
        return cls(Simulator(seed, traffic=TrafficModel(sampled_per_minute=rpm)))

    @property
    def services(self) -> list[str]:
        return [s.name for s in self.simulator.topology.services]

    def series(self, service: str, start_ns: int, end_ns: int) -> dict[MetricName, Series]:
        """The service's metrics for the minutes in [start_ns, end_ns); empty if it is unknown."""
        if service not in self.services:
            return {}
        first, last = max(start_ns // MINUTE_NS, 1), max(end_ns // MINUTE_NS, 1)
        minutes = np.unique(np.linspace(first, last, min(self.max_points, last - first + 1))
                            .astype(np.int64))
        values: dict[MetricName, list[float]] = {}
        with self._lock:
            for minute in minutes:
                spans = self.simulator.generate(int(minute) * MINUTE_NS, MINUTE_NS)
                for sample in self.simulator.metrics(int(minute), spans):
                    if sample.labels.get("service") == service and sample.name in _FROM_SIM:
                        metric, scale = _FROM_SIM[sample.name]
                        values.setdefault(metric, []).append(sample.value * scale)
        ts = minutes.astype(np.float64) * (MINUTE_NS / 1e9)
        return {m: (ts, np.asarray(v, np.float64)) for m, v in values.items()}
