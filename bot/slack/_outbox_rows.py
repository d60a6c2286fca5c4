"""SQL over the `outbox` table: insert, claim the next due row, record its outcome.

Each function is one short `BEGIN IMMEDIATE` transaction on the store's connection;
no network call ever happens inside one. The `payload` column holds JSON
`{"args": <Slack arguments>, "target": <dedupe key or null>, "sent": {"channel", "ts"}}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = ["OUTBOX_EVENT", "Claim", "OutboxEntry", "OutboxRows", "with_outbox_key"]

OUTBOX_EVENT = "opsbot_outbox"  # event_payload key that carries the dedupe key on a post
# Schema v1 allows only pending/sent/failed, so an attempt that may have reached
# Slack is a pending row whose last_error starts with one of these, then "<ns>".
_SENDING, _MAYBE = "sending since ", "maybe sent since "
_CONTENT = ("text", "blocks", "attachments", "metadata")
_TARGET_ARGS = {"chat.update": ("channel", "ts"), "reactions.add": ("channel", "timestamp"),
                "chat.postMessage": ("channel", "thread_ts"),
                "chat.postEphemeral": ("channel", "thread_ts")}
_CLAIMABLE = (
    " FROM outbox o LEFT JOIN outbox t ON t.dedupe_key = json_extract(o.payload, '$.target')"
    " WHERE o.state = 'pending' AND o.next_attempt_ns <= ? AND o.method NOT IN ({held})"
    " AND (json_extract(o.payload, '$.target') IS NULL OR t.state IS NOT 'pending')"
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox row as callers and tests see it."""

    dedupe_key: str
    method: str
    state: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    result_ts: str | None
    channel: str | None
    next_attempt_ns: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A row taken for one attempt; `args` already carry the target's channel/ts."""

    row_id: int
    dedupe_key: str
    method: str
    args: dict[str, Any]
    attempts: int  # including this one
    since_ns: int  # when the first attempt that may have reached Slack began
    recovering: bool  # an earlier attempt may have reached Slack
    folded_ids: tuple[int, ...] = ()
    blocked: str | None = None  # the target failed or was never queued


def with_outbox_key(args: dict[str, Any], dedupe_key: str) -> dict[str, Any]:
    """Tag a post's message metadata with its dedupe key, so it can be found again."""
    meta = dict(args.get("metadata") or {"event_type": OUTBOX_EVENT})
    meta["event_payload"] = {**(meta.get("event_payload") or {}), OUTBOX_EVENT: dedupe_key}
    return {**args, "metadata": meta}


def _since(last_error: str | None) -> int | None:
    for prefix in (_SENDING, _MAYBE):
        if last_error and last_error.startswith(prefix):
            return int(last_error[len(prefix):].split(":", 1)[0])
    return None


