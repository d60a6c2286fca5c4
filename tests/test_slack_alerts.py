"""Alerts from persisted records: one message, edited in place; incidents as a parent with
members in its thread; storm digest past the rate cap; muted keys silent; chart in thread."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.slack.storm import ChannelRateCap
from bot.store import AggregateRow, SqliteStore
from detectors.aggregate import LatencyAggregate
from tests.slack_app_support import (
    SlackHarness,
    anomaly_record,
    incident_record,
    running_bot,
)
from tests.slack_standin import SlackStandIn, server_error

HOUR_NS = 3600 * 10**9


@pytest.fixture
async def harness(tmp_path: Path, standin: SlackStandIn) -> AsyncIterator[SlackHarness]:
    async with running_bot(tmp_path / "opsbot.db", standin) as h:
        yield h


def _top_level(standin: SlackStandIn) -> list[dict[str, Any]]:
    return [m for m in standin.posted() if "thread_ts" not in m]


async def test_alert_posts_once_then_edits_in_place(harness: SlackHarness) -> None:
    record = await anomaly_record(harness.store)
    notifier = harness.bot.notifier
    await notifier.on_event("opened", record)
    await harness.settle()
    await notifier.on_event("opened", record)  # the engine repeating itself posts nothing new
    resolved = replace(record, state="resolved", ended_ns=record.started_ns + 900 * 10**9,
                       peak_severity=1)
    await harness.store.upsert_anomalies([resolved])
    await notifier.on_event("resolved", resolved)
    await harness.settle()
    [message] = _top_level(harness.standin)
    assert len(harness.standin.calls("chat.postMessage")) == 1
    assert message["text"].startswith("SEV1 checkout:pg-pool.connect: 286.9 ms vs p50 0.4 ms")
    assert message["text"].endswith("(resolved)") and "edited" in message
    blocks = str(message["attachments"])
    assert "Resolved after 15 min" in blocks and "peak SEV1" in blocks
    ref = await harness.store.slack_message_for(anomaly_id=record.id)
    assert ref is not None and (ref.channel, ref.ts, ref.kind) == ("C0ALERTS", message["ts"],
                                                                   "alert")


async def test_incident_parent_with_members_in_thread(harness: SlackHarness) -> None:
    incident = await incident_record(harness.store)
    a = await anomaly_record(harness.store, "payments-db:query", incident_id=incident.id)
    b = await anomaly_record(harness.store, "checkout:POST /pay", incident_id=incident.id,
                             severity=1)
    await harness.bot.notifier.on_event("opened", a, incident)
    await harness.bot.notifier.on_event("opened", b, incident)
    await harness.settle()
    [parent] = _top_level(harness.standin)
    members = [m for m in harness.standin.posted() if m.get("thread_ts") == parent["ts"]]
    assert sorted(m["text"].split(":")[0] for m in members) == ["SEV1 checkout", "SEV2 payments-db"]
    assert parent["text"] == "SEV1 incident: 2 anomalies, origin payments-db"
    assert "2 anomalies across 2 services" in parent["blocks"][0]["text"]["text"]


async def test_storm_is_capped_into_one_digest(tmp_path: Path, standin: SlackStandIn) -> None:
    async with running_bot(tmp_path / "s.db", standin) as h:
        h.bot.notifier.rate_cap = ChannelRateCap(max_posts=3, window_s=300)
        for i in range(12):
            record = await anomaly_record(h.store, f"svc{i % 4}:op{i}")
            await h.bot.notifier.on_event("opened", record)
        await h.settle()
    top = _top_level(standin)
    assert len(top) == 4  # three alerts, then one digest for the other nine
    assert top[-1]["text"] == "Alert storm: 9 anomalies on 9 keys in the last 5 min"
    assert len(standin.calls("chat.postMessage")) == 4


async def test_muted_key_posts_nothing(harness: SlackHarness) -> None:
    now = time.time_ns()
    await harness.store.add_mute("checkout", now + HOUR_NS, "UADMIN01", now)
    await harness.bot.notifier.on_event("opened", await anomaly_record(harness.store))
    await harness.settle()
    assert harness.standin.posted() == []
    assert harness.bot.deps.metrics.alerts.labels("muted")._value.get() == 1


async def _history(h: SlackHarness, series_id: int, now_ns: int) -> None:
    """8 days of hourly aggregates: ~2 ms normally, ~300 ms in the last hour."""
    rng = np.random.default_rng(3)
    rows = []
    for hour in range(now_ns // HOUR_NS - 8 * 24, now_ns // HOUR_NS + 1):
        agg = LatencyAggregate()
        slow = hour == now_ns // HOUR_NS
        agg.add(rng.lognormal(np.log(300 if slow else 2), 0.3, 200))
        rows.append(AggregateRow(series_id, hour // 24, hour % 24, agg))
    await h.store.add_aggregates(rows)


async def test_chart_is_uploaded_into_the_alert_thread(harness: SlackHarness) -> None:
    record = await anomaly_record(harness.store)
    await _history(harness, record.series_id, time.time_ns())
    await harness.bot.notifier.on_event("opened", record)
    await harness.settle()
    alert, chart = harness.standin.posted()
    assert chart["thread_ts"] == alert["ts"] and chart["files"][0]["title"].endswith("24 h")
    methods = [c.method for c in harness.standin.calls()]
    assert methods.index("chat.postMessage") < methods.index("files.getUploadURLExternal")
    [png] = [v for v in harness.standin.uploads.values()]
    assert png is not None and png.startswith(b"\x89PNG")


async def test_alert_survives_an_outage_posted_once(harness: SlackHarness) -> None:
    harness.bot.deps.outbox.policy = replace(harness.bot.deps.outbox.policy, base_backoff_s=0.05)
    harness.standin.script(server_error(503), times=2, method="chat.postMessage")
    await harness.bot.notifier.on_event("opened", await anomaly_record(harness.store))
    await harness.settle()
    assert len(_top_level(harness.standin)) == 1


async def test_restart_during_a_storm_keeps_folding_into_the_same_digest(
        tmp_path: Path, standin: SlackStandIn) -> None:
    db = tmp_path / "storm.db"
    async with running_bot(db, standin, slack_alert_rate_cap=3) as h:
        records = [await anomaly_record(h.store, f"svc{i}:op") for i in range(6)]
        for record in records:
            await h.bot.notifier.on_event("opened", record)
        await h.settle()
    assert len(_top_level(standin)) == 4  # three alerts and one digest of three
    folded = records[3]
    async with running_bot(db, standin, slack_alert_rate_cap=3) as h:  # a new process
        grown = replace(folded, peak_score=9.9, updated_ns=folded.updated_ns + 60 * 10**9)
        await h.store.upsert_anomalies([grown])
        await h.bot.notifier.on_event("updated", grown)  # still folded: not posted as new
        await h.bot.notifier.on_event("opened", await anomaly_record(h.store, "svc9:op"))
        await h.settle()
    top = _top_level(standin)
    assert len(standin.calls("chat.postMessage")) == len(top) == 4
    assert top[-1]["text"] == "Alert storm: 4 anomalies on 4 keys in the last 5 min"
    assert "svc9:op" in str(top[-1]["attachments"]) + str(top[-1]["blocks"])


async def test_fold_marks_are_forgotten_after_their_time(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "m.db") as store:
        await store.save_storm_state("#a", {"posts": [], "storm": None}, ["old"], now_ns=100)
        await store.save_storm_state("#a", {"posts": [5], "storm": None}, ["new"], now_ns=300)
        await store.acknowledge(1, "U1", 50)  # other meta entries are left alone
        assert await store.forget_capped(200) == 1
        assert not await store.is_capped("old") and await store.is_capped("new")
        assert await store.storm_state("#a") == {"posts": [5], "storm": None}
        assert [a.user_id for a in await store.acks_for(1)] == ["U1"]


def _charts_in_thread(standin: SlackStandIn, alert_ts: str) -> list[dict[str, object]]:
    return [m for m in standin.posted() if m.get("thread_ts") == alert_ts and m.get("files")]


async def test_chart_pending_at_stop_is_uploaded_once_after_restart(
        tmp_path: Path, standin: SlackStandIn) -> None:
    db = tmp_path / "chart.db"
    standin.script(server_error(503), times=10_000, method="chat.postMessage")  # Slack is down
    async with running_bot(db, standin) as h:
        h.bot.notifier.charts.wait_s = 0.3  # type: ignore[union-attr]
        record = await anomaly_record(h.store)
        await _history(h, record.series_id, time.time_ns())
        await h.bot.notifier.on_event("opened", record)
        await h.bot.deps.tasks.idle(5)
        assert [j.anomaly_id for j in await h.store.chart_jobs()] == [record.id]
    assert standin.posted() == [] and standin.calls("files.getUploadURLExternal") == []
    standin.reset()  # Slack is back; a new process on the same store
    async with running_bot(db, standin) as h:
        await h.settle()
        assert await h.store.chart_jobs() == []
    [alert] = [m for m in standin.posted() if "thread_ts" not in m]
    [chart] = _charts_in_thread(standin, alert["ts"])
    assert chart["files"][0]["title"] == "checkout:pg-pool.connect: last 24 h"  # type: ignore[index]
    assert len(standin.calls("files.completeUploadExternal")) == 1


async def test_chart_upload_failing_at_stop_is_retried_once_after_restart(
        tmp_path: Path, standin: SlackStandIn) -> None:
    db = tmp_path / "chart2.db"
    standin.script(server_error(503), times=10_000, method="files.getUploadURLExternal")
    async with running_bot(db, standin) as h:
        h.bot.notifier.charts.attempts = 1  # type: ignore[union-attr]
        record = await anomaly_record(h.store)
        await _history(h, record.series_id, time.time_ns())
        await h.bot.notifier.on_event("opened", record)
        await h.settle()
        assert len(await h.store.chart_jobs()) == 1
    [alert] = standin.posted()
    standin.unscript()  # the upload endpoint recovers
    async with running_bot(db, standin) as h:
        await h.settle()
        assert await h.store.chart_jobs() == []
    assert len(_charts_in_thread(standin, alert["ts"])) == 1
    assert len(standin.calls("chat.postMessage")) == 1
