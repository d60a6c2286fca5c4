"""Slack-side records: which Slack message stands for which anomaly or incident, and acks.

The outbox writes `slack_messages` rows when a post is sent; the bot reads them back to
find the anomaly behind a reaction, a button or a thread question. Acknowledgements have
no table of their own: they live in `meta` under `slack.ack.<anomaly id>` (one per user).
So does the alert-storm state: `slack.storm.<channel>` (the rate cap's recent posts and
digest) and `slack.capped.<uid>` (an alert folded into a digest, never to be posted), and
each chart still to upload: `slack.chart.<post dedupe key>`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.store._connected import Connected

__all__ = ["AckRecord", "ChartJob", "SlackMessageRef", "SlackRecordsMixin"]

_MSG_COLS = "channel, ts, thread_ts, anomaly_id, incident_id, kind, created_ns"
_STORM, _CAPPED, _CHART = "slack.storm.", "slack.capped.", "slack.chart."
_UPSERT_META = ("INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value")


@dataclass(frozen=True, slots=True)
class SlackMessageRef:
    """One posted message and what it is about."""

    channel: str  # Slack's channel id (C..., G..., D...)
    ts: str
    thread_ts: str | None
    anomaly_id: int | None
    incident_id: int | None
    kind: str  # alert | incident | digest | answer
    created_ns: int


@dataclass(frozen=True, slots=True)
class AckRecord:
    user_id: str
    created_ns: int


@dataclass(frozen=True, slots=True)
class ChartJob:
    """A chart to upload into the thread of the post `post_key` once that post is sent."""

    post_key: str
    anomaly_id: int
    created_ns: int


def _prefixed(prefix: str) -> tuple[str, str]:
    """Bounds of the meta keys starting with `prefix` (which ends in '.')."""
    return prefix, prefix[:-1] + chr(ord(".") + 1)


def _ref(row: sqlite3.Row | Sequence[object]) -> SlackMessageRef:
    channel, ts, thread_ts, anomaly_id, incident_id, kind, created = tuple(row)
    return SlackMessageRef(str(channel), str(ts), None if thread_ts is None else str(thread_ts),
                           None if anomaly_id is None else int(str(anomaly_id)),
                           None if incident_id is None else int(str(incident_id)),
                           str(kind), int(str(created)))


class SlackRecordsMixin(Connected):
    """SQL over `slack_messages` and the ack entries in `meta`."""

    async def slack_message_at(self, channel: str, ts: str) -> SlackMessageRef | None:
        """The message at (channel, ts), e.g. the item of a reaction or a thread's parent."""
        async with self.db.execute(
            f"SELECT {_MSG_COLS} FROM slack_messages WHERE channel = ? AND ts = ?",
            (channel, ts)) as cur:
            row = await cur.fetchone()
        return _ref(row) if row else None

    async def slack_message_for(self, *, anomaly_id: int | None = None,
                                incident_id: int | None = None,
                                kind: str | None = None) -> SlackMessageRef | None:
        """The first message posted about an anomaly or an incident (its alert or parent)."""
        where: list[str] = ["kind != 'answer'"]
        params: list[object] = []
        for col, value in (("anomaly_id", anomaly_id), ("incident_id", incident_id),
                           ("kind", kind)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        async with self.db.execute(
            f"SELECT {_MSG_COLS} FROM slack_messages WHERE {' AND '.join(where)}"
            " ORDER BY id LIMIT 1", params) as cur:
            row = await cur.fetchone()
        return _ref(row) if row else None

    async def link_slack_message(self, ref: SlackMessageRef) -> None:
        """Record a message sent outside the outbox's post path (no-op when already known)."""
        async with self.transaction() as db:
            await db.execute(
                f"INSERT OR IGNORE INTO slack_messages ({_MSG_COLS}) VALUES (?, ?, ?,"
                " (SELECT id FROM anomalies WHERE id = ?), (SELECT id FROM incidents WHERE id = ?),"
                " ?, ?)", (ref.channel, ref.ts, ref.thread_ts, ref.anomaly_id, ref.incident_id,
                           ref.kind, ref.created_ns))

    # -- acknowledgements --

    async def acknowledge(self, anomaly_id: int, user_id: str, now_ns: int) -> bool:
        """Record that `user_id` acknowledged the anomaly; False when they already had."""
        key = f"slack.ack.{int(anomaly_id)}"
        async with self.transaction() as db:
            async with db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
                row = await cur.fetchone()
            acks: dict[str, int] = json.loads(row[0]) if row else {}
            if user_id in acks:
                return False
            acks[user_id] = now_ns
            await db.execute(_UPSERT_META, (key, json.dumps(acks, sort_keys=True)))
        return True

    async def acks_for(self, anomaly_id: int) -> list[AckRecord]:
        async with self.db.execute("SELECT value FROM meta WHERE key = ?",
                                   (f"slack.ack.{int(anomaly_id)}",)) as cur:
            row = await cur.fetchone()
        acks: dict[str, int] = json.loads(row[0]) if row else {}
        return sorted((AckRecord(u, t) for u, t in acks.items()), key=lambda a: a.created_ns)

    # -- alert-storm state --

    async def storm_state(self, channel: str) -> dict[str, Any] | None:
        """What `save_storm_state` last stored for the channel (None: nothing yet)."""
        async with self.db.execute("SELECT value FROM meta WHERE key = ?",
                                   (_STORM + channel,)) as cur:
            row = await cur.fetchone()
        state: dict[str, Any] | None = json.loads(row[0]) if row else None
        return state

    async def save_storm_state(self, channel: str, state: dict[str, Any],
                               capped: Iterable[str] = (), now_ns: int = 0) -> None:
        """Store the channel's rate-cap state and mark `capped` uids folded, in one
        transaction (a restart then neither forgets the digest nor posts those alerts)."""
        async with self.transaction() as db:
            await db.execute(_UPSERT_META, (_STORM + channel, json.dumps(state, sort_keys=True)))
            await db.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [(_CAPPED + uid, str(int(now_ns))) for uid in capped])

    async def is_capped(self, uid: str) -> bool:
        """Whether the alert (or incident) `uid` was folded into a storm digest."""
        async with self.db.execute("SELECT 1 FROM meta WHERE key = ?", (_CAPPED + uid,)) as cur:
            return await cur.fetchone() is not None

    async def forget_capped(self, before_ns: int) -> int:
        """Drop fold marks made before `before_ns` (their anomalies ended long ago)."""
        async with self.transaction() as db:
            cur = await db.execute(
                "DELETE FROM meta WHERE key >= ? AND key < ? AND CAST(value AS INTEGER) < ?",
                (*_prefixed(_CAPPED), before_ns))
            return cur.rowcount

    # -- charts still to upload --

    async def add_chart_job(self, post_key: str, anomaly_id: int, now_ns: int) -> None:
        """Remember a chart to upload (kept until `finish_chart_job`, across restarts)."""
        value = json.dumps({"anomaly_id": int(anomaly_id), "created_ns": int(now_ns)})
        async with self.transaction() as db:
            await db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                             (_CHART + post_key, value))

    async def chart_jobs(self) -> list[ChartJob]:
        """Charts not yet uploaded (nor given up), oldest first."""
        async with self.db.execute("SELECT key, value FROM meta WHERE key >= ? AND key < ?",
                                   _prefixed(_CHART)) as cur:
            rows = list(await cur.fetchall())
        jobs = [ChartJob(str(key).removeprefix(_CHART), int(v["anomaly_id"]), int(v["created_ns"]))
                for key, v in ((k, json.loads(value)) for k, value in rows)]
        return sorted(jobs, key=lambda j: (j.created_ns, j.post_key))

    async def finish_chart_job(self, post_key: str) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM meta WHERE key = ?", (_CHART + post_key,))