class OutboxRows:
    """The outbox table behind one aiosqlite connection (shared with the store)."""

    def __init__(
        self,
        connection: Callable[[], aiosqlite.Connection],
        transaction: Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]],
    ) -> None:
        self._connection = connection
        self._tx = transaction  # the store's: one lock for every writer on the connection

    async def insert(self, key: str, method: str, payload: dict[str, Any], now_ns: int) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO outbox (dedupe_key, method, payload, state, next_attempt_ns,"
                " created_ns) VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT(dedupe_key) DO NOTHING",
                (key, method, json.dumps(payload, separators=(",", ":")), now_ns, now_ns))
            return cur.rowcount == 1

    async def entry(self, key: str) -> OutboxEntry | None:
        async with self._connection().execute(
            "SELECT dedupe_key, method, state, attempts, last_error, result_ts,"
            " json_extract(payload, '$.sent.channel'), next_attempt_ns FROM outbox"
            " WHERE dedupe_key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return OutboxEntry(*row) if row else None

    async def next_due_ns(self, held: Collection[str]) -> int | None:
        sql = "SELECT min(o.next_attempt_ns)" + _CLAIMABLE.format(held=_marks(held))
        async with self._connection().execute(sql, (2**62, *held)) as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def known_channel_id(self, name: str) -> str | None:
        """The id Slack returned for a channel name on an earlier successful post."""
        async with self._connection().execute(
            "SELECT json_extract(payload, '$.sent.channel') FROM outbox WHERE state = 'sent'"
            " AND method = 'chat.postMessage' AND json_extract(payload, '$.args.channel') = ?"
            " ORDER BY id DESC LIMIT 1", (name,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row and row[0] else None

    async def release_claims(self, now_ns: int) -> int:
        """Make rows claimed by a worker that is gone due now; they will be recovered."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE outbox SET next_attempt_ns = min(next_attempt_ns, ?)"
                " WHERE state = 'pending' AND last_error LIKE ?", (now_ns, _SENDING + "%"))
            return cur.rowcount

    async def claim(self, now_ns: int, lease_ns: int, held: Collection[str]) -> Claim | None:
        """Take the next due row, if any, and mark it as being sent until `now + lease`."""
        async with self._tx() as db:
            while True:
                async with db.execute(
                    "SELECT o.id, o.dedupe_key, o.method, o.payload, o.attempts, o.last_error,"
                    " t.state, t.payload, t.last_error" + _CLAIMABLE.format(held=_marks(held))
                    + " ORDER BY o.id LIMIT 1", (now_ns, *held)) as cur:
                    row = await cur.fetchone()
                if row is None:
                    return None
                claim = await _prepare(db, tuple(row), now_ns)
                if claim is not None:
                    break
            await db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_ns = ?, last_error = ? WHERE id = ?",
                (claim.attempts, now_ns + lease_ns, f"{_SENDING}{claim.since_ns}", claim.row_id))
            return claim

    async def mark_sent(self, claim: Claim, channel: str, ts: str, now_ns: int,
                        fold: bool) -> None:
        sent = json.dumps({"channel": channel, "ts": ts})
        ids = [claim.row_id, *(claim.folded_ids if fold else ())]
        async with self._tx() as db:
            await db.execute(
                "UPDATE outbox SET state = 'sent', result_ts = ?, sent_ns = ?, last_error = NULL,"
                f" payload = json_set(payload, '$.sent', json(?)) WHERE id IN ({_marks(ids)})"
                " AND (id = ? OR state = 'pending')", (ts, now_ns, sent, *ids, claim.row_id))
            if claim.method == "chat.postMessage":
                await _link_message(db, claim.args, channel, ts, now_ns)

    async def mark_retry(self, claim: Claim, next_ns: int, error: str, refund: bool) -> None:
        async with self._tx() as db:
            await db.execute(
                "UPDATE outbox SET next_attempt_ns = ?, last_error = ?,"
                " attempts = attempts - ? WHERE id = ?",
                (next_ns, error, int(refund), claim.row_id))

    async def mark_failed(self, claim: Claim, reason: str) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?",
                             (reason, claim.row_id))


def _marks(values: Sequence[object] | Collection[object]) -> str:
    return ",".join("?" * len(values))


async def _prepare(db: aiosqlite.Connection, row: tuple[Any, ...], now_ns: int) -> Claim | None:
    """Resolve the target, drop superseded updates (None), fold pending updates into a post."""
    row_id, key, method, payload_json, attempts, last_error, t_state, t_payload, t_error = row
    payload = json.loads(payload_json)
    args, target, blocked = dict(payload["args"]), payload.get("target"), None
    if target is not None and t_state is None:
        blocked = f"its target {target!r} was never queued"
    elif target is not None and t_state == "failed":
        blocked = f"its target {target!r} failed: {t_error}"
    elif target is not None:
        sent = json.loads(t_payload)["sent"]
        channel_arg, ts_arg = _TARGET_ARGS[method]
        args.update({channel_arg: sent["channel"], ts_arg: sent["ts"]})
        if method == "chat.update" and await _superseded(db, row_id, target, sent, now_ns):
            return None
    folded: tuple[int, ...] = ()
    if method == "chat.postMessage":
        args, folded = await _fold_updates(db, key, args)
    since = _since(last_error)
    return Claim(row_id, key, method, args, attempts + 1, since if since is not None else now_ns,
                 since is not None, folded, blocked)


async def _superseded(db: aiosqlite.Connection, row_id: int, target: str,
                      sent: dict[str, str], now_ns: int) -> bool:
    """An older update whose content a newer one replaces is done without a call."""
    async with db.execute(
        "SELECT 1 FROM outbox WHERE method = 'chat.update' AND state != 'failed' AND id > ?"
        " AND json_extract(payload, '$.target') = ? LIMIT 1", (row_id, target)) as cur:
        if await cur.fetchone() is None:
            return False
    await db.execute(
        "UPDATE outbox SET state = 'sent', result_ts = ?, sent_ns = ?, last_error = NULL,"
        " payload = json_set(payload, '$.sent', json(?)) WHERE id = ?",
        (sent["ts"], now_ns, json.dumps(sent), row_id))
    return True


async def _fold_updates(db: aiosqlite.Connection, key: str,
                        args: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
    """A post not yet made carries the content of the newest update queued for it."""
    async with db.execute(
        "SELECT id, payload FROM outbox WHERE state = 'pending' AND method = 'chat.update'"
        " AND json_extract(payload, '$.target') = ? ORDER BY id", (key,)) as cur:
        rows = list(await cur.fetchall())
    if not rows:
        return args, ()
    newest = json.loads(rows[-1][1])["args"]
    merged = {**args, **{k: newest[k] for k in _CONTENT if k in newest}}
    return with_outbox_key(merged, key), tuple(r[0] for r in rows)


async def _link_message(db: aiosqlite.Connection, args: dict[str, Any], channel: str, ts: str,
                        now_ns: int) -> None:
    """Write the slack_messages row; ids that do not (yet) exist are stored as NULL."""
    link = (args.get("metadata") or {}).get("event_payload") or {}
    anomaly_id, incident_id = link.get("anomaly_id"), link.get("incident_id")
    kind = link.get("kind") or ("alert" if anomaly_id is not None
                                else "incident" if incident_id is not None else None)
    if kind is None:
        return
    await db.execute(
        "INSERT OR IGNORE INTO slack_messages (channel, ts, thread_ts, anomaly_id, incident_id,"
        " kind, created_ns) VALUES (?, ?, ?, (SELECT id FROM anomalies WHERE id = ?),"
        " (SELECT id FROM incidents WHERE id = ?), ?, ?)",
        (channel, ts, args.get("thread_ts"), anomaly_id, incident_id, kind, now_ns))
