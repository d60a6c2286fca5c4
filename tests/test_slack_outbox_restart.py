"""The outbox across restarts and crashes: nothing queued is lost, no post is made twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import SqliteStore
from tests.slack_outbox_support import (
    LEASE,
    T0,
    CrashAfterSlackAcceptsClient,
    CrashBeforeSlackSeesClient,
    S,
    SimulatedCrash,
    alert,
    anomaly,
    new_outbox,
    run_for,
    until,
    web_client,
)
from tests.slack_standin import SlackStandIn, rate_limited, server_error


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "opsbot.db") as opened:
        yield opened


async def test_restart_during_outage_posts_each_message_exactly_once(
        standin: SlackStandIn, tmp_path: Path) -> None:
    keys = [f"alert:{i}" for i in range(3)]
    async with SqliteStore(tmp_path / "o.db") as store:
        outbox = new_outbox(store, base_backoff_s=0.01, max_backoff_s=0.05, idle_s=0.02)
        for key in keys:
            await outbox.enqueue(key, "chat.postMessage", alert(key))
        standin.stop()  # Slack unreachable: connection refused
        try:
            await run_for(outbox, web_client(standin), seconds=0.3)
        finally:
            standin.start()
        standin.script(server_error(502), times=1000, method="chat.postMessage")
        await run_for(outbox, web_client(standin), seconds=0.3)  # 5xx: maybe sent, never sure
        assert standin.posted() == [] and len(standin.calls("chat.postMessage")) > 3
    standin.reset()  # Slack is back; the process restarts on the same file
    async with SqliteStore(tmp_path / "o.db") as store:
        outbox = new_outbox(store, idle_s=0.02)
        worker = asyncio.create_task(outbox.run(web_client(standin)))
        try:
            await until(lambda: len(standin.posted()) == 3, seconds=5)
            await asyncio.sleep(0.2)  # room for a duplicate to show up
        finally:
            worker.cancel()
        states = [(await outbox.entry(k)).state for k in keys]  # type: ignore[union-attr]
    assert sorted(m["text"] for m in standin.posted()) == keys
    assert states == ["sent"] * 3


async def test_post_accepted_before_a_crash_is_found_not_reposted(
        standin: SlackStandIn, tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with SqliteStore(path) as store:
        anomaly_id = await anomaly(store)
        outbox = new_outbox(store)
        await outbox.enqueue("alert:1", "chat.postMessage", alert("a", anomaly_id), now_ns=T0)
        with pytest.raises(SimulatedCrash):
            await outbox.deliver_due(web_client(standin, CrashAfterSlackAcceptsClient), T0)
    [posted] = standin.posted()
    async with SqliteStore(path) as store:
        outbox = new_outbox(store)
        assert (await outbox.deliver_due(web_client(standin), T0 + S)).sent == []  # leased
        assert (await outbox.deliver_due(web_client(standin), T0 + LEASE + S)).sent == ["alert:1"]
        entry = await outbox.entry("alert:1")
        async with store.db.execute("SELECT ts, anomaly_id FROM slack_messages") as cur:
            links = list(map(tuple, await cur.fetchall()))
    assert len(standin.calls("chat.postMessage")) == 1 and len(standin.posted()) == 1
    assert entry is not None and entry.result_ts == posted["ts"]
    assert links == [(posted["ts"], anomaly_id)]


async def test_crash_before_the_request_posts_once_after_restart(
        standin: SlackStandIn, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "o.db") as store:
        outbox = new_outbox(store)
        await outbox.enqueue("alert:1", "chat.postMessage", alert("a"), now_ns=T0)
        with pytest.raises(SimulatedCrash):
            await outbox.deliver_due(web_client(standin, CrashBeforeSlackSeesClient), T0)
    async with SqliteStore(tmp_path / "o.db") as store:
        assert (await new_outbox(store).deliver_due(web_client(standin), T0 + LEASE + S)).sent == [
            "alert:1"]
    assert [m["text"] for m in standin.posted()] == ["a"]


async def test_unknown_outcome_that_cannot_be_checked_fails_instead_of_reposting(
        standin: SlackStandIn, store: SqliteStore) -> None:
    outbox, client = new_outbox(store), web_client(standin)
    standin.script(server_error(500), method="chat.postMessage")
    standin.script(rate_limited(5), method="conversations.history")
    await outbox.enqueue("a", "chat.postMessage", {"channel": "C0ALERTS", "text": "a"},
                         now_ns=T0)
    await outbox.deliver_due(client, T0)  # 500: maybe sent
    standin.channels["C0ALERTS"]["is_member"] = False  # the bot was removed meanwhile
    assert (await outbox.deliver_due(client, T0 + 10 * S)).retrying == ["a"]  # 429 on history
    assert (await outbox.deliver_due(client, T0 + 20 * S)).failed == ["a"]
    entry = await outbox.entry("a")
    assert entry is not None and entry.last_error is not None
    assert entry.last_error.startswith("outcome unknown") and "not_in_channel" in entry.last_error


async def test_update_waits_for_a_post_in_flight(standin: SlackStandIn, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "o.db") as store:
        outbox = new_outbox(store)
        await outbox.enqueue("alert:1", "chat.postMessage", alert("v1"), now_ns=T0)
        with pytest.raises(SimulatedCrash):
            await outbox.deliver_due(web_client(standin, CrashAfterSlackAcceptsClient), T0)
    async with SqliteStore(tmp_path / "o.db") as store:
        outbox = new_outbox(store)
        await outbox.enqueue("alert:1:u2", "chat.update", {"text": "v2"}, target="alert:1",
                             now_ns=T0)
        assert (await outbox.deliver_due(web_client(standin), T0 + S)).sent == []
        report = await outbox.deliver_due(web_client(standin), T0 + LEASE + S)
    assert report.sent == ["alert:1", "alert:1:u2"]
    assert [m["text"] for m in standin.posted()] == ["v2"]
    assert len(standin.calls("chat.postMessage")) == len(standin.calls("chat.update")) == 1


async def test_thread_reply_accepted_before_a_crash_is_found_in_the_thread(
        standin: SlackStandIn, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "o.db") as store:
        outbox = new_outbox(store)
        await outbox.enqueue("alert:1", "chat.postMessage", alert("v1"), now_ns=T0)
        await outbox.deliver_due(web_client(standin), T0)
        await outbox.enqueue("alert:1:reply", "chat.postMessage", {"text": "root cause: db"},
                             target="alert:1", now_ns=T0)
        with pytest.raises(SimulatedCrash):
            await outbox.deliver_due(web_client(standin, CrashAfterSlackAcceptsClient), T0)
    async with SqliteStore(tmp_path / "o.db") as store:
        report = await new_outbox(store).deliver_due(web_client(standin), T0 + LEASE + S)
    assert report.sent == ["alert:1:reply"]
    assert len(standin.calls("conversations.replies")) == 1
    assert [m["text"] for m in standin.posted()] == ["v1", "root cause: db"]
