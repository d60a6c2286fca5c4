"""Severity recalculation from stored score histograms, and its dry run.

Thresholds of a span key or a metric series come from the badness of its scored
windows (samples, for a metric series) over the baseline window (30 days):
`compute_thresholds` on the histogram's values. The histograms hold badness, the
score already turned by the series' direction (up for latency, the metric
direction for metrics), so the thresholds are computed on it as is. The dry run
replays the last 7 days of alert-eligible windows (those that passed the
minimum deviation) through the stored and the new thresholds and counts, per
severity, windows that would no longer fire and windows that newly would.
Baselines themselves need no recalculation: they are sums of hourly partials,
rebuilt on the fly (see rolling); the command reports how many keys are warm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np

from bot.detection.score_hist import N_SCORE_BINS, scores_from_hist
from bot.store.sqlite import SqliteStore
from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import DetectorConfig
from detectors.severity import SeverityThresholds, compute_thresholds
from detectors.threshold_diff import ThresholdDiff, diff_thresholds

__all__ = [
    "RecalcResult",
    "Scope",
    "ScopeError",
    "compute_all",
    "dry_run",
    "kind_summaries",
    "save",
    "scope_keys",
    "scope_series",
]

DRY_RUN_DAYS = 7


class ScopeError(ValueError):
    """The scope names no known key, series or service; the message says how to find one."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The series a recalculation covers (name -> series id), by kind."""

    spans: dict[str, int]
    metrics: dict[str, int]
    newest_ns: int | None  # newest sample of any series in the store: "now" for stored data

    @property
    def ids(self) -> dict[str, int]:
        return {**self.spans, **self.metrics}


@dataclass(frozen=True, slots=True)
class RecalcResult:
    keys: int
    windows: int  # historical windows the thresholds rest on
    diff: ThresholdDiff | None  # dry run only


async def scope_series(store: SqliteStore, scope: str) -> Scope:
    """Span keys and metric series in scope: 'all'; a span key 'service:operation' or a
    metric series in Prometheus' text form 'name{label="value"}'; or a service (its span
    keys and the metric series whose `service` label, or name when it has none, it is)."""
    series = await store.list_series()
    newest = max((s.last_seen_ns for s in series), default=None)
    chosen = [s for s in series if scope == "all" or s.name == scope or s.service == scope]
    if not chosen and scope != "all":
        services = sorted({s.service for s in series})[:10]
        hint = f" Known services: {', '.join(services)}." if services else " The store is empty."
        raise ScopeError(f"no span key, metric series or service named {scope!r}.{hint} "
                         "Use 'all', a service, a key as service:operation, or a metric "
                         "series as name{label=\"value\"} (see opsbot anomalies).")
    return Scope({s.name: s.id for s in chosen if s.kind == "span"},
                 {s.name: s.id for s in chosen if s.kind == "metric"}, newest)


async def scope_keys(store: SqliteStore, scope: str) -> dict[str, int]:
    """Series in scope (span keys and metric series), name -> series id."""
    return (await scope_series(store, scope)).ids


async def compute_all(
    store: SqliteStore, config: DetectorConfig, now_ns: int,
    keys: Mapping[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, SeverityThresholds]:
    """New thresholds of every series in `keys` (default: all) from the window's scores."""
    if keys is None:
        keys = await scope_keys(store, "all")
    day = now_ns // DAY_NS
    ids = {sid: name for name, sid in keys.items()}
    rows = await store.load_score_hist(day - config.baseline.window_days, day, list(ids))
    totals: dict[int, np.ndarray] = {}
    for r in rows:
        totals[r.series_id] = totals.get(r.series_id, np.zeros(N_SCORE_BINS, np.int64)) + r.hist
    out: dict[str, SeverityThresholds] = {}
    for i, (sid, name) in enumerate(sorted(ids.items())):
        out[name] = thresholds_from_hist(totals.get(sid), config)
        if progress is not None:
            progress(i + 1, len(ids))
    return out


def thresholds_from_hist(hist: np.ndarray | None, config: DetectorConfig) -> SeverityThresholds:
    """A series' thresholds from its score histogram summed over the baseline window (the
    floors without one). The histograms hold badness already turned by the series'
    direction, so the thresholds are computed "up"."""
    values = scores_from_hist(hist) if hist is not None else np.zeros(0)
    return compute_thresholds(values, config.severity, "up", config.scoring.max_z)


async def save(store: SqliteStore, new: Mapping[str, SeverityThresholds], now_ns: int) -> None:
    """Store the thresholds of every series named in `new` (span keys and metric series)."""
    keys = await scope_keys(store, "all")
    await store.save_thresholds({keys[name]: th.to_dict() for name, th in new.items()
                                 if name in keys}, now_ns)
    await store.set_meta("thresholds_computed_ns", str(now_ns))


async def dry_run(
    store: SqliteStore, config: DetectorConfig, now_ns: int, keys: Mapping[str, int],
    new: Mapping[str, SeverityThresholds],
) -> ThresholdDiff:
    """Alert diff on the last 7 days: stored thresholds (floors when none) vs `new`."""
    default = thresholds_from_hist(None, config)
    stored = await store.load_thresholds()
    old = {name: (SeverityThresholds.from_dict(stored[sid][0]) if sid in stored else default)
           for name, sid in keys.items()}
    day = now_ns // DAY_NS
    ids = {sid: name for name, sid in keys.items()}
    rows = await store.load_score_hist(day - DRY_RUN_DAYS, day, list(ids))
    lowest = min(min((th.levels[-1].threshold for th in (*old.values(), *new.values())),
                     default=math.inf), min(config.severity.score_floors))
    recent: dict[str, list[np.ndarray]] = {}
    times: dict[str, list[np.ndarray]] = {}
    since = now_ns - DRY_RUN_DAYS * DAY_NS
    for r in rows:
        hour_ns = (r.day * 24 + r.hour) * HOUR_NS
        if hour_ns + HOUR_NS <= since:
            continue
        values = scores_from_hist(r.eligible, at_least=lowest)
        name = ids[r.series_id]
        recent.setdefault(name, []).append(values)
        times.setdefault(name, []).append(np.full(values.size, hour_ns, np.int64))
    return diff_thresholds(
        old, new, {k: np.concatenate(v) for k, v in recent.items()}, "up",
        times_ns={k: np.concatenate(v) for k, v in times.items()},
    )


def kind_summaries(diff: ThresholdDiff, scope: Scope) -> dict[str, dict[str, dict[str, int]]]:
    """`diff.summary()` split by kind: {'span': {...}, 'metric': {...}}."""
    return {"span": _summary_of(diff, scope.spans), "metric": _summary_of(diff, scope.metrics)}


def _summary_of(diff: ThresholdDiff, names: Collection[str]) -> dict[str, dict[str, int]]:
    return {s.name: {"no_longer": sum(a.key in names for a in c.no_longer),
                     "newly": sum(a.key in names for a in c.newly)}
            for s, c in sorted(diff.changes.items())}
