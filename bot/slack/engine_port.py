"""The bot's side of the detection engine (bot/detection): recalc and health for /opsbot.

Recalculation runs the engine's own recalc steps (bot.detection.recalc) for the scope,
reports progress, and on a real run also installs the new thresholds in the live engine.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.slack.ops import HealthProbe, Progress, Recalculator

__all__ = ["engine_health", "engine_recalculator", "format_diff"]


def format_diff(summary: dict[str, dict[str, int]], keys: int, windows: int, days: int,
                dry_run: bool, metric: dict[str, dict[str, int]] | None = None,
                metric_series: int = 0) -> str:
    """The diff as mrkdwn; `metric` (its metric series' share of `summary`) adds a line per
    severity where metric series changed, after the totals."""
    verb = "would change" if dry_run else "changed"
    series = f", {metric_series} metric series" if metric_series else ""
    lines = [f"{keys} keys{series}; alert windows of the last {days} days that {verb}"
             f" ({windows} eligible windows):"]
    for severity, counts in summary.items():
        line = (f"• {severity}: {counts.get('no_longer', 0)} no longer fire,"
                f" {counts.get('newly', 0)} newly fire")
        share = (metric or {}).get(severity, {})
        if any(share.values()):
            line += (f" (metric series: {share.get('no_longer', 0)} no longer,"
                     f" {share.get('newly', 0)} newly)")
        lines.append(line)
    if dry_run:
        lines.append("_Dry run: nothing was saved; run without `--dry-run` to apply._")
    return "\n".join(lines)


def engine_recalculator(engine: Any) -> Recalculator:
    """A Recalculator over a running DetectionEngine (its store, config and thresholds)."""
    from bot.detection.recalc import (
        DRY_RUN_DAYS,
        ScopeError,
        compute_all,
        kind_summaries,
        save,
        scope_series,
    )
    from bot.detection.recalc import dry_run as _diff

    async def recalc(target: str | None, dry_run: bool, progress: Progress) -> str:
        store = engine.store
        try:
            scope = await scope_series(store, target or "all")
        except ScopeError as exc:
            return f":warning: {exc}"
        now = scope.newest_ns or time.time_ns()
        pending: list[asyncio.Future[None]] = []

        def step(done: int, total: int) -> None:
            pending.append(asyncio.ensure_future(progress(f"thresholds {done}/{total} keys")))

        keys = scope.ids
        new = await compute_all(store, engine.config, now, keys, step)
        await progress("replaying the last 7 days for the alert diff")
        diff = await _diff(store, engine.config, now, keys, new)
        if not dry_run:
            await save(store, new, time.time_ns())
            engine.install_thresholds({k: new[k] for k in scope.spans},
                                      {k: new[k] for k in scope.metrics})
        await asyncio.gather(*pending, return_exceptions=True)
        return format_diff(diff.summary(), len(scope.spans), diff.windows, DRY_RUN_DAYS,
                           dry_run, kind_summaries(diff, scope)["metric"], len(scope.metrics))

    return recalc


def engine_health(engine: Any) -> HealthProbe:
    async def health() -> dict[str, object]:
        stats = engine.stats
        return {"windows scored": stats.windows_scored,
                "anomalies opened": stats.anomalies_opened, "recalcs": stats.recalcs}

    return health
