"""The detector loop: spans in, persisted anomalies and incidents and their events out.

Unit of alerting: one span key over one window (`ScoringConfig.window_s`, one
minute), scored on its median and p90 latency and on its error rate against
the key's hourly baselines (see `window_step`). A window is scored once it is
closed: when the engine clock has passed its end plus `lateness_s`. The clock
is the newest span start seen (so a replay of recorded files runs on the
spans' own time, a week in seconds) or, live, the wall clock via `advance(now)`.

Per closed window: `AnomalyTracker` (open / update / resolve, cooldown, flap
damping) and `LevelShiftTracker` (re-anchors the baseline after a sustained
shift); then anomalies are grouped into incidents over the call graph built from
sampled traces. Each step writes anomalies and incidents (upsert by uid), pins
their exemplar traces, and saves score histograms plus the engine state in one
transaction, *last*: a crash replays the step, and upserts make that harmless.
Severity thresholds of span keys and metric series are recalculated from their
score histograms nightly at `recalc_hour_utc` (engine clock). Subscribers get
`EngineEvent`s (see events).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.detection import _persist
from bot.detection.events import EngineEvent, Subscriber
from bot.detection.incident_book import IncidentBook
from bot.detection.metric_series import MetricSeriesDetection, Sample
from bot.detection.rolling import RollingBaselines
from bot.detection.window_step import WindowStep, score_step
from bot.settings import Settings
from bot.spans import SpanBatch
from bot.store.sqlite import SqliteStore
from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import DetectorConfig
from detectors.grouping import CallGraph
from detectors.level_shift import LevelShiftTracker
from detectors.lifecycle import AnomalyEvent, AnomalyTracker
from detectors.scoring import BaselineTable
from detectors.severity import SeverityThresholds, compute_thresholds

__all__ = ["DetectionEngine", "EngineStats", "config_from_settings"]

log = logging.getLogger(__name__)

STATE_NAME = "engine"


def config_from_settings(settings: Settings) -> DetectorConfig:
    """The detector parameters from the settings (the rest: DetectorConfig defaults)."""
    return settings.detector_config()


@dataclass(slots=True)
class EngineStats:
    windows_scored: int = 0
    spans_scored: int = 0
    late_spans: int = 0  # arrived after their window was scored (still in the aggregates)
    anomalies_opened: int = 0
    steps: int = 0
    recalcs: int = 0


@dataclass(slots=True)
class _Pending:
    """Spans of windows not closed yet, as columns (trace ids only for exemplars)."""

    key: list[npt.NDArray[np.int64]] = field(default_factory=list)
    start: list[npt.NDArray[np.int64]] = field(default_factory=list)
    dur_ms: list[npt.NDArray[np.float64]] = field(default_factory=list)
    err: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    trace: list[list[str]] = field(default_factory=list)
    size: int = 0

    def take(self) -> tuple[Any, ...]:
        if not self.key:
            e = np.zeros(0, np.int64)
            return e, e, np.zeros(0), np.zeros(0, np.bool_), []
        cols = (np.concatenate(self.key), np.concatenate(self.start), np.concatenate(self.dur_ms),
                np.concatenate(self.err), [t for part in self.trace for t in part])
        self.key, self.start, self.dur_ms, self.err, self.trace, self.size = [], [], [], [], [], 0
        return cols

    def put(self, key: Any, start: Any, dur: Any, err: Any, trace: list[str]) -> None:
        if len(key):
            self.key.append(key)
            self.start.append(start)
            self.dur_ms.append(dur)
            self.err.append(err)
            self.trace.append(trace)
            self.size += len(key)


class DetectionEngine:
    """Feed it span batches (`feed`), move its clock (`advance`); it persists and notifies."""

    def __init__(
        self, store: SqliteStore, config: DetectorConfig | None = None, *,
        recalc_hour_utc: int = 3, lateness_s: float = 30.0, graph_traces_per_batch: int = 16,
        wall_clock: Callable[[], int] = time.time_ns, process_every_spans: int = 500_000,
    ) -> None:
        self.store = store
        self.config = config or DetectorConfig()
        self.recalc_hour_utc = recalc_hour_utc
        self.lateness_ns = int(lateness_s * 1e9)
        self.window_ns = self.config.scoring.window_s * 1_000_000_000
        self.wall_clock = wall_clock
        self.process_every_spans = process_every_spans
        self.graph_traces = graph_traces_per_batch
        self.stats = EngineStats()
        self.rolling = RollingBaselines(self.config.baseline)
        self.graph = CallGraph(self.config.grouping)
        # Saves an anomaly's whole traces (trace id -> key) as pinned exemplars; set by `tap`.
        self.trace_keeper: Callable[[dict[str, str]], Awaitable[int]] | None = None
        self.book = IncidentBook(int(self.config.grouping.overlap_slack_s * 1e9))
        self.key_names: list[str] = []
        self.key_index: dict[str, int] = {}
        self.series_ids: dict[str, int] = {}
        self.trackers: dict[int, AnomalyTracker] = {}
        self.shifts: dict[int, LevelShiftTracker] = {}
        self.thresholds: dict[int, SeverityThresholds] = {}
        self.default_thresholds = compute_thresholds(
            [], self.config.severity, "up", self.config.scoring.max_z)
        self.clock_ns = 0  # newest span start (or wall time) seen
        self.watermark_ns = 0  # windows starting before this are scored
        self.last_recalc_day = -1
        self.thresholds_ns = 0
        self.pending = _Pending()
        self.subscribers: list[Subscriber] = []
        self.started = False
        self._lock = asyncio.Lock()
        self.metrics = MetricSeriesDetection(self.config)
        self._metric_events: list[tuple[AnomalyEvent, dict[str, Any]]] = []
        self._score_acc: dict[tuple[int, int], list[Any]] = {}  # (key, hour) -> unsaved rows

    # -- public surface --

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive every delivered EngineEvent; returns a function that unsubscribes."""
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    async def start(self) -> None:
        """Load state, thresholds and the aggregates of the window from the store."""
        await _persist.load(self)
        self.started = True

    async def close(self) -> None:
        """Save the state, including spans of windows not closed yet."""
        if self.started:
            async with self._lock:
                await _persist.save_state(self)

    def feed(self, batch: SpanBatch) -> None:
        """Fold a batch into the rolling partials, the call graph and the window buffer."""
        n = len(batch)
        if n == 0:
            return
        key = self._key_indices(*batch.key_codes())
        start = np.asarray(batch.start_ns, np.int64)
        dur = np.asarray(batch.duration_ns, np.float64) / 1e6
        err = np.asarray(batch.error, np.bool_)
        self.rolling.add_spans(key, start, dur, err)
        self._sample_graph(batch)
        self.clock_ns = max(self.clock_ns, int(start.max()))
        late = start < self.watermark_ns
        if late.any():
            self.stats.late_spans += int(late.sum())
            keep = np.flatnonzero(~late)
            key, start, dur, err = key[keep], start[keep], dur[keep], err[keep]
            trace = [batch.trace_ids[i] for i in keep.tolist()]
        else:
            trace = list(batch.trace_ids)
        self.pending.put(key, start, dur, err, trace)

    def feed_metrics(self, points: Sequence[Sample]) -> None:
        """Score metric samples now (each is its own window); written at the next `advance`."""
        if points:
            self._metric_events += self.metrics.observe(points)
            self.clock_ns = max(self.clock_ns, max(p.ts_ns for p in points))

    async def ingest(self, batch: SpanBatch) -> None:
        """`feed`, then process closed windows once enough spans are buffered."""
        self.feed(batch)
        if self.pending.size >= self.process_every_spans:
            await self.advance()

    async def advance(self, now_ns: int | None = None) -> list[EngineEvent]:
        """Score every window closed by `now_ns` (default: the span clock); persist; notify."""
        async with self._lock:
            return await self._advance(now_ns)

    async def _advance(self, now_ns: int | None) -> list[EngineEvent]:
        if not self.started:
            await self.start()
        if now_ns is not None:
            self.clock_ns = max(self.clock_ns, now_ns)
        cutoff = (self.clock_ns - self.lateness_ns) // self.window_ns * self.window_ns
        metric_events, self._metric_events = self._metric_events, []
        if cutoff <= self.watermark_ns:
            if not metric_events:
                return []
            return await _persist.write_step(self, metric_events, self.watermark_ns)
        key, start, dur, err, trace = self.pending.take()
        closed = start < cutoff
        rest = np.flatnonzero(~closed)
        self.pending.put(key[rest], start[rest], dur[rest], err[rest],
                         [trace[i] for i in rest.tolist()])
        sel = np.flatnonzero(closed)
        events = metric_events + self._score_closed(
            key[sel], start[sel], dur[sel], err[sel], [trace[i] for i in sel.tolist()], cutoff)
        events += self.metrics.tick(cutoff)
        self.watermark_ns = cutoff
        delivered = await _persist.write_step(self, events, cutoff)
        await self._maybe_recalc(cutoff)
        self.stats.steps += 1
        return delivered

    async def recalc(self, now_ns: int) -> int:
        """Recompute the severity thresholds of every span key and metric series from its
        score histograms, store and install them; returns how many series."""
        from bot.detection.recalc import compute_all, save, scope_series

        scope = await scope_series(self.store, "all")
        new = await compute_all(self.store, self.config, now_ns, scope.ids)
        await save(self.store, new, self.wall_clock())
        self.install_thresholds({k: new[k] for k in scope.spans},
                                {k: new[k] for k in scope.metrics})
        self.stats.recalcs += 1
        return len(new)

    def install_thresholds(self, spans: Mapping[str, SeverityThresholds],
                           metrics: Mapping[str, SeverityThresholds]) -> None:
        """Classify with recalculated thresholds from now on (span keys, metric series)."""
        for name, th in spans.items():
            k = self.key_index.get(name)
            if k is not None:
                self.thresholds[k] = th
        self.metrics.thresholds.update(metrics)

    # -- scoring --

    def _score_closed(
        self, key: Any, start: Any, dur: Any, err: Any, trace: list[str], cutoff: int
    ) -> list[tuple[AnomalyEvent, dict[str, Any]]]:
        events: list[tuple[AnomalyEvent, dict[str, Any]]] = []
        if key.size:
            hours = start // HOUR_NS
            for h in np.unique(hours).tolist():
                sel = np.flatnonzero(hours == h)
                events += self._score_hour(h * HOUR_NS, key[sel], start[sel], dur[sel],
                                           err[sel], [trace[i] for i in sel.tolist()])
        for tracker in list(self.trackers.values()):
            for ev in tracker.tick(cutoff):
                events.append((ev, {}))
        return events

    def _score_hour(
        self, hour_ns: int, key: Any, start: Any, dur: Any, err: Any, trace: list[str]
    ) -> list[tuple[AnomalyEvent, dict[str, Any]]]:
        """Score one hour of closed spans; a confirmed level shift re-scores that key's rest."""
        self.rolling.advance(hour_ns)
        present = np.unique(key).tolist()
        n = len(self.key_names)
        baselines: list[Any] = [None] * n
        base_err, base_cnt = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for k in present:
            baselines[k] = self.rolling.baseline(k, hour_ns)
            base_err[k], base_cnt[k] = self.rolling.error_rate(k, hour_ns)
        table = BaselineTable.from_baselines(baselines)
        th = [self.thresholds.get(k, self.default_thresholds) for k in range(n)]
        step = score_step(dur, key, start, err, table, th, base_err, base_cnt, self.config)
        self._record_scores(hour_ns, step)
        events, shifted = self._observe(step, trace, table)
        for k, after in shifted.items():
            sel = np.flatnonzero((key == k) & (start >= after))
            if sel.size:
                events += self._score_hour(hour_ns, key[sel], start[sel], dur[sel], err[sel],
                                           [trace[i] for i in sel.tolist()])
        return events

    def _observe(
        self, step: WindowStep, trace: list[str], table: BaselineTable
    ) -> tuple[list[tuple[AnomalyEvent, dict[str, Any]]], dict[int, int]]:
        w, cfg = step.windows, self.config
        events: list[tuple[AnomalyEvent, dict[str, Any]]] = []
        shifted: dict[int, int] = {}
        self.stats.windows_scored += int(np.isfinite(step.badness).sum())
        self.stats.spans_scored += int(w.count.sum())
        shift_z = cfg.level_shift.shift_z
        for r in np.argsort(w.window_start_ns, kind="stable").tolist():
            k, t = int(w.key_idx[r]), int(w.window_start_ns[r])
            if k in shifted:
                continue
            decision, bad = step.decisions[r], float(step.badness[r])
            tracker = self.trackers.get(k)
            if decision is not None or (tracker is not None and tracker.state != "idle") or (
                tracker is not None and tracker.recent
            ):
                if tracker is None:
                    tracker = self.trackers[k] = AnomalyTracker(
                        self.key_names[k], cfg.lifecycle, cfg.scoring.window_s)
                ex = [trace[i] for i in step.exemplar_rows[r]]
                detail = {"signal": step.signal[r], "observed": float(step.observed[r]),
                          "expected": float(step.expected[r]),
                          "baseline": self._snapshot(k, step.signal[r], step.expected[r])}
                events += [(ev, detail) for ev in tracker.observe(t, bad, decision, ex)]
            score = float(w.score[r])
            ls = self.shifts.get(k)
            if ls is None and not abs(score) >= shift_z:
                continue
            if ls is None:
                ls = self.shifts[k] = LevelShiftTracker(cfg.level_shift)
            shift = ls.update(t, score, float(w.deviation[r]))
            if shift is not None:
                log.info("level shift on %s: baseline re-anchored at %d", self.key_names[k],
                         shift.anchor_ns)
                self.rolling.reanchor(k, shift.anchor_ns)
                shifted[k] = t + self.window_ns
        return events, shifted

    def _snapshot(self, k: int, signal: str, expected: float) -> dict[str, Any]:
        """The baseline behind a window, for the message: bucket, quantiles, unit."""
        cached = self.rolling.keys[k].cache
        if cached is None:
            return {}
        b = cached[1]
        snap: dict[str, Any] = {"bucket": b.bucket_type.value, "bucket_id": b.bucket_id,
                                "p50": b.p50, "p90": b.p90, "p95": b.p95, "p99": b.p99,
                                "expected": b.expected, "count": b.count, "unit": "ms"}
        if signal == "errors":  # observed is an error ratio: compare it with the baseline's
            rate = float(expected)
            snap = {"bucket": "global", "p50": rate, "p99": rate, "expected": rate,
                    "unit": "error ratio", "latency_p50_ms": b.p50, "count": b.count}
        return snap

    def _record_scores(self, hour_ns: int, step: WindowStep) -> None:
        from bot.detection.score_hist import score_histogram

        w = step.windows
        scored = np.isfinite(step.badness)
        for k in np.unique(w.key_idx[scored]).tolist():
            rows = scored & (w.key_idx == k)
            hist = score_histogram(step.badness[rows])
            elig = score_histogram(step.badness[rows & step.eligible])
            acc = self._score_acc.get((k, hour_ns))
            if acc is None:
                self._score_acc[(k, hour_ns)] = [int(rows.sum()), hist, elig]
            else:
                acc[0] += int(rows.sum())
                acc[1] += hist
                acc[2] += elig

    async def _maybe_recalc(self, now_ns: int) -> None:
        """Nightly: the first step at or after `recalc_hour_utc` of a new (engine clock) day."""
        day, hour = now_ns // DAY_NS, (now_ns // HOUR_NS) % 24
        if hour < self.recalc_hour_utc or day <= self.last_recalc_day:
            return
        self.last_recalc_day = day
        n = await self.recalc(now_ns)
        await self.store.prune_score_hist(day - self.config.baseline.window_days - 1)
        await self.store.prune_metric_aggregates(day - self.config.baseline.window_days - 1)
        await _persist.save_state(self)
        log.info("nightly recalculation: thresholds of %d keys", n)

    # -- keys and graph --

    def _key_indices(self, names: list[str], codes: npt.NDArray[np.int64] | None = None,
                     ) -> npt.NDArray[np.int64]:
        """Engine key index of every row, from the batch's distinct keys and per-row codes
        (`names[codes[i]]`; without codes, one row per name).

        One lookup per distinct key, not per row; new keys are numbered in the order of
        their first row, as a row-by-row pass would.
        """
        if codes is None:
            codes = np.arange(len(names), dtype=np.int64)
        index = self.key_index
        get = index.get
        lut = np.fromiter((get(k, -1) for k in names), np.int64, len(names))
        if lut.min(initial=0) < 0:
            present, first = np.unique(codes, return_index=True)
            for code in present[np.argsort(first)].tolist():
                if lut[code] < 0:
                    name = names[code]
                    k = index.get(name)
                    if k is None:
                        k = index[name] = len(self.key_names)
                        self.key_names.append(name)
                    lut[code] = k
        self.rolling.ensure(len(self.key_names))
        out: npt.NDArray[np.int64] = lut[codes]
        return out

    def _sample_graph(self, batch: SpanBatch) -> None:
        """Materialize a few whole traces per batch to learn caller -> callee services.

        Only the first `_GRAPH_SCAN_ROWS` rows are looked at: exporters send a
        trace's spans together, and the graph needs a sample, not every call.
        """
        if self.graph_traces <= 0:
            return
        ids = batch.trace_ids[:_GRAPH_SCAN_ROWS]
        chosen: set[str] = set()
        for t in ids:
            if t not in chosen and t[-2:] in _GRAPH_SUFFIXES:
                chosen.add(t)
                if len(chosen) >= self.graph_traces:
                    break
        if not chosen:
            return
        spans = [batch.materialize(i) for i, t in enumerate(ids) if t in chosen]
        self.graph.add_spans([s.service for s in spans], [s.span_id for s in spans],
                             [s.parent_id for s in spans])


# One trace in 16 (by the last hex digits of its id: deterministic across runs).
_GRAPH_SCAN_ROWS = 20_000
_GRAPH_SUFFIXES = frozenset(f"{i:02x}" for i in range(0, 256, 16))




def pending_blob(engine: DetectionEngine) -> bytes | None:
    """The unscored spans as an npz blob (trace ids dropped: only exemplars need them)."""
    key, start, dur, err, trace = engine.pending.take()
    engine.pending.put(key, start, dur, err, trace)
    if key.size == 0:
        return None
    buf = io.BytesIO()
    np.savez_compressed(buf, key=key, start=start, dur=dur, err=err)
    return buf.getvalue()
