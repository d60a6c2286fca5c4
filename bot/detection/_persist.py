"""The engine's IO: load at start, write each step's records, save state, deliver events.

Order of a step's writes: incidents, anomalies (with their incident ids), pins,
then score histograms and the engine state in one transaction. The state goes
last, so a crash before it replays the step: anomalies and incidents are upserts
by uid, so the replay rewrites the same rows instead of adding new ones.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bot.detection import _metric_persist
from bot.detection.events import EngineEvent, EventKind
from bot.detection.incident_book import IncidentBook, IncidentChange
from bot.store.detection_state import ScoreHistRow
from bot.store.records import AnomalyRecord, IncidentRecord, MuteRecord
from detectors.buckets import DAY_NS, HOUR_NS
from detectors.grouping import CallGraph, IncidentMember
from detectors.level_shift import LevelShiftTracker
from detectors.lifecycle import AnomalyEvent, AnomalyTracker
from detectors.severity import SeverityThresholds

if TYPE_CHECKING:
    from bot.detection.engine import DetectionEngine

__all__ = ["load", "save_state", "write_step"]

log = logging.getLogger(__name__)
STATE_NAME = "engine"


# -- start --

async def load(engine: DetectionEngine) -> None:
    """Restore the engine from the store: state, thresholds, the window's aggregates."""
    store, cfg = engine.store, engine.config
    saved = await store.load_detection_state(STATE_NAME)
    state = saved.data if saved is not None else {}
    for name in state.get("keys", []):
        engine._key_indices([name])
    series = await store.list_series("span")
    engine._key_indices([s.name for s in series])
    engine.series_ids = {s.name: s.id for s in series}
    newest = max((s.last_seen_ns for s in series), default=0)
    engine.clock_ns = max(int(state.get("clock_ns", 0)), engine.clock_ns)
    engine.watermark_ns = int(state.get("watermark_ns", 0))
    engine.last_recalc_day = int(state.get("last_recalc_day", -1))
    anchor_of: dict[str, int] = state.get("anchors", {})
    last_day = max(engine.clock_ns, newest) // DAY_NS
    first_day = last_day - cfg.baseline.window_days - 1
    for s in series:
        k = engine.key_index[s.name]
        for row in await store.load_aggregates(s.id, first_day, last_day):
            engine.rolling.add(k, row.day * 24 + row.hour, row.agg, s.first_seen_ns)
    for name, anchor in anchor_of.items():
        engine.rolling.reanchor(engine.key_index[name], int(anchor))
    _restore_trackers(engine, state)
    if "graph" in state:
        engine.graph = CallGraph.from_dict(state["graph"], cfg.grouping)
    if "book" in state:
        engine.book = IncidentBook.from_dict(state["book"], engine.book.slack_ns)
    names = {sid: name for name, sid in engine.series_ids.items()}
    for sid, (data, _computed) in (await store.load_thresholds()).items():
        if sid in names:
            engine.thresholds[engine.key_index[names[sid]]] = SeverityThresholds.from_dict(data)
    if saved is not None and saved.pending:
        _restore_pending(engine, saved.pending, state.get("keys", []))
    await _metric_persist.load(engine)


def _restore_trackers(engine: DetectionEngine, state: dict[str, Any]) -> None:
    cfg = engine.config
    for name, d in state.get("trackers", {}).items():
        engine.trackers[engine.key_index[name]] = AnomalyTracker.from_dict(
            d, cfg.lifecycle, cfg.scoring.window_s)
    for name, d in state.get("shifts", {}).items():
        engine.shifts[engine.key_index[name]] = LevelShiftTracker.from_dict(cfg.level_shift, d)


def _restore_pending(engine: DetectionEngine, blob: bytes, names: list[str]) -> None:
    with np.load(io.BytesIO(blob)) as z:
        remap = np.asarray([engine.key_index[n] for n in names], np.int64)
        key = remap[z["key"]]
        engine.pending.put(key, z["start"], z["dur"], z["err"], [""] * int(key.size))


# -- state --

