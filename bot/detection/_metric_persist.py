"""The engine's metric-series IO: baselines and trackers loaded at start, saved with each step.

`save` writes what changed since the last save (hourly partials, each series'
position and trackers, the score histograms of the samples scored since) and the
cursors of the sources that fed those samples, in one transaction: a restart
resumes a source exactly where the saved baselines end, never feeding a sample
twice or skipping one. `load` also installs each series' recalculated thresholds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from bot.detection.metric_series import SeriesSnapshot
from bot.store.detection_state import ScoreHistRow
from bot.store.metric_records import MetricAggregateRow, MetricSeriesSeen, MetricStateRow
from detectors.metric_aggregate import MetricAggregate
from detectors.severity import SeverityThresholds

if TYPE_CHECKING:
    from bot.detection.engine import DetectionEngine

__all__ = ["CURSOR_PREFIX", "load", "save"]

CURSOR_PREFIX = "metrics_cursor:"  # meta key of a source's cursor: prefix + source name


async def load(engine: DetectionEngine) -> None:
    """Restore every metric series that has a saved state, with the partials of its window."""
    store, metrics = engine.store, engine.metrics
    series = {s.id: s for s in await store.list_series("metric")}
    states = [s for s in await store.load_metric_states() if s.series_id in series]
    clocks = [s.clock_hour for s in states if s.clock_hour is not None]
    partials: dict[int, list[tuple[int, MetricAggregate]]] = defaultdict(list)
    if clocks:
        first_day = min(clocks) // 24 - engine.config.baseline.window_days - 1
        for row in await store.load_metric_aggregates(first_day, max(clocks) // 24,
                                                      [s.series_id for s in states]):
            partials[row.series_id].append((row.day * 24 + row.hour, row.agg))
    for st in states:
        info = series[st.series_id]
        metrics.restore(SeriesSnapshot(
            info.name, info.service, info.operation, st.transform, partials[st.series_id],
            st.clock_hour, st.pending, st.first_seen_ns, st.anchor_ns, st.last_sample_ns,
            st.tracker, st.shift, novelty=st.novelty))
        engine.series_ids[info.name] = info.id
    for sid, (data, _computed) in (await store.load_thresholds()).items():
        if sid in series:  # a series with history but no state yet still gets its own
            metrics.thresholds[series[sid].name] = SeverityThresholds.from_dict(data)
    for key, value in (await store.metric_cursors(CURSOR_PREFIX)).items():
        metrics.cursors[key] = metrics.saved_cursors[key] = value


async def save(engine: DetectionEngine, now_ns: int) -> None:
    """Changed partials, states and the source cursors, in one transaction."""
    metrics = engine.metrics
    snaps = metrics.snapshots()  # taken before any await: feeding may go on meanwhile
    cursors = {k: v for k, v in metrics.cursors.items() if metrics.saved_cursors.get(k) != v}
    if not snaps and not cursors:
        return
    try:
        await _write(engine, snaps, cursors, now_ns)
    except BaseException:
        metrics.remark(snaps)  # saved next time instead
        raise
    metrics.saved_cursors.update(cursors)


async def _write(
    engine: DetectionEngine, snaps: list[SeriesSnapshot], cursors: dict[str, int], now_ns: int
) -> None:
    seen = {s.key: MetricSeriesSeen(s.service, s.metric, s.first_seen_ns or s.last_sample_ns,
                                    s.last_sample_ns) for s in snaps}
    engine.series_ids.update(await engine.store.touch_metric_series(seen))
    aggs, states, scores = [], [], []
    for s in snaps:
        sid = engine.series_ids[s.key]
        aggs += [MetricAggregateRow(sid, h // 24, h % 24, agg) for h, agg in s.partials]
        scores += [ScoreHistRow(sid, sc.hour // 24, sc.hour % 24, sc.windows, sc.hist,
                                sc.eligible) for sc in s.scores]
        states.append(MetricStateRow(sid, s.transform, s.first_seen_ns, s.anchor_ns,
                                     s.last_sample_ns, s.clock_hour, s.pending, s.tracker,
                                     s.shift, s.novelty))
    await engine.store.save_metric_step(
        aggs, states, now_ns, {CURSOR_PREFIX + k: str(v) for k, v in cursors.items()}, scores)

