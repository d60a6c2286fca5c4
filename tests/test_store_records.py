"""Anomaly, incident, feedback, mute and Slack-event records in the SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.store import AnomalyRecord, IncidentRecord, SqliteStore
from bot.store import migrations as mig

S = 1_000_000_000


def _anomaly(uid: str = "pg-pool:connect@100", **kw: object) -> AnomalyRecord:
    base: dict[str, object] = dict(
        uid=uid, key="pg-pool:connect", service="pg-pool", operation="connect", state="open",
        started_ns=100 * S, updated_ns=160 * S, peak_score=7.5, peak_severity=2, series_id=0,
        percentile=99.2, observed=286.94, baseline={"bucket": "hour_of_week", "p50": 0.4},
        exemplar_trace_ids=["ab" * 16],
    )
    base.update(kw)
    return AnomalyRecord(**base)  # type: ignore[arg-type]


async def _store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "o.db")
    await store.open()
    ids = await store.touch_series({"pg-pool:connect": (1, 2)}, "span")
    store._sid = ids["pg-pool:connect"]  # type: ignore[attr-defined]
    return store


async def test_upsert_by_uid_updates_in_place(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    a = _anomaly(series_id=store._sid)  # type: ignore[attr-defined]
    (first,) = await store.upsert_anomalies([a])
    a.state, a.ended_ns, a.peak_score = "resolved", 400 * S, 9.0
    (again,) = await store.upsert_anomalies([a])
    assert first == again == a.id
    rows = await store.list_anomalies()
    assert len(rows) == 1
    got = rows[0]
    assert (got.state, got.ended_ns, got.peak_score) == ("resolved", 400 * S, 9.0)
    assert got.baseline == {"bucket": "hour_of_week", "p50": 0.4}
    assert got.exemplar_trace_ids == ["ab" * 16]
    assert (await store.get_anomaly(got.uid)) == (await store.get_anomaly(got.id))
    await store.close()


async def test_list_filters(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    sid = store._sid  # type: ignore[attr-defined]
    old = _anomaly("k@1", series_id=sid, started_ns=1 * S, state="resolved", ended_ns=50 * S)
    new = _anomaly("k@2", series_id=sid, started_ns=200 * S)
    await store.upsert_anomalies([old, new])
    assert [a.uid for a in await store.list_anomalies()] == ["k@2", "k@1"]  # newest first
    assert [a.uid for a in await store.list_anomalies(since_ns=100 * S)] == ["k@2"]
    assert [a.uid for a in await store.list_anomalies(state="resolved")] == ["k@1"]
    assert await store.list_anomalies(service="nope") == []
    await store.close()


async def test_incident_link(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    inc = IncidentRecord(uid="pg-pool:connect@100", state="open", started_ns=100 * S,
                         origin_service="pg-pool", origin_key="pg-pool:connect", peak_severity=2,
                         details={"chain": ["api-gateway", "kx-exchange", "pg-pool"]})
    (iid,) = await store.upsert_incidents([inc])
    a = _anomaly(series_id=store._sid, incident_id=iid)  # type: ignore[attr-defined]
    await store.upsert_anomalies([a])
    assert [x.uid for x in await store.list_anomalies(incident_id=iid)] == [a.uid]
    got = await store.get_incident(iid)
    assert got is not None and got.details["chain"][-1] == "pg-pool"
    assert [i.id for i in await store.list_incidents(state="open")] == [iid]
    await store.close()


async def test_feedback_replace_withdraw_and_idempotence(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    (aid,) = await store.upsert_anomalies([_anomaly(series_id=store._sid)])  # type: ignore[attr-defined]
    f1 = await store.add_feedback(aid, "false_positive", "U1", "reaction", now_ns=1)
    assert (await store.add_feedback(aid, "false_positive", "U1", "button", now_ns=2)) == f1
    await store.add_feedback(aid, "confirmed", "U1", "reaction", now_ns=3)  # U1 changes their mind
    await store.add_feedback(aid, "false_positive", "U2", "reaction", now_ns=4)
    active = (await store.feedback_for([aid]))[aid]
    assert sorted((f.user_id, f.verdict) for f in active) == [
        ("U1", "confirmed"), ("U2", "false_positive")]
    assert await store.withdraw_feedback(aid, "false_positive", "U2", now_ns=5)
    assert not await store.withdraw_feedback(aid, "false_positive", "U2", now_ns=6)
    assert await store.anomalies_with_verdict("false_positive") == []
    assert [a.id for a in await store.anomalies_with_verdict("confirmed")] == [aid]
    everything = (await store.feedback_for([aid], include_withdrawn=True))[aid]
    assert len(everything) == 3
    await store.close()


async def test_mutes_and_event_dedupe(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    m = await store.add_mute("pg-pool", until_ns=100, created_by="U1", now_ns=0)
    assert m.covers("pg-pool:connect", 50) and not m.covers("pg-pool:connect", 100)
    assert not m.covers("kx-wallet:get", 50)
    assert [x.target for x in await store.active_mutes(10)] == ["pg-pool"]
    assert await store.lift_mutes("pg-pool", now_ns=20) == 1
    assert await store.active_mutes(30) == []
    assert await store.first_sight("Ev1", 1)
    assert not await store.first_sight("Ev1", 2)
    assert await store.forget_events(before_ns=5) == 1
    await store.close()


async def test_concurrent_transactions_queue_instead_of_failing(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    await asyncio.gather(*(store.first_sight(f"E{i}", i) for i in range(50)),
                         *(store.set_meta(f"k{i}", "v") for i in range(50)))
    (n,) = await store._one("SELECT count(*) FROM slack_events")
    assert n == 50
    await store.close()


async def test_v1_file_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(mig.MIGRATIONS[0])
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO series (name, kind, service, operation, first_seen_ns, last_seen_ns)"
                " VALUES ('a:b', 'span', 'a', 'b', 1, 2)")
    con.execute("INSERT INTO anomalies (series_id, key, service, operation, state, started_ns,"
                " updated_ns, peak_score, peak_severity) VALUES (1, 'a:b', 'a', 'b', 'open',"
                " 1, 1, 3.0, 3)")
    con.commit()
    con.close()
    async with SqliteStore(path) as store:
        (version,) = await store._one("PRAGMA user_version")
        assert version == mig.SCHEMA_VERSION
        (old,) = await store.list_anomalies()
        assert old.uid is None and old.peak_severity == 3  # kept, readable after the upgrade
