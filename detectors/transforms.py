"""The value transforms baselines are modelled in: log for latency, log1p or identity for metrics.

Moments and scores live in the transformed space; floors and deviations are
stated in the series' own units and carried across by the transform's slope.
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

__all__ = ["LOG_MIN_MS", "Transform", "transform_for_metric", "unit_for_metric"]

FloatArray = npt.NDArray[np.float64]

LOG_MIN_MS = 1e-6  # same clamp as LatencyAggregate.add: a 0 ms span is 1 ns, not -inf


class Transform(enum.StrEnum):
    """How raw values map to the space where a baseline keeps its moments."""

    LOG = "log"  # latency in ms (> 0): ln(x); heavy right tail becomes near-symmetric
    LOG1P = "log1p"  # non-negative counters and rates: ln(1 + x); linear near 0, log for large x
    IDENTITY = "identity"  # gauges that can be 0 or negative (CPU %, temperature, deltas)

    def forward(self, x: npt.ArrayLike) -> FloatArray:
        """Raw values to the transformed space (vectorised)."""
        a = np.asarray(x, dtype=np.float64)
        if self is Transform.LOG:
            return np.log(np.maximum(a, LOG_MIN_MS))
        if self is Transform.LOG1P:
            return np.log1p(np.maximum(a, 0.0))
        return a

    def inverse(self, y: npt.ArrayLike) -> FloatArray:
        """Transformed values back to raw units (vectorised)."""
        a = np.asarray(y, dtype=np.float64)
        if self is Transform.LOG:
            return np.exp(a)
        if self is Transform.LOG1P:
            return np.expm1(a)
        return a

    def slope(self, x: float) -> float:
        """d forward / dx at raw value x: converts a width in raw units to transformed units."""
        if self is Transform.LOG:
            return 1.0 / max(x, LOG_MIN_MS)
        if self is Transform.LOG1P:
            return 1.0 / (1.0 + max(x, 0.0))
        return 1.0


# Prometheus naming conventions for series that cannot be negative and grow multiplicatively.
_NON_NEGATIVE_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_bytes", "_seconds", "_rate")


def transform_for_metric(name: str) -> Transform:
    """Default transform for a Prometheus metric name; callers may override per series.

    Counters, histogram parts, byte and second quantities are non-negative and
    multiplicative (log1p); everything else is treated as a signed gauge (identity).
    """
    base = name.split("{", 1)[0]
    if base.endswith(_NON_NEGATIVE_SUFFIXES):
        return Transform.LOG1P
    return Transform.IDENTITY


# Prometheus naming conventions (base unit as the name's suffix) -> the unit a person reads.
_UNIT_SUFFIXES = (
    ("_percent", "%"), ("_pct", "%"), ("_ratio", "ratio"), ("_seconds", "s"), ("_ms", "ms"),
    ("_milliseconds", "ms"), ("_bytes", "bytes"), ("_mb", "MB"), ("_rps", "req/s"),
    ("_total", ""), ("_count", ""),
)


def unit_for_metric(name: str) -> str:
    """The unit of a metric series from its name (`cpu_percent` -> "%"); "" when unknown."""
    base = name.split("{", 1)[0].lower()
    for suffix, unit in _UNIT_SUFFIXES:
        if base.endswith(suffix):
            return unit
    return ""
