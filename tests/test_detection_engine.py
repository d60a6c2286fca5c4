"""The detection engine end to end: simulator incidents through the real pipeline into SQLite."""

from __future__ import annotations

from pathlib import Path

from bot.simulator import DAY_NS, HOUR_NS, MINUTE_NS, make_incident
from bot.store import SqliteStore
from tests.detection_support import FAST, T0, replay, simulator

SLOW = make_incident("slow_downstream_dependency", T0 + 6 * HOUR_NS)
ERRORS = make_incident("error_burst", T0 + 7 * HOUR_NS)
LOCKS = make_incident("lock_contention", T0 + 8 * HOUR_NS)
END = T0 + 9 * HOUR_NS + 30 * MINUTE_NS


async def test_incidents_are_detected_grouped_and_persisted(tmp_path: Path) -> None:
    db = tmp_path / "opsbot.db"
    run = await replay(db, simulator([SLOW, ERRORS, LOCKS]), T0, END)
    async with SqliteStore(db) as store:
        anomalies = await store.list_anomalies()
        incidents = {i.id: i for i in await store.list_incidents()}
        for truth in (SLOW, ERRORS, LOCKS):
            hits = [a for a in anomalies if a.key in truth.affected_keys
                    and truth.start_ns - MINUTE_NS <= a.started_ns <= truth.end_ns]
            assert hits, f"{truth.scenario} was not detected"
            assert all(a.state == "resolved" and a.ended_ns is not None for a in hits)
            assert min(a.peak_severity for a in hits) <= 3
            inc = incidents[hits[0].incident_id]  # type: ignore[index]
            assert inc.origin_service == truth.root_service, truth.scenario
            assert {a.incident_id for a in hits} == {inc.id}  # one story, not many messages
            assert all(a.percentile is not None and a.baseline for a in hits)
        # nothing fired before the first injection: quiet traffic stays quiet
        assert all(a.started_ns >= SLOW.start_ns - MINUTE_NS for a in anomalies)
        pinned = [t for a in anomalies for t in a.exemplar_trace_ids]
        assert pinned
        kept = await store.slowest_exemplars(anomalies[0].series_id, T0, END, 100)
        assert any(e.pinned for e in kept if e.trace_id in pinned)
        # every trace that took part in an anomaly is kept whole, slowest-N or not
        for trace_id in pinned:
            assert len(await store.get_trace(trace_id)) > 1, trace_id
    kinds = {(e.subject, e.kind) for e in run.events}
    assert {("anomaly", "opened"), ("anomaly", "resolved"), ("incident", "resolved")} <= kinds
    for e in run.events:  # subscribers get the record after it was written
        rec = e.anomaly or e.incident
        assert rec is not None and rec.id > 0


async def test_restart_resumes_without_duplicates(tmp_path: Path) -> None:
    """Stop mid-incident (mid-hour, open anomaly, pending spans), reopen, finish: same result."""
    sim = simulator([SLOW, ERRORS])
    step = 10 * MINUTE_NS
    whole = tmp_path / "whole.db"
    await replay(whole, sim, T0, END, step_ns=step)
    split = tmp_path / "split.db"
    cut = SLOW.start_ns + 8 * MINUTE_NS + 2 * step  # an anomaly is open here
    first = await replay(split, sim, T0, cut, step_ns=step)
    assert ("opened", SLOW.affected_keys[0]) in first.kinds() or any(
        k == "opened" for k, _ in first.kinds())
    await replay(split, sim, cut, END, step_ns=step)

    async def snapshot(db: Path) -> list[tuple[object, ...]]:
        async with SqliteStore(db) as store:
            incidents = {i.id: i.uid for i in await store.list_incidents()}
            return sorted((a.uid, a.state, a.started_ns, a.ended_ns, a.peak_severity,
                           round(a.peak_score, 6), incidents.get(a.incident_id or -1))
                          for a in await store.list_anomalies())

    whole_rows, split_rows = await snapshot(whole), await snapshot(split)
    assert whole_rows and split_rows == whole_rows


async def test_muted_keys_are_recorded_but_not_notified(tmp_path: Path) -> None:
    db = tmp_path / "opsbot.db"
    async with SqliteStore(db) as store:
        await store.add_mute("kx-wallet", T0 + 10**18, "U1", T0)  # the whole service
    run = await replay(db, simulator([SLOW]), T0, END)
    async with SqliteStore(db) as store:
        stored = {a.key for a in await store.list_anomalies()}
    notified = {e.anomaly.key for e in run.events if e.anomaly is not None}
    assert "kx-wallet:POST /reserve" in stored
    assert not any(k.startswith("kx-wallet:") for k in notified)
    assert notified  # its callers (not muted) still alert


async def test_a_young_store_does_not_flood(tmp_path: Path) -> None:
    """Default warm-up (a day): 26 hours of clean traffic open nothing, though windows score."""
    from detectors.config import DetectorConfig

    db = tmp_path / "opsbot.db"
    run = await replay(db, simulator(seed=5), T0, T0 + 26 * HOUR_NS, config=DetectorConfig(),
                       pipeline=False)
    assert run.events == []
    async with SqliteStore(db) as store:
        assert await store.list_anomalies() == []
        rows = await store.load_score_hist(0, 10**6)
    assert rows and min((r.day * 24 + r.hour) * HOUR_NS for r in rows) >= T0 + 18 * HOUR_NS


async def test_a_deploy_regression_stops_firing_within_the_level_shift_bound(
    tmp_path: Path,
) -> None:
    """Two days of history, then a permanent 12x slowdown: one anomaly, resolved in bound."""
    deploy = make_incident("deploy_regression", T0 + 2 * DAY_NS, 20 * HOUR_NS)
    end = deploy.start_ns + 10 * HOUR_NS
    run = await replay(tmp_path / "opsbot.db", simulator([deploy]), T0, end, pipeline=False)
    key = "kx-exchange:GET /orderbook"
    mine = [e for e in run.events if e.anomaly is not None and e.anomaly.key == key]
    assert [e.kind for e in mine if e.kind != "updated"] == ["opened", "resolved"]
    resolved = mine[-1].anomaly
    assert resolved is not None and resolved.ended_ns is not None
    bound = deploy.start_ns + int(FAST.level_shift.confirm_s * 1e9) + int(
        FAST.lifecycle.quiet_period_s * 1e9) + 10 * MINUTE_NS
    assert resolved.ended_ns <= bound
    assert resolved.ended_ns >= deploy.start_ns + int(FAST.level_shift.confirm_s * 1e9)
