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

__all__ = ["KeyBaseline", "baseline_at", "baseline_config", "baseline_facts"]


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
