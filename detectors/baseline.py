"""Baselines: what a series normally looks like at a time, from merged hourly partials.

A baseline is the most specific warm bucket (hour-of-week, then hour-of-day,
then global) over the sliding window, with its scale floored so that a
zero-variance series cannot produce infinite scores, and a warm flag from the
bucket type's warm-up gate. Pure: time and data come in as arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt

from detectors.buckets import FALLBACK_ORDER, BucketType, bucket_id, select_window
from detectors.config import BaselineConfig, WarmupGate
from detectors.transforms import Transform

__all__ = [
    "Aggregate",
    "Baseline",
    "baseline_from_aggregate",
    "build_baseline",
    "transformed_floor",
    "variance_floor",
    "warmup_ok",
]


class Aggregate(Protocol):
    """What a baseline reads from a partial: LatencyAggregate and MetricAggregate both fit."""

    count: int

    @property
    def transform(self) -> Transform: ...
    @property
    def mean_t(self) -> float: ...
    @property
    def std_t(self) -> float: ...
    def quantile(self, q: float) -> float: ...
    def add(self, values: npt.NDArray[np.float64], /) -> None: ...
    def merge(self, other: Self) -> Self: ...
    def subtract(self, other: Self) -> Self: ...
    def copy(self) -> Self: ...


A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True, slots=True)
class Baseline:
    """Expected behaviour of one series at one time; scores are (transform(x) - center) / scale."""

    bucket_type: BucketType
    bucket_id: int
    transform: Transform
    center: float  # mean of transformed values (ln ms for latency)
    scale: float  # max(raw_std, floor): the divisor of every score
    raw_std: float  # standard deviation of transformed values before the floor
    floor: float  # the hybrid variance floor carried into the transformed space
    p50: float  # raw units (ms for latency), from the fixed-bin histogram
    p90: float
    p95: float
    p99: float
    count: int
    first_seen_ns: int | None
    anchor_ns: int | None  # level-shift re-anchor: data before it is superseded
    warm: bool  # the bucket passed its warm-up gate; a cold baseline never scores

    @property
    def expected(self) -> float:
        """The center back in raw units (the geometric mean for latency)."""
        return float(self.transform.inverse(self.center))

    def band(self, z: float) -> tuple[float, float]:
        """Raw values at center -+ z x scale: 'normal' range for messages and charts."""
        lo, hi = self.transform.inverse(
            [self.center - z * self.scale, self.center + z * self.scale]
        )
        return float(lo), float(hi)

    def describe(self, unit: str = "ms") -> str:
        """One line for a message: 'p50 0.44 ms, p95 3.1 ms, p99 12 ms (global, 812 samples)'."""
        state = "" if self.warm else ", warming up"
        return (
            f"p50 {self.p50:.3g} {unit}, p95 {self.p95:.3g} {unit}, p99 {self.p99:.3g} {unit} "
            f"({self.bucket_type.value}, {self.count} samples{state})"
        )


def variance_floor(std: float, mean: float, relative_pct: float, absolute_floor: float) -> float:
    """The hybrid floor: max(stddev, max(|mean| x relative_pct, absolute_floor))."""
    return max(std, max(abs(mean) * relative_pct, absolute_floor))


def transformed_floor(
    center_raw: float, transform: Transform, relative_pct: float, absolute_floor: float
) -> float:
    """The hybrid floor stated in raw units at `center_raw`, carried into transformed units.

    For latency (log) this is max(relative_pct, absolute_floor / center_ms): 5 % of
    the level or 1 us, whichever is wider; for identity it is the plain hybrid floor.
    """
    raw = max(abs(center_raw) * relative_pct, absolute_floor)
    return raw * transform.slope(center_raw)


def warmup_ok(count: int, first_seen_ns: int | None, now_ns: int, gate: WarmupGate) -> bool:
    """Minimum samples AND minimum span since the earliest sample; both zero disables the gate.

    Exactly at a threshold passes. An unknown earliest sample fails closed whenever
    a minimum span is required.
    """
    if gate.disabled:
        return True
    if count < gate.min_samples:
        return False
    if gate.min_span_s == 0:
        return True
    if first_seen_ns is None:
        return False
    return now_ns - first_seen_ns >= gate.min_span_s * 1e9


def _effective_gate(
    bucket_type: BucketType,
    config: BaselineConfig,
    first_seen_ns: int | None,
    anchor_ns: int | None,
) -> tuple[WarmupGate, int | None]:
    """After a re-anchor the span counts from the anchor, and global needs only the re-warm span."""
    gate = config.gate(bucket_type.value)
    if anchor_ns is None:
        return gate, first_seen_ns
    seen = anchor_ns if first_seen_ns is None else max(first_seen_ns, anchor_ns)
    if bucket_type is BucketType.GLOBAL:
        gate = WarmupGate(gate.min_samples, min(gate.min_span_s, config.reanchor_min_span_s))
    return gate, seen


def baseline_from_aggregate(
    agg: Aggregate,
    bucket_type: BucketType,
    now_ns: int,
    first_seen_ns: int | None,
    config: BaselineConfig,
    anchor_ns: int | None = None,
) -> Baseline:
    """The baseline of one merged aggregate: floored scale, quantiles, warm flag."""
    center, std = agg.mean_t, agg.std_t
    floor = math.nan
    if agg.count:
        floor = transformed_floor(
            float(agg.transform.inverse(center)),
            agg.transform,
            config.relative_pct,
            config.absolute_floor,
        )
    gate, seen = _effective_gate(bucket_type, config, first_seen_ns, anchor_ns)
    q = [agg.quantile(p) for p in (0.5, 0.9, 0.95, 0.99)]
    return Baseline(
        bucket_type=bucket_type,
        bucket_id=bucket_id(bucket_type, now_ns),
        transform=agg.transform,
        center=center,
        scale=max(std, floor) if agg.count else math.nan,
        raw_std=std,
        floor=floor,
        p50=q[0],
        p90=q[1],
        p95=q[2],
        p99=q[3],
        count=agg.count,
        first_seen_ns=first_seen_ns,
        anchor_ns=anchor_ns,
        warm=agg.count > 0 and warmup_ok(agg.count, seen, now_ns, gate),
    )


def build_baseline(
    partials: Iterable[tuple[int, int, A]],
    empty: A,
    now_ns: int,
    first_seen_ns: int | None,
    config: BaselineConfig,
    anchor_ns: int | None = None,
) -> Baseline:
    """The baseline at `now_ns` from (day, hour, aggregate) partials of one series.

    Tries hour-of-week, hour-of-day, then global, and returns the first warm one;
    when none is warm, the global one with `warm=False`. `empty` is a fresh
    aggregate of the series' kind (it is copied, never modified).
    """
    rows = list(partials)
    result: Baseline | None = None
    for bucket_type in FALLBACK_ORDER:
        merged = empty.copy()
        for agg in select_window(rows, bucket_type, now_ns, config.window_days, anchor_ns):
            merged.merge(agg)
        result = baseline_from_aggregate(
            merged, bucket_type, now_ns, first_seen_ns, config, anchor_ns
        )
        if result.warm:
            return result
    assert result is not None  # FALLBACK_ORDER is never empty
    return result
