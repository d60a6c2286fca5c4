"""The alert chart: the key's last 24 hours against its baseline band, as a PNG.

Hourly aggregates from the store: the observed p50/p99 per hour, and the band of the
same hour of day over the previous 7 days (p50..p99 of their merged histogram).
Rendering uses matplotlib's Agg backend (no display) and runs in a worker thread.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")  # before pyplot: never look for a display
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MultipleLocator  # noqa: E402

from bot.store.base import AggregateRow  # noqa: E402
from bot.store.records import AnomalyRecord  # noqa: E402
from detectors.aggregate import LatencyAggregate  # noqa: E402

__all__ = ["ChartData", "chart_data", "load_chart_data", "render_png"]

HOUR_NS = 3600 * 10**9
# matplotlib is not thread-safe (its text layout shares parser state), and charts render
# in worker threads: one at a time.
_RENDER = threading.Lock()
_HISTORY_DAYS = 7


@dataclass(frozen=True, slots=True)
class ChartData:
    """Per hour (start, UTC): observed p50/p99 and the baseline band; NaN where unknown."""

    title: str
    hours: Sequence[datetime]
    observed_p50: Sequence[float]
    observed_p99: Sequence[float]
    band_low: Sequence[float]
    band_high: Sequence[float]
    anomaly_start: datetime
    unit: str = "ms"

    @property
    def has_data(self) -> bool:
        return any(not math.isnan(v) for v in self.observed_p99)


def _q(agg: LatencyAggregate | None, q: float) -> float:
    return float(agg.quantile(q)) if agg is not None and agg.count > 0 else math.nan


def chart_data(rows: Sequence[AggregateRow], anomaly: AnomalyRecord, now_ns: int) -> ChartData:
    """The last 24 hours up to `now_ns` and their same-hour baselines (pure)."""
    by_hour = {row.day * 24 + row.hour: row.agg for row in rows}
    last = now_ns // HOUR_NS
    hours = list(range(last - 23, last + 1))
    low, high = [], []
    for h in hours:
        merged: LatencyAggregate | None = None
        for d in range(1, _HISTORY_DAYS + 1):
            past = by_hour.get(h - 24 * d)
            if past is not None:
                merged = past.copy() if merged is None else merged.merge(past)
        low.append(_q(merged, 0.5))
        high.append(_q(merged, 0.99))
    return ChartData(
        title=f"{anomaly.key}: last 24 h vs baseline (same hour, previous {_HISTORY_DAYS} days)",
        hours=[datetime.fromtimestamp(h * 3600, tz=UTC) for h in hours],
        observed_p50=[_q(by_hour.get(h), 0.5) for h in hours],
        observed_p99=[_q(by_hour.get(h), 0.99) for h in hours],
        band_low=low, band_high=high,
        anomaly_start=datetime.fromtimestamp(anomaly.started_ns / 1e9, tz=UTC))


async def load_chart_data(store: object, anomaly: AnomalyRecord, now_ns: int) -> ChartData:
    """Read the aggregates the chart needs (8 days of one series) and shape them."""
    last_day = now_ns // (24 * HOUR_NS)
    rows = await store.load_aggregates(  # type: ignore[attr-defined]
        anomaly.series_id, last_day - _HISTORY_DAYS - 1, last_day)
    return chart_data(rows, anomaly, now_ns)


def render_png(data: ChartData) -> bytes:
    """Draw the chart (CPU-bound: call it through asyncio.to_thread)."""
    with _RENDER:
        return _render(data)


def _hh_mm(seconds: float, _: object) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%H:%M")


def _render(data: ChartData) -> bytes:
    # The x axis is plain epoch seconds, labelled HH:MM UTC: matplotlib.dates has no type
    # stubs (mypy --strict), and a tick every 3 h on multiples of 3 h lands on UTC hours.
    x = [h.timestamp() for h in data.hours]
    fig = Figure(figsize=(8, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.fill_between(x, data.band_low, data.band_high, step="mid", alpha=0.25,
                    color="#2F80ED", label="baseline p50–p99", linewidth=0)
    ax.plot(x, data.observed_p99, color="#D0021B", marker=".", label="observed p99")
    ax.plot(x, data.observed_p50, color="#555555", linewidth=1, label="observed p50")
    ax.axvline(data.anomaly_start.timestamp(), color="#D0021B", linestyle="--", linewidth=1)
    ax.set_title(data.title, fontsize=9)
    ax.set_ylabel(data.unit)
    if data.unit == "ms":
        ax.set_yscale("symlog", linthresh=1.0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # plain, no mathtext
    ax.xaxis.set_major_locator(MultipleLocator(3 * 3600))
    ax.xaxis.set_major_formatter(FuncFormatter(_hh_mm))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
