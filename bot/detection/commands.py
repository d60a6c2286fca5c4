"""`opsbot anomalies` and `opsbot recalc`: thin shells over the store and `recalc`.

Both return an exit code: 0 ok, 2 bad input (the message says what to do).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from bot.detection.recalc import (
    DRY_RUN_DAYS,
    ScopeError,
    compute_all,
    dry_run,
    kind_summaries,
    save,
    scope_series,
)
from bot.settings import Settings
from bot.store import SqliteStore, StoreError
from bot.store.records import AnomalyRecord, FeedbackRecord, IncidentRecord

__all__ = ["anomalies_command", "parse_since", "recalc_command"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SinceError(ValueError):
    """--since is neither an ISO time nor a duration."""


def parse_since(text: str, now_ns: int) -> int:
    """ISO time (naive means UTC) or a duration back from `now_ns` (30m, 2h, 7d, 1w)."""
    m = _DURATION.match(text)
    if m:
        return now_ns - int(float(m.group(1)) * _UNIT_S[m.group(2)] * 1e9)
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SinceError(f"--since {text!r} is neither an ISO time (2024-05-01T12:00) nor a "
                         "duration (30m, 2h, 7d)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e9)


def _run(coro: Coroutine[Any, Any, int], err: Console) -> int:
    try:
        return asyncio.run(coro)
    except StoreError as exc:
        err.print(f"[red]store error:[/] {exc}")
        return 2


def anomalies_command(
    *, settings: Settings, since: str | None, state: str | None, as_json: bool,
    out: Console, err: Console,
) -> int:
    """List anomalies, newest first. `--since` is an ISO time or a duration back from now;
    for historical data (files ingested with `opsbot ingest`) "now" is the store's newest
    span time, not the wall clock, so `--since 2h` means the last two hours of the data.
    """
    if state not in (None, "open", "resolved"):
        err.print(f"[red]--state {state!r}[/]: use open or resolved")
        return 2
    if not settings.db_path.exists():
        err.print(f"no store at {settings.db_path}: ingest spans first (opsbot ingest FILE, "
                  "opsbot run or opsbot demo)")
        return 2
    return _run(_anomalies(settings, since, state, as_json, out, err), err)


async def _anomalies(
    settings: Settings, since: str | None, state: str | None, as_json: bool, out: Console,
    err: Console,
) -> int:
    async with SqliteStore(settings.db_path) as store:
        since_ns = None
        if since is not None:
            newest = await store.newest_span_ns()
            now = min(time.time_ns(), newest) if newest else time.time_ns()
            try:
                since_ns = parse_since(since, now)
            except SinceError as exc:
                err.print(f"[red]{exc}[/]")
                return 2
        rows = await store.list_anomalies(since_ns=since_ns, state=state)  # type: ignore[arg-type]
        incidents = {i.id: i for i in await store.list_incidents()}
        feedback = await store.feedback_for([a.id for a in rows])
    items = [_anomaly_json(a, incidents.get(a.incident_id or -1), feedback.get(a.id, []))
             for a in rows]
    if as_json:
        out.print_json(json.dumps(items))
    else:
        out.print(_anomaly_table(items) if items else "no anomalies")
    return 0


def _iso(t_ns: int | None) -> str | None:
    if t_ns is None:
        return None
    return datetime.fromtimestamp(t_ns / 1e9, UTC).isoformat(timespec="seconds")


def _anomaly_json(
    a: AnomalyRecord, inc: IncidentRecord | None, fb: list[FeedbackRecord]
) -> dict[str, Any]:
    verdicts = {"false_positive": 0, "confirmed": 0}
    for f in fb:
        verdicts[f.verdict] = verdicts.get(f.verdict, 0) + 1
    return {
        "id": a.id, "uid": a.uid, "key": a.key, "service": a.service,
        "operation": a.operation, "start": _iso(a.started_ns), "end": _iso(a.ended_ns),
        "state": a.state, "peak_severity": f"SEV{a.peak_severity}",
        "peak_score": round(a.peak_score, 3), "percentile": a.percentile,
        "incident_id": inc.uid if inc else None,
        "origin_service": inc.origin_service if inc else None,
        "feedback": verdicts,
        "signal": a.details.get("signal"), "observed": a.observed,
        "expected": a.details.get("expected"), "exemplar_trace_ids": a.exemplar_trace_ids,
    }


def _anomaly_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(items)} anomalies")
    for col in ("id", "key", "start", "end", "sev", "score", "pct", "incident", "origin",
                "feedback"):
        table.add_column(col)
    for it in items:
        fb = it["feedback"]
        table.add_row(
            str(it["id"]), it["key"], it["start"], it["end"] or "open", it["peak_severity"],
            f"{it['peak_score']:.1f}", "" if it["percentile"] is None else f"p{it['percentile']:g}",
            str(it["incident_id"] or ""), it["origin_service"] or "",
            f"+{fb['confirmed']}/-{fb['false_positive']}" if any(fb.values()) else "",
        )
    return table


def recalc_command(
    *, settings: Settings, scope: str, dry_run: bool, as_json: bool, out: Console, err: Console,
) -> int:
    """Recalculate severity thresholds of a span key, a metric series, a service (its keys
    and metric series) or all from the stored window scores; with --dry-run, print the
    alerts of the last 7 days that would change instead.
    """
    if not settings.db_path.exists():
        err.print(f"no store at {settings.db_path}: ingest spans first (opsbot ingest FILE)")
        return 2
    return _run(_recalc(settings, scope, dry_run, as_json, out, err), err)


async def _recalc(
    settings: Settings, scope: str, dry: bool, as_json: bool, out: Console, err: Console
) -> int:
    config = settings.detector_config()  # the percentiles, floors and history the service uses
    async with SqliteStore(settings.db_path) as store:
        try:
            chosen = await scope_series(store, scope)
        except ScopeError as exc:
            err.print(f"[red]{exc}[/]")
            return 2
        keys = chosen.ids
        now = chosen.newest_ns or time.time_ns()
        step = max(len(keys) // 10, 1)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                err.print(f"thresholds: {done}/{total} keys", highlight=False)

        new = await compute_all(store, config, now, keys, progress)
        diff = await dry_run(store, config, now, keys, new)
        if not dry:
            await save(store, new, time.time_ns())
    summary, by_kind = diff.summary(), kind_summaries(diff, chosen)
    # "keys" stays the span keys in scope; metric series are counted beside them
    result = {"scope": scope, "keys": len(chosen.spans), "metric_series": len(chosen.metrics),
              "dry_run": dry, "days": DRY_RUN_DAYS, "windows_replayed": diff.windows,
              "changes": summary, "changes_by_kind": by_kind,
              "thresholds": {k: [lv.threshold for lv in th.levels] for k, th in new.items()}}
    if as_json:
        out.print_json(json.dumps(result))
        return 0
    verb = "would change" if dry else "changed"
    table = Table(title=f"alert windows of the last {DRY_RUN_DAYS} days that {verb} "
                        f"({len(chosen.spans)} keys, {len(chosen.metrics)} metric series, "
                        f"{diff.windows} eligible windows)")
    for col in ("severity", "no longer fire", "newly fire", "of which metric series"):
        table.add_column(col)
    for sev, c in summary.items():
        m = by_kind["metric"][sev]
        table.add_row(sev, str(c["no_longer"]), str(c["newly"]),
                      f"{m['no_longer']} / {m['newly']}")
    out.print(table)
    if dry:
        out.print("dry run: nothing was saved; run without --dry-run to apply")
    return 0
