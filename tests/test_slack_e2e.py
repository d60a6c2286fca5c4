"""End to end: simulator incident -> detection engine -> alert in the stand-in channel -> chart
in its thread -> reaction -> feedback stored and message updated -> thread question ->
answer in the thread; and a restart during a Slack outage loses and duplicates nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from bot.detection.engine import DetectionEngine
from bot.detection.tap import tap
from bot.ingest.pipeline import IngestPipeline
from bot.simulator import DAY_NS, HOUR_NS, MINUTE_NS, make_incident
from bot.slack.engine_port import engine_recalculator
from bot.slack.storm import ChannelRateCap
from tests.detection_support import FAST, T0, simulator
from tests.slack_app_support import (
    ADMIN,
    USER,
    FakeAgent,
    SlackHarness,
    anomaly_record,
    running_bot,
    slack_payload,
)
from tests.slack_standin import SlackStandIn

SLOW = make_incident("slow_downstream_dependency", T0 + 6 * HOUR_NS)
END = T0 + 6 * HOUR_NS + 40 * MINUTE_NS


async def _detect(h: SlackHarness) -> DetectionEngine:
    """Replay the simulator through the real pipeline and engine, the bot subscribed."""
    engine = DetectionEngine(h.store, FAST)
    engine.subscribe(h.bot.notifier.on_engine_event)
    await engine.start()
    pipe = IngestPipeline(h.store, clock=lambda: END + DAY_NS)
    tap(pipe, engine)
    for batch, _metrics in simulator([SLOW]).batches(T0, END - T0, step_ns=HOUR_NS // 6):
        await pipe.ingest(batch)
        await pipe.flush()
        await engine.advance()
    await engine.close()
    return engine


@pytest.mark.slow
async def test_incident_to_alert_chart_feedback_and_answer(tmp_path: Path,
                                                           standin: SlackStandIn) -> None:
    agent = FakeAgent()
    async with running_bot(tmp_path / "e2e.db", standin, agent=agent) as h:
        h.bot.notifier.rate_cap = ChannelRateCap(max_posts=50)
        engine = await _detect(h)
        await h.settle(30)
        refs = [await h.store.slack_message_for(anomaly_id=a.id)
                for a in await h.store.list_anomalies()]
        alerts = [r for r in refs if r is not None and r.kind == "alert"]
        assert alerts, "the simulated incident posted no alert"
        hit = [a for a in await h.store.list_anomalies() if a.key in SLOW.affected_keys]
        assert hit, "the incident's keys were not detected"
        ref = next(r for r in alerts if r.anomaly_id == hit[0].id)
        message = next(m for m in standin.posted() if m["ts"] == ref.ts)
        assert message["text"].startswith(f"SEV{hit[0].peak_severity} {hit[0].key}")
        assert any(b.get("type") == "actions" for b in message["attachments"][0]["blocks"])
        # the chart follows in the thread (of the incident parent when the alert is a member)
        thread = ref.thread_ts or ref.ts
        assert any(m.get("files") and m.get("thread_ts") == thread for m in standin.posted())

        reaction = slack_payload("test_events__valid_reaction_added_body")["event"]
        reaction.update(reaction="-1", user=USER)
        reaction["item"].update(channel=ref.channel, ts=ref.ts)
        await h.send_event(reaction)
        await h.settle()
        [fb] = (await h.store.feedback_for([hit[0].id]))[hit[0].id]
        assert (fb.verdict, fb.user_id) == ("false_positive", USER)
        updated = next(m for m in standin.posted() if m["ts"] == ref.ts)
        assert f"Marked false positive by <@{USER}>" in str(updated["attachments"])

        question = slack_payload("test_message__message_body")["event"]
        question.update(text="why is it slow?", user=USER, channel=ref.channel,
                        ts="1800000000.000100", thread_ts=thread)
        await h.send_event(question, base="test_message__message_body")
        await h.settle()
        assert hit[0].id in agent.contexts[0].anomaly_ids
        answers = [m for m in standin.posted() if m.get("thread_ts") == thread
                   and str(m["text"]).startswith("The p99")]
        assert len(answers) == 1

        h.bot.deps.ops.recalculator = engine_recalculator(engine)
        await h.send_command("recalc all --dry-run", user=ADMIN, channel=ref.channel)
        await h.settle(30)
        report = standin.posted()[-1]["text"]
        assert "Recalculating baselines for `all keys` (dry run)" in report
        assert "keys; alert windows of the last 7 days that would change" in report


async def test_restart_during_outage_loses_and_duplicates_nothing(
        tmp_path: Path, standin: SlackStandIn) -> None:
    db = tmp_path / "restart.db"
    standin.stop()  # Slack is down: connections are refused
    try:
        async with running_bot(db, standin) as h:
            h.bot.deps.outbox.policy = replace(h.bot.deps.outbox.policy, base_backoff_s=0.05)
            records = [await anomaly_record(h.store, f"svc:op{i}") for i in range(3)]
            for record in records:
                await h.bot.notifier.on_event("opened", record)
            await asyncio.sleep(0.5)
            entries = [await h.bot.deps.outbox.entry(f"alert:{r.uid}") for r in records]
            assert all(e is not None and e.state == "pending" and e.attempts >= 1
                       for e in entries)
    finally:
        standin.start()
    async with running_bot(db, standin) as h:  # the restarted process, Slack back up
        await h.settle(20)
    keys = [((c.params.get("metadata") or {}).get("event_payload") or {}).get("opsbot_outbox")
            for c in standin.calls("chat.postMessage") if c.status == 200]
    alert_keys = [k for k in keys if k and k.startswith("alert:")]
    assert sorted(alert_keys) == sorted(f"alert:{r.uid}" for r in records)
    assert len(standin.posted()) == 3