def _state(engine: DetectionEngine) -> dict[str, Any]:
    clock, lc = engine.clock_ns, engine.config.lifecycle
    names = engine.key_names

    def keep(t: AnomalyTracker) -> bool:
        recent_open = any(o >= clock - lc.flap_window_s * 1e9 for o in t.opens_ns)
        return t.open is not None or bool(t.recent) or t.cooldown_until_ns > clock or recent_open

    for k in [k for k, t in engine.trackers.items() if not keep(t)]:
        del engine.trackers[k]
    for k in [k for k, s in engine.shifts.items() if s.run.direction == 0]:
        del engine.shifts[k]
    anchors = {names[k]: kp.anchor_ns for k, kp in enumerate(engine.rolling.keys)
               if kp.anchor_ns is not None}
    return {
        "v": 1, "clock_ns": clock, "watermark_ns": engine.watermark_ns,
        "last_recalc_day": engine.last_recalc_day, "keys": names,
        "trackers": {names[k]: t.to_dict() for k, t in engine.trackers.items()},
        "shifts": {names[k]: s.to_dict() for k, s in engine.shifts.items()},
        "anchors": anchors, "graph": engine.graph.to_dict(), "book": engine.book.to_dict(),
        "stats": asdict(engine.stats),
    }


async def save_state(engine: DetectionEngine) -> None:
    """Score histograms accumulated since the last save plus the state, in one transaction."""
    from bot.detection.engine import pending_blob

    acc, engine._score_acc = engine._score_acc, {}
    await ensure_series(engine, {engine.key_names[k] for k, _ in acc})
    rows = [
        ScoreHistRow(engine.series_ids[engine.key_names[k]], h // DAY_NS, (h // HOUR_NS) % 24,
                     n, hist, elig)
        for (k, h), (n, hist, elig) in acc.items()
    ]
    await _metric_persist.save(engine, engine.wall_clock())  # metric series: own transaction
    await engine.store.save_detection_step(rows, STATE_NAME, _state(engine), pending_blob(engine),
                                           engine.wall_clock())


async def ensure_series(
    engine: DetectionEngine, names: set[str], kind: Literal["span", "metric"] = "span"
) -> None:
    """Series rows for keys the pipeline has not flushed yet (anomalies reference them)."""
    missing = {n for n in names if n not in engine.series_ids}
    if not missing:
        return
    seen = {}
    for n in missing:
        k = engine.key_index.get(n)
        first = (engine.rolling.keys[k].first_seen_ns if k is not None else None) or engine.clock_ns
        seen[n] = (first, max(first, engine.clock_ns))
    engine.series_ids.update(await engine.store.touch_series(seen, kind))


# -- one step --

async def write_step(
    engine: DetectionEngine, events: list[tuple[AnomalyEvent, dict[str, Any]]], now_ns: int
) -> list[EngineEvent]:
    """Persist the step's anomalies and incidents, save state, deliver events."""
    store = engine.store
    metrics = engine.metrics.service_of
    metric_keys = {ev.anomaly.key for ev, _ in events if ev.anomaly.key in metrics}
    await ensure_series(engine, {ev.anomaly.key for ev, _ in events} - metric_keys)
    await ensure_series(engine, metric_keys, "metric")
    records: dict[str, AnomalyRecord] = {}
    order: list[tuple[EventKind, str, int]] = []
    for ev, detail in events:
        rec = await _record(engine, ev, detail, records.get(ev.anomaly.anomaly_id))
        records[rec.uid] = rec
        order.append((ev.kind, rec.uid, ev.t_ns))
        if ev.kind == "opened":
            engine.stats.anomalies_opened += 1
        a = ev.anomaly
        engine.book.put(IncidentMember(a.anomaly_id, rec.service, a.opened_ns, a.resolved_ns,
                                       a.peak_score), a.key, int(a.severity))
    changes = engine.book.regroup(engine.graph, now_ns) if engine.book.members else []
    incidents = await _write_incidents(engine, changes, now_ns)
    for change in changes:
        if change.incident is None:
            continue
        for m in change.incident.members:
            if m.anomaly_id not in records:
                old = await store.get_anomaly(m.anomaly_id)
                if old is not None:
                    records[old.uid] = old
    for rec in records.values():
        inc_uid = engine.book.incident_of.get(rec.uid)
        inc = incidents.get(inc_uid) if inc_uid else None
        if inc is None and inc_uid is not None:
            inc = await store.get_incident(inc_uid)
        rec.incident_id = inc.id if inc is not None else rec.incident_id
    if records:
        await store.upsert_anomalies(list(records.values()))
        pins = {t: r.key for r in records.values() for t in r.exemplar_trace_ids if t}
        if pins:
            await store.pin_traces(list(pins))
            if engine.trace_keeper is not None:
                await engine.trace_keeper(pins)
    delivered = await _deliver(engine, order, records, changes, incidents, now_ns)
    engine.book.forget(now_ns)
    await save_state(engine)
    return delivered


