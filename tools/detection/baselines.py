"""Baselines as the detector sees them, read from the store's hourly aggregates.

One function so every tool (baseline, trace_breakdown, slow_traces) quotes the
same numbers the alert did: `detectors.build_baseline` over the window of
partials before the hour of `at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.store.base import SeriesInfo
from detectors import Baseline, BaselineConfig, LatencyAggregate, build_baseline, day_index
from detectors.buckets import hour_of_day

__all__ = ["KeyBaseline", "Observed", "baseline_at", "baseline_config", "baseline_facts",
           "observed_at", "observed_facts"]

_HOUR_NS = 3_600 * 10**9
_MIN_OBSERVED = 20  # fewer samples in the hour of `at`: the hour before is added


@dataclass(frozen=True, slots=True)
class KeyBaseline:
    series: SeriesInfo
    baseline: Baseline


def baseline_config(settings: Any) -> BaselineConfig:
    """The detector's baseline config with the configured window."""
    return BaselineConfig(window_days=int(getattr(settings, "baseline_window_days", 30)))


async def baseline_at(store: Any, key: str, at_ns: int, config: BaselineConfig
                      ) -> KeyBaseline | None:
    """The baseline of span key `key` at `at_ns`; None when the store never saw the key."""
    series = await store.get_series(key)
    if series is None:
        return None
    last_day = day_index(at_ns)
    rows = await store.load_aggregates(series.id, last_day - config.window_days - 1, last_day)
    partials = ((r.day, r.hour, r.agg) for r in rows)
    baseline = build_baseline(partials, LatencyAggregate(), at_ns, series.first_seen_ns, config)
    return KeyBaseline(series, baseline)


def baseline_facts(b: Baseline) -> dict[str, Any]:
    """The baseline as JSON-able facts (ms, rounded like the summaries)."""
    def ms(v: float) -> float | None:
        return round(v, 2) if v == v else None  # NaN when the bucket is empty

    return {"bucket": b.bucket_type.value, "bucket_id": b.bucket_id, "p50_ms": ms(b.p50),
            "p95_ms": ms(b.p95), "p99_ms": ms(b.p99), "expected_ms": ms(b.expected),
            "samples": b.count, "warm": b.warm}


@dataclass(frozen=True, slots=True)
class Observed:
    """What the key did around `at`: the store's hourly aggregates of [start, end)."""

    start_ns: int
    end_ns: int
    agg: LatencyAggregate


async def observed_at(store: Any, series: SeriesInfo, at_ns: int) -> Observed:
    """The hour holding `at` (the hour before it too when that hour has few samples yet).

    Hourly partials are the finest the store keeps for every span, so "observed" is that
    hour as stored, not a window ending exactly at `at`.
    """
    hour_start = at_ns - at_ns % _HOUR_NS
    rows = await store.load_aggregates(series.id, day_index(hour_start - _HOUR_NS),
                                       day_index(hour_start))
    by_hour = {r.day * 24 + r.hour: r.agg for r in rows}
    this = day_index(hour_start) * 24 + hour_of_day(hour_start)
    agg = LatencyAggregate().merge(by_hour.get(this, LatencyAggregate()))
    start = hour_start
    if agg.count < _MIN_OBSERVED and this - 1 in by_hour:
        agg = agg.merge(by_hour[this - 1])
        start -= _HOUR_NS
    return Observed(start, hour_start + _HOUR_NS, agg)


def observed_facts(o: Observed, b: Baseline | None) -> dict[str, Any]:
    """Observed quantiles, count and error rate (JSON-able), with the ratios to the baseline."""
    def ms(v: float) -> float | None:
        return round(v, 2) if v == v else None

    a = o.agg
    p50, p99 = a.quantile(0.5), a.quantile(0.99)
    facts: dict[str, Any] = {
        "p50_ms": ms(p50), "p95_ms": ms(a.quantile(0.95)), "p99_ms": ms(p99),
        "count": a.count, "error_rate_pct": round(100 * a.errors / a.count, 2) if a.count
        else None}
    if b is not None and b.count and a.count:
        facts["p50_ratio"] = round(p50 / b.p50, 2) if b.p50 > 0 else None
        facts["p99_ratio"] = round(p99 / b.p99, 2) if b.p99 > 0 else None
    return facts
