"""The outbox against the Slack stand-in with the real slack_sdk client and a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.settings import load_settings
from bot.slack.blocks import AlertView, alert_message
from bot.slack.outbox import OutboxError, client_for
from bot.store import SqliteStore
from tests.slack_outbox_support import (
    T0,
    S,
    alert,
    anomaly,
    new_outbox,
    until,
    web_client,
)
from tests.slack_standin import SlackStandIn, rate_limited, server_error


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "opsbot.db") as opened:
        yield opened


async def test_delivers_records_ts_and_links_the_anomaly(standin: SlackStandIn,
                                                         store: SqliteStore) -> None:
    anomaly_id = await anomaly(store)
    outbox = new_outbox(store)
    assert await outbox.enqueue("alert:1", "chat.postMessage", alert("SEV2 checkout", anomaly_id),
                                now_ns=T0)
    report = await outbox.deliver_due(web_client(standin), T0)
    assert report.sent == ["alert:1"] and not report.retrying and not report.failed
    [message] = standin.posted()
    assert message["text"] == "SEV2 checkout"
    assert message["metadata"]["event_payload"] == {"anomaly_id": anomaly_id,
                                                    "opsbot_outbox": "alert:1"}
    entry = await outbox.entry("alert:1")
    assert entry is not None
    assert (entry.state, entry.result_ts, entry.channel) == ("sent", message["ts"], "C0ALERTS")
    async with store.db.execute("SELECT channel, ts, anomaly_id, kind FROM slack_messages") as c:
        assert list(map(tuple, await c.fetchall())) == [
            ("C0ALERTS", message["ts"], anomaly_id, "alert")]


async def test_duplicate_enqueue_posts_once(standin: SlackStandIn, store: SqliteStore) -> None:
    outbox = new_outbox(store)
    assert await outbox.enqueue("alert:1", "chat.postMessage", alert("first"), now_ns=T0)
    assert not await outbox.enqueue("alert:1", "chat.postMessage", alert("second"), now_ns=T0)
    await outbox.deliver_due(web_client(standin), T0)
    assert not await outbox.enqueue("alert:1", "chat.postMessage", alert("third"), now_ns=T0)
    await outbox.deliver_due(web_client(standin), T0 + 3600 * S)
    assert [m["text"] for m in standin.posted()] == ["first"]
    assert len(standin.calls("chat.postMessage")) == 1


async def test_429_holds_the_method_until_retry_after(standin: SlackStandIn,
                                                      store: SqliteStore) -> None:
    outbox, client = new_outbox(store), web_client(standin)
    standin.script(rate_limited(30), method="chat.postMessage")
    for key in ("a", "b"):
        await outbox.enqueue(key, "chat.postMessage", alert(key), now_ns=T0)
    report = await outbox.deliver_due(client, T0)
    assert (report.retrying, report.sent) == (["a"], [])  # "b" waits: the method is held
    entry = await outbox.entry("a")
    assert entry is not None and entry.attempts == 0  # a 429 is not a failed attempt
    assert T0 + 30 * S <= entry.next_attempt_ns <= T0 + 34 * S
    assert (await outbox.deliver_due(client, T0 + 29 * S)).sent == []
    assert len(standin.calls("chat.postMessage")) == 1
    assert sorted((await outbox.deliver_due(client, T0 + 34 * S)).sent) == ["a", "b"]
    assert [m["text"] for m in standin.posted()] == ["a", "b"]


async def test_run_sends_again_only_after_retry_after(standin: SlackStandIn,
                                                      store: SqliteStore) -> None:
    outbox = new_outbox(store, idle_s=0.05)
    standin.script(rate_limited(1), method="chat.postMessage")
    worker = asyncio.create_task(outbox.run(web_client(standin)))
    try:
        await outbox.enqueue("a", "chat.postMessage", alert("a"))
        await until(lambda: len(standin.posted()) == 1, seconds=5)
    finally:
        worker.cancel()
    first, second = standin.calls("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0


async def test_5xx_is_retried_with_growing_backoff_then_delivered(
        standin: SlackStandIn, store: SqliteStore) -> None:
    outbox, client = new_outbox(store), web_client(standin)
    standin.script(server_error(503), times=3, method="chat.postMessage")
    await outbox.enqueue("a", "chat.postMessage", alert("a"), now_ns=T0)
    now, delays = T0, []
    for _ in range(3):
        assert (await outbox.deliver_due(client, now)).retrying == ["a"]
        entry = await outbox.entry("a")
        assert entry is not None and entry.last_error is not None
        since, reason = entry.last_error.removeprefix("maybe sent since ").split(": ", 1)
        assert T0 <= int(since) < T0 + S and reason.startswith("Slack answered HTTP 503")
        delays.append((entry.next_attempt_ns - now) / S)
        assert (await outbox.deliver_due(client, entry.next_attempt_ns - S // 10)).sent == []
        now = entry.next_attempt_ns
    assert 0.5 <= delays[0] <= 1.1 and 1.0 <= delays[1] <= 2.1 and 2.0 <= delays[2] <= 4.1
    assert (await outbox.deliver_due(client, now)).sent == ["a"]
    assert [m["text"] for m in standin.posted()] == ["a"]
    # Each retry of a possibly-made post first read the channel back for it.
    assert len(standin.calls("conversations.history")) == 3


@pytest.mark.parametrize(("setup", "error", "hint"), [
    ("bad_token", "invalid_auth", "OPSBOT_SLACK_BOT_TOKEN"),
    ("not_member", "not_in_channel", "/invite @opsbot"),
    ("no_channel", "channel_not_found", "OPSBOT_SLACK_CHANNEL"),
])
async def test_permanent_errors_fail_with_a_logged_reason(
        standin: SlackStandIn, store: SqliteStore, caplog: pytest.LogCaptureFixture,
        setup: str, error: str, hint: str) -> None:
    standin.add_channel("quiet", "C0QUIET", member=False)
    channel = {"not_member": "C0QUIET", "no_channel": "#gone"}.get(setup, "C0ALERTS")
    client = web_client(standin, token="xoxb-revoked" if setup == "bad_token" else None)
    outbox = new_outbox(store)
    await outbox.enqueue("a", "chat.postMessage", {"channel": channel, "text": "a"}, now_ns=T0)
    with caplog.at_level(logging.ERROR, logger="bot.slack.outbox"):
        assert (await outbox.deliver_due(client, T0)).failed == ["a"]
    entry = await outbox.entry("a")
    assert entry is not None and entry.state == "failed" and entry.last_error is not None
    assert entry.last_error.startswith(error) and hint in entry.last_error
    assert any(error in r.getMessage() and hint in r.getMessage() for r in caplog.records)
    await outbox.deliver_due(client, T0 + 3600 * S)
    assert len(standin.calls("chat.postMessage")) == 1 and standin.posted("C0QUIET") == []


async def test_updates_fold_into_a_post_not_yet_made(standin: SlackStandIn,
                                                     store: SqliteStore) -> None:
    outbox = new_outbox(store)
    await outbox.enqueue("alert:1", "chat.postMessage", alert("v1"), now_ns=T0)
    await outbox.enqueue("alert:1:u2", "chat.update", {"text": "v2"}, target="alert:1", now_ns=T0)
    await outbox.enqueue("alert:1:u3", "chat.update", {"text": "v3"}, target="alert:1", now_ns=T0)
    report = await outbox.deliver_due(web_client(standin), T0)
    assert report.sent == ["alert:1"]
    assert [m["text"] for m in standin.posted()] == ["v3"] and not standin.calls("chat.update")
    entries = [await outbox.entry(k) for k in ("alert:1", "alert:1:u2", "alert:1:u3")]
    assert {(e.state, e.result_ts) for e in entries if e} == {("sent", "1700000000.000100")}


async def test_newer_update_supersedes_an_older_one(standin: SlackStandIn,
                                                    store: SqliteStore) -> None:
    outbox, client = new_outbox(store), web_client(standin)
    await outbox.enqueue("alert:1", "chat.postMessage", alert("v1"), now_ns=T0)
    await outbox.deliver_due(client, T0)
    standin.script(server_error(503), method="chat.update")
    await outbox.enqueue("alert:1:u2", "chat.update", {"text": "v2"}, target="alert:1", now_ns=T0)
    assert (await outbox.deliver_due(client, T0)).retrying == ["alert:1:u2"]
    await outbox.enqueue("alert:1:u3", "chat.update", {"text": "v3"}, target="alert:1", now_ns=T0)
    report = await outbox.deliver_due(client, T0 + 60 * S)
    assert report.sent == ["alert:1:u3"]  # u2 is superseded (done) without a call
    assert [m["text"] for m in standin.posted()] == ["v3"]
    assert [c.params["text"] for c in standin.calls("chat.update")] == ["v2", "v3"]


async def test_update_of_a_failed_post_fails_too(standin: SlackStandIn,
                                                 store: SqliteStore) -> None:
    outbox = new_outbox(store)
    await outbox.enqueue("alert:1", "chat.postMessage", {"channel": "#gone", "text": "v1"},
                         now_ns=T0)
    await outbox.deliver_due(web_client(standin), T0)
    await outbox.enqueue("alert:1:u2", "chat.update", {"text": "v2"}, target="alert:1", now_ns=T0)
    assert (await outbox.deliver_due(web_client(standin), T0)).failed == ["alert:1:u2"]
    entry = await outbox.entry("alert:1:u2")
    assert entry is not None and "channel_not_found" in (entry.last_error or "")


async def test_reaction_and_thread_reply_use_the_posts_channel_and_ts(
        standin: SlackStandIn, store: SqliteStore) -> None:
    outbox, client = new_outbox(store), web_client(standin)
    await outbox.enqueue("alert:1", "chat.postMessage", alert("v1"), now_ns=T0)
    for key in ("alert:1:eyes", "alert:1:again"):
        await outbox.enqueue(key, "reactions.add", {"name": "eyes"}, target="alert:1", now_ns=T0)
    await outbox.enqueue("alert:1:reply", "chat.postMessage", {"text": "looking"},
                         target="alert:1", now_ns=T0)
    report = await outbox.deliver_due(client, T0)
    assert sorted(report.sent) == ["alert:1", "alert:1:again", "alert:1:eyes", "alert:1:reply"]
    post, reply = standin.posted()
    assert reply["thread_ts"] == post["ts"] and post["reactions"][0]["name"] == "eyes"


@pytest.mark.parametrize(("method", "payload", "target", "needs"), [
    ("files.upload", {"channel": "C0ALERTS"}, None, "does not send"),
    ("chat.update", {"channel": "C0ALERTS", "text": "x"}, None, "target="),
    ("chat.postMessage", {"text": "x"}, None, "needs a channel"),
])
async def test_enqueue_refuses_what_it_cannot_send(store: SqliteStore, method: str,
                                                   payload: dict[str, Any], target: str | None,
                                                   needs: str) -> None:
    with pytest.raises(OutboxError, match=needs):
        await new_outbox(store).enqueue("k", method, payload, target=target, now_ns=T0)  # type: ignore[arg-type]


async def test_an_alert_from_blocks_is_posted_then_edited_in_place(
        standin: SlackStandIn, store: SqliteStore) -> None:
    anomaly_id = await anomaly(store)
    await store.db.execute("INSERT INTO incidents (id, state, started_ns) VALUES (7, 'open', ?)",
                           (T0,))
    started = datetime(2024, 3, 12, 14, 3, tzinfo=UTC)
    view = AlertView(anomaly_id, 2, "checkout", "POST /pay", 286.9, 0.4, 3.1, "Tue 14:00", 7.4,
                     99.9, started, started, incident_id=7)
    outbox, key = new_outbox(store), f"alert:{anomaly_id}"
    await outbox.enqueue(key, "chat.postMessage", {"channel": "#opsbot-alerts",
                                                   **alert_message(view)}, now_ns=T0)
    await outbox.deliver_due(web_client(standin), T0)
    resolved = replace(view, state="resolved", ended=started + timedelta(minutes=30))
    await outbox.enqueue(f"{key}:resolved", "chat.update", {**alert_message(resolved)},
                         target=key, now_ns=T0)
    assert (await outbox.deliver_due(web_client(standin), T0)).sent == [f"{key}:resolved"]
    [message] = standin.posted()
    assert message["blocks"][0]["text"]["text"].endswith("resolved") and "edited" in message
    async with store.db.execute("SELECT anomaly_id, incident_id, kind FROM slack_messages") as c:
        assert list(map(tuple, await c.fetchall())) == [(anomaly_id, 7, "alert")]


async def test_client_for_settings_talks_to_slack_without_its_own_retries(
        standin: SlackStandIn) -> None:
    settings = load_settings(slack_bot_token=standin.token, slack_api_base_url=standin.url)
    client = client_for(settings)
    assert client.retry_handlers == []
    assert (await client.auth_test())["ok"]
    with pytest.raises(OutboxError, match="OPSBOT_SLACK_BOT_TOKEN"):
        client_for(load_settings(slack_bot_token=None))
