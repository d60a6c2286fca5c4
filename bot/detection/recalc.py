"""Severity recalculation from stored score histograms, and its dry run.

Thresholds of a key come from the badness of its scored windows over the
baseline window (30 days): `compute_thresholds` on the histogram's values. The
dry run replays the last 7 days of alert-eligible windows (those that passed the
minimum deviation) through the stored and the new thresholds and counts, per
severity, windows that would no longer fire and windows that newly would.
Baselines themselves need no recalculation: they are sums of hourly partials,
rebuilt on the fly (see rolling); the command reports how many keys are warm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from bot.detection.score_hist import N_SCORE_BINS, scores_from_hist
from bot.store.sqlite import SqliteStore
from detectors.buckets import DAY_NS, HOUR_NS
from detectors.config import DetectorConfig
from detectors.severity import SeverityThresholds, compute_thresholds
from detectors.threshold_diff import ThresholdDiff, diff_thresholds

__all__ = ["RecalcResult", "ScopeError", "compute_all", "dry_run", "save", "scope_keys"]

DRY_RUN_DAYS = 7


class ScopeError(ValueError):
    """The scope names no known key or service; the message says how to find one."""


@dataclass(frozen=True, slots=True)
class RecalcResult:
    keys: int
    windows: int  # historical windows the thresholds rest on
    diff: ThresholdDiff | None  # dry run only


async def scope_keys(store: SqliteStore, scope: str) -> dict[str, int]:
    """Span keys (name -> series id) in scope: 'all', a key 'service:operation', or a service."""
    series = await store.list_series("span")
    if scope == "all":
        return {s.name: s.id for s in series}
    chosen = {s.name: s.id for s in series if s.name == scope or s.service == scope}
    if not chosen:
        services = sorted({s.service for s in series})[:10]
        hint = f" Known services: {', '.join(services)}." if services else " The store is empty."
        raise ScopeError(f"no span key or service named {scope!r}.{hint} "
                         "Use 'all', a service, or a key as service:operation.")
    return chosen


async def compute_all(
    store: SqliteStore, config: DetectorConfig, now_ns: int,
    keys: Mapping[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, SeverityThresholds]:
    """New thresholds of every key in `keys` (default: all span keys) from the window's scores."""
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
        hist = totals.get(sid)
        values = scores_from_hist(hist) if hist is not None else np.zeros(0)
        out[name] = compute_thresholds(values, config.severity, "up", config.scoring.max_z)
        if progress is not None:
            progress(i + 1, len(ids))
    return out


async def save(store: SqliteStore, new: Mapping[str, SeverityThresholds], now_ns: int) -> None:
    keys = await scope_keys(store, "all")
    await store.save_thresholds({keys[name]: th.to_dict() for name, th in new.items()
                                 if name in keys}, now_ns)
    await store.set_meta("thresholds_computed_ns", str(now_ns))


async def dry_run(
    store: SqliteStore, config: DetectorConfig, now_ns: int, keys: Mapping[str, int],
    new: Mapping[str, SeverityThresholds],
) -> ThresholdDiff:
    """Alert diff on the last 7 days: stored thresholds (floors when none) vs `new`."""
    default = compute_thresholds([], config.severity, "up", config.scoring.max_z)
    stored = await store.load_thresholds()
    old = {name: (SeverityThresholds.from_dict(stored[sid][0]) if sid in stored else default)
           for name, sid in keys.items()}
    day = now_ns // DAY_NS
    ids = {sid: name for name, sid in keys.items()}
    rows = await store.load_score_hist(day - DRY_RUN_DAYS, day, list(ids))
    lowest = min(min(th.levels[-1].threshold for th in (*old.values(), *new.values())),
                 min(config.severity.score_floors))
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
