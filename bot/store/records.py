"""Anomalies, incidents, feedback and mutes: the records the detector writes and people act on.

The detector loop upserts anomalies and incidents by their stable text id (`uid`,
the detector's own `key@opened_ns`), so replaying after a restart updates rows
instead of adding new ones. The Slack bot, the agent and the CLI read them and add
feedback and mutes. `RecordsMixin` holds the SQL; `SqliteStore` mixes it in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.store._connected import Connected

__all__ = [
    "AnomalyRecord",
    "FeedbackRecord",
    "IncidentRecord",
    "MuteRecord",
    "RecordsMixin",
    "Verdict",
]

Verdict = Literal["false_positive", "confirmed"]
State = Literal["open", "resolved"]


@dataclass(slots=True)
class AnomalyRecord:
    """One anomaly of one key. `id` is 0 until the store assigns one."""

    uid: str
    key: str
    service: str
    operation: str
    state: State
    started_ns: int
    updated_ns: int
    peak_score: float
    peak_severity: int  # 1 (SEV1, worst) .. 5
    series_id: int
    ended_ns: int | None = None
    percentile: float | None = None  # the percentile of historical scores that set the severity
    observed: float | None = None  # in the baseline's units (ms for span keys)
    baseline: dict[str, Any] = field(default_factory=dict)  # snapshot: bucket, p50, p95, p99, ...
    exemplar_trace_ids: list[str] = field(default_factory=list)
    incident_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(slots=True)
class IncidentRecord:
    """Anomalies that overlap in time and are connected in the call graph."""

    uid: str
    state: State
    started_ns: int
    origin_service: str | None = None
    origin_key: str | None = None
    peak_severity: int | None = None
    ended_ns: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # chain, member uids, ...
    id: int = 0


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    id: int
    anomaly_id: int
    verdict: Verdict
    user_id: str
    source: str  # reaction | button | agent | cli
    reason: str
    created_ns: int
    withdrawn_ns: int | None


@dataclass(frozen=True, slots=True)
class MuteRecord:
    id: int
    target: str  # 'service:operation' or 'service'
    until_ns: int
    created_by: str
    created_ns: int
    lifted_ns: int | None

    def covers(self, key: str, now_ns: int) -> bool:
        """Whether this mute silences `key` at `now_ns`."""
        if self.lifted_ns is not None or now_ns >= self.until_ns:
            return False
        return key == self.target or key.partition(":")[0] == self.target


_ANOMALY_COLS = (
    "uid, series_id, key, service, operation, state, started_ns, updated_ns, ended_ns,"
    " peak_score, peak_severity, percentile, observed, baseline, exemplar_trace_ids,"
    " incident_id, details"
)
_INCIDENT_COLS = (
    "uid, state, started_ns, ended_ns, origin_service, origin_key, peak_severity, details"
)
_FEEDBACK_COLS = "id, anomaly_id, verdict, user_id, source, reason, created_ns, withdrawn_ns"
_MUTE_COLS = "id, target, until_ns, created_by, created_ns, lifted_ns"


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _anomaly_params(a: AnomalyRecord) -> tuple[object, ...]:
    return (a.uid, a.series_id, a.key, a.service, a.operation, a.state, a.started_ns,
            a.updated_ns, a.ended_ns, float(a.peak_score), int(a.peak_severity), a.percentile,
            a.observed, _dump(a.baseline), _dump(list(a.exemplar_trace_ids)), a.incident_id,
            _dump(a.details))


def _anomaly_from_row(r: sqlite3.Row | Sequence[Any]) -> AnomalyRecord:
    (rid, uid, series_id, key, service, operation, state, started, updated, ended, peak_score,
     peak_sev, pct, observed, baseline, exemplars, incident_id, details) = tuple(r)
    return AnomalyRecord(
        uid=uid, key=key, service=service, operation=operation, state=state,
        started_ns=started, updated_ns=updated, peak_score=peak_score, peak_severity=peak_sev,
        series_id=series_id, ended_ns=ended, percentile=pct, observed=observed,
        baseline=json.loads(baseline), exemplar_trace_ids=json.loads(exemplars),
        incident_id=incident_id, details=json.loads(details), id=rid,
    )


def _incident_from_row(r: sqlite3.Row | Sequence[Any]) -> IncidentRecord:
    rid, uid, state, started, ended, origin_service, origin_key, peak_sev, details = tuple(r)
    return IncidentRecord(uid=uid, state=state, started_ns=started, ended_ns=ended,
                          origin_service=origin_service, origin_key=origin_key,
                          peak_severity=peak_sev, details=json.loads(details), id=rid)


class RecordsMixin(Connected):
    """Record SQL over the store's connection; every write is one transaction."""

    # -- anomalies --

    async def upsert_anomalies(self, records: Sequence[AnomalyRecord]) -> list[int]:
        """Insert or update by `uid`; sets and returns each record's `id`."""
        ids: list[int] = []
        async with self.transaction() as db:
            for a in records:
                updates = ", ".join(
                    f"{c} = excluded.{c}" for c in _ANOMALY_COLS.replace(" ", "").split(",")[1:]
                )
                async with db.execute(
                    f"INSERT INTO anomalies ({_ANOMALY_COLS}) VALUES ({','.join('?' * 17)})"
                    f" ON CONFLICT(uid) DO UPDATE SET {updates} RETURNING id",
                    _anomaly_params(a),
                ) as cur:
                    row = await cur.fetchone()
                a.id = int(row[0])  # type: ignore[index]
                ids.append(a.id)
        return ids

    async def get_anomaly(self, anomaly_id: int | str) -> AnomalyRecord | None:
        """By numeric id or by uid."""
        col = "id" if isinstance(anomaly_id, int) else "uid"
        rows = await self._all(
            f"SELECT id, {_ANOMALY_COLS} FROM anomalies WHERE {col} = ?", (anomaly_id,)
        )
        return _anomaly_from_row(rows[0]) if rows else None

    async def list_anomalies(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        state: State | None = None,
        service: str | None = None,
        key: str | None = None,
        incident_id: int | None = None,
        limit: int | None = None,
    ) -> list[AnomalyRecord]:
        """Newest first. `since_ns` keeps anomalies still open or ended at/after it."""
        where: list[str] = []
        params: list[object] = []
        if since_ns is not None:
            where.append("(ended_ns IS NULL OR ended_ns >= ?)")
            params.append(since_ns)
        if until_ns is not None:
            where.append("started_ns <= ?")
            params.append(until_ns)
        for col, value in (("state", state), ("service", service), ("key", key),
                           ("incident_id", incident_id)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        sql = f"SELECT id, {_ANOMALY_COLS} FROM anomalies"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_ns DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_anomaly_from_row(r) for r in await self._all(sql, params)]

    # -- incidents --

    async def upsert_incidents(self, records: Sequence[IncidentRecord]) -> list[int]:
        ids: list[int] = []
        async with self.transaction() as db:
            for i in records:
                async with db.execute(
                    f"INSERT INTO incidents ({_INCIDENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(uid) DO UPDATE SET state = excluded.state,"
                    " started_ns = excluded.started_ns, ended_ns = excluded.ended_ns,"
                    " origin_service = excluded.origin_service,"
                    " origin_key = excluded.origin_key, peak_severity = excluded.peak_severity,"
                    " details = excluded.details RETURNING id",
                    (i.uid, i.state, i.started_ns, i.ended_ns, i.origin_service, i.origin_key,
                     i.peak_severity, _dump(i.details)),
                ) as cur:
                    row = await cur.fetchone()
                i.id = int(row[0])  # type: ignore[index]
                ids.append(i.id)
        return ids

    async def get_incident(self, incident_id: int | str) -> IncidentRecord | None:
        col = "id" if isinstance(incident_id, int) else "uid"
        rows = await self._all(
            f"SELECT id, {_INCIDENT_COLS} FROM incidents WHERE {col} = ?", (incident_id,)
        )
        return _incident_from_row(rows[0]) if rows else None

    async def list_incidents(
        self, *, state: State | None = None, since_ns: int | None = None
    ) -> list[IncidentRecord]:
        where: list[str] = []
        params: list[object] = []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if since_ns is not None:
            where.append("(ended_ns IS NULL OR ended_ns >= ?)")
            params.append(since_ns)
        sql = f"SELECT id, {_INCIDENT_COLS} FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_incident_from_row(r) for r in await self._all(sql + " ORDER BY started_ns DESC",
                                                              params)]

    # -- feedback --

    async def add_feedback(
        self, anomaly_id: int, verdict: Verdict, user_id: str, source: str, now_ns: int,
        reason: str = "",
    ) -> FeedbackRecord:
        """Record a verdict; the same user's active verdict on the anomaly is replaced.

        Idempotent: a repeated identical verdict returns the active row unchanged
        (Slack may deliver a reaction twice; a button and a reaction may agree).
        """
        async with self.transaction() as db:
            async with db.execute(
                f"SELECT {_FEEDBACK_COLS} FROM feedback WHERE anomaly_id = ? AND user_id = ?"
                " AND withdrawn_ns IS NULL", (anomaly_id, user_id)) as cur:
                active = [FeedbackRecord(*r) for r in await cur.fetchall()]
            for f in active:
                if f.verdict == verdict:
                    return f
            await db.execute(
                "UPDATE feedback SET withdrawn_ns = ? WHERE anomaly_id = ? AND user_id = ?"
                " AND withdrawn_ns IS NULL", (now_ns, anomaly_id, user_id))
            async with db.execute(
                "INSERT INTO feedback (anomaly_id, verdict, user_id, source, reason, created_ns)"
                f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {_FEEDBACK_COLS}",
                (anomaly_id, verdict, user_id, source, reason, now_ns)) as cur:
                row = await cur.fetchone()
        return FeedbackRecord(*row)  # type: ignore[misc]

    async def withdraw_feedback(
        self, anomaly_id: int, verdict: Verdict, user_id: str, now_ns: int
    ) -> bool:
        """Withdraw the user's active verdict (a removed reaction). False when there was none."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE feedback SET withdrawn_ns = ? WHERE anomaly_id = ? AND verdict = ?"
                " AND user_id = ? AND withdrawn_ns IS NULL",
                (now_ns, anomaly_id, verdict, user_id))
            return cur.rowcount > 0

    async def feedback_for(
        self, anomaly_ids: Sequence[int], *, include_withdrawn: bool = False
    ) -> dict[int, list[FeedbackRecord]]:
        out: dict[int, list[FeedbackRecord]] = {i: [] for i in anomaly_ids}
        for start in range(0, len(anomaly_ids), 500):
            chunk = list(anomaly_ids[start:start + 500])
            sql = (f"SELECT {_FEEDBACK_COLS} FROM feedback WHERE anomaly_id IN"
                   f" ({','.join('?' * len(chunk))})")
            if not include_withdrawn:
                sql += " AND withdrawn_ns IS NULL"
            for r in await self._all(sql + " ORDER BY created_ns", chunk):
                out[r[1]].append(FeedbackRecord(*r))
        return out

    async def anomalies_with_verdict(
        self, verdict: Verdict, *, since_ns: int | None = None
    ) -> list[AnomalyRecord]:
        """Anomalies with an active verdict (the suppression tier's false positives)."""
        cols = ", ".join("a." + c.strip() for c in _ANOMALY_COLS.split(","))
        sql = (f"SELECT DISTINCT a.id, {cols}"
               " FROM anomalies a JOIN feedback f ON f.anomaly_id = a.id"
               " WHERE f.verdict = ? AND f.withdrawn_ns IS NULL")
        params: list[object] = [verdict]
        if since_ns is not None:
            sql += " AND a.started_ns >= ?"
            params.append(since_ns)
        return [_anomaly_from_row(r) for r in await self._all(sql + " ORDER BY a.started_ns",
                                                              params)]

    # -- mutes --

    async def add_mute(
        self, target: str, until_ns: int, created_by: str, now_ns: int
    ) -> MuteRecord:
        async with self.transaction() as db, db.execute(
            "INSERT INTO mutes (target, until_ns, created_by, created_ns) VALUES (?, ?, ?, ?)"
            f" RETURNING {_MUTE_COLS}", (target, until_ns, created_by, now_ns)) as cur:
            row = await cur.fetchone()
        return MuteRecord(*row)  # type: ignore[misc]

    async def lift_mutes(self, target: str, now_ns: int) -> int:
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE mutes SET lifted_ns = ? WHERE target = ? AND lifted_ns IS NULL"
                " AND until_ns > ?", (now_ns, target, now_ns))
            return cur.rowcount

    async def active_mutes(self, now_ns: int) -> list[MuteRecord]:
        rows = await self._all(
            f"SELECT {_MUTE_COLS} FROM mutes WHERE lifted_ns IS NULL AND until_ns > ?"
            " ORDER BY until_ns", (now_ns,))
        return [MuteRecord(*r) for r in rows]

    # -- Slack events seen --

    async def first_sight(self, event_id: str, now_ns: int) -> bool:
        """True the first time an event id is seen; False for Slack's retries of it."""
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO slack_events (event_id, received_ns) VALUES (?, ?)"
                " ON CONFLICT(event_id) DO NOTHING", (event_id, now_ns))
            return cur.rowcount == 1

    async def forget_events(self, before_ns: int) -> int:
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM slack_events WHERE received_ns < ?", (before_ns,))
            return cur.rowcount