async def _record(
    engine: DetectionEngine, ev: AnomalyEvent, detail: dict[str, Any],
    prior: AnomalyRecord | None,
) -> AnomalyRecord:
    a = ev.anomaly
    if prior is None:
        prior = await engine.store.get_anomaly(a.anomaly_id)
    service, _, operation = a.key.partition(":")
    if a.key in engine.metrics.service_of:
        service, operation = engine.metrics.service_of[a.key], engine.metrics.metric_of[a.key]
    details = dict(prior.details) if prior is not None else {}
    if detail:
        details.update({"signal": detail["signal"], "expected": detail["expected"]})
    # why the severity: the decision behind it (its score, the threshold it reached, set by
    # the percentile column's percentile of the series' history or by a floor)
    details.update({"threshold": a.trigger.threshold, "set_by": a.trigger.set_by,
                    "trigger_score": a.trigger.score, "rank": a.trigger.rank, "peak_ns": a.peak_ns,
                    "last_anomalous_ns": a.last_anomalous_ns})
    return AnomalyRecord(
        uid=a.anomaly_id, key=a.key, service=service, operation=operation,
        state="open" if a.resolved_ns is None else "resolved", started_ns=a.opened_ns,
        updated_ns=ev.t_ns, peak_score=a.peak_score, peak_severity=int(a.severity),
        series_id=engine.series_ids[a.key], ended_ns=a.resolved_ns,
        percentile=a.trigger.percentile,
        observed=detail.get("observed", prior.observed if prior else None),
        baseline=detail.get("baseline", prior.baseline if prior else {}),
        exemplar_trace_ids=[e for e in a.exemplars if e],
        incident_id=prior.incident_id if prior else None, details=details,
        id=prior.id if prior else 0,
    )


async def _write_incidents(
    engine: DetectionEngine, changes: list[IncidentChange], now_ns: int
) -> dict[str, IncidentRecord]:
    book, out = engine.book, {}
    for ch in changes:
        inc = ch.incident
        if inc is None:
            old = await engine.store.get_incident(ch.uid)
            if old is None:
                continue
            old.state, old.ended_ns = "resolved", old.ended_ns or now_ns
            old.details = {**old.details, "merged_into": ch.merged_into}
            out[ch.uid] = old
            continue
        out[ch.uid] = IncidentRecord(
            uid=inc.incident_id, state="open" if inc.end_ns is None else "resolved",
            started_ns=inc.start_ns, origin_service=inc.origin.service,
            origin_key=book.keys.get(inc.origin.anomaly_id),
            peak_severity=book.peak_severity(inc), ended_ns=inc.end_ns,
            details={"chain": list(inc.chain), "origin_anomaly": inc.origin.anomaly_id,
                     "members": [m.anomaly_id for m in inc.members]},
        )
    if out:
        await engine.store.upsert_incidents(list(out.values()))
    return out


async def _deliver(
    engine: DetectionEngine, order: list[tuple[EventKind, str, int]],
    records: dict[str, AnomalyRecord], changes: list[IncidentChange],
    incidents: dict[str, IncidentRecord], now_ns: int,
) -> list[EngineEvent]:
    mutes: list[MuteRecord] = []
    if engine.subscribers and (order or changes):
        mutes = await engine.store.active_mutes(engine.wall_clock())
    wall = engine.wall_clock()

    def muted(key: str) -> bool:
        return any(m.covers(key, wall) for m in mutes)

    out: list[EngineEvent] = []
    for kind, uid, t in order:
        rec = records[uid]
        if not muted(rec.key):
            inc_uid = engine.book.incident_of.get(uid)
            out.append(EngineEvent("anomaly", kind, t, rec, incidents.get(inc_uid or "")))
    for ch in changes:
        rec_i = incidents.get(ch.uid)
        members = ch.incident.members if ch.incident is not None else ()
        keys = [engine.book.keys.get(m.anomaly_id, "") for m in members]
        if rec_i is not None and (not keys or not all(muted(k) for k in keys)):
            out.append(EngineEvent("incident", ch.kind, now_ns, None, rec_i))
    for event in out:
        for callback in list(engine.subscribers):
            try:
                await callback(event)
            except Exception:
                log.exception("an engine subscriber failed on %s %s", event.subject, event.kind)
    return out
