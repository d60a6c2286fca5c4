"""Reactions and buttons on an alert: feedback stored with user and source, withdrawn when the
reaction goes, and the alert message edited to show it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack.feedback import ReactionMap
from tests.slack_app_support import (
    ADMIN,
    USER,
    SlackHarness,
    anomaly_record,
    incident_record,
    running_bot,
    slack_payload,
)
from tests.slack_standin import SlackStandIn


@pytest.fixture
async def harness(tmp_path: Path, standin: SlackStandIn) -> AsyncIterator[SlackHarness]:
    async with running_bot(tmp_path / "opsbot.db", standin) as h:
        yield h


REACTION_BODY = "test_events__valid_reaction_added_body"


def _reaction(name: str, ts: str, user: str = USER, added: bool = True) -> dict[str, object]:
    event: dict[str, Any] = slack_payload("test_events__valid_reaction_added_body")["event"]
    event.update(reaction=name, user=user, type="reaction_added" if added else "reaction_removed")
    event["item"].update(channel="C0ALERTS", ts=ts)
    return event


async def _posted_alert(h: SlackHarness) -> tuple[int, str]:
    record = await anomaly_record(h.store)
    await h.bot.notifier.on_event("opened", record)
    await h.settle()
    return record.id, h.standin.posted()[0]["ts"]


@pytest.mark.parametrize(("reaction", "verdict"), [
    ("-1", "false_positive"), ("x", "false_positive"), ("no_entry_sign", "false_positive"),
    ("+1::skin-tone-3", "confirmed"), ("white_check_mark", "confirmed"), ("fire", "confirmed"),
    ("heart_eyes", None)])
def test_reaction_map(reaction: str, verdict: str | None) -> None:
    assert ReactionMap().verdict(reaction) == verdict


async def test_reaction_records_feedback_and_updates_the_message(harness: SlackHarness) -> None:
    anomaly_id, ts = await _posted_alert(harness)
    await harness.send_event(_reaction("-1", ts), base="test_events__valid_reaction_added_body")
    await harness.settle()
    [feedback] = (await harness.store.feedback_for([anomaly_id]))[anomaly_id]
    assert (feedback.verdict, feedback.user_id, feedback.source) == ("false_positive", USER,
                                                                     "reaction")
    assert abs(feedback.created_ns - time.time_ns()) < 60 * 10**9
    message = harness.standin.posted()[0]
    assert f"Marked false positive by <@{USER}>" in str(message["attachments"])

    await harness.send_event(_reaction("-1", ts, added=False),
                             base="test_events__valid_reaction_added_body")
    await harness.settle()
    assert (await harness.store.feedback_for([anomaly_id]))[anomaly_id] == []
    assert "Marked false positive" not in str(harness.standin.posted()[0]["attachments"])


async def test_reactions_elsewhere_are_ignored(harness: SlackHarness) -> None:
    anomaly_id, ts = await _posted_alert(harness)
    await harness.send_event(_reaction("heart_eyes", ts))
    await harness.send_event(_reaction("-1", "1600000000.000100"))
    await harness.settle()
    assert (await harness.store.feedback_for([anomaly_id]))[anomaly_id] == []


async def test_buttons(harness: SlackHarness) -> None:
    anomaly_id, ts = await _posted_alert(harness)
    for action in ("false_positive", "acknowledge"):
        resp = await harness.press(action, str(anomaly_id), USER, "C0ALERTS", ts)
        assert resp.status_code == 200
    await harness.settle()
    [feedback] = (await harness.store.feedback_for([anomaly_id]))[anomaly_id]
    assert (feedback.verdict, feedback.source) == ("false_positive", "button")
    shown = str(harness.standin.posted()[0]["attachments"])
    assert f"Marked false positive by <@{USER}>" in shown and f"Acknowledged by <@{USER}>" in shown


async def test_mute_button_is_for_admins(harness: SlackHarness) -> None:
    anomaly_id, ts = await _posted_alert(harness)
    await harness.press("mute_1h", str(anomaly_id), USER, "C0ALERTS", ts)
    await harness.settle()
    assert await harness.store.active_mutes(time.time_ns()) == []
    [refusal] = harness.standin.calls("chat.postEphemeral")
    assert "only opsbot admins" in refusal.params["text"] and refusal.params["user"] == USER
    await harness.press("mute_1h", str(anomaly_id), ADMIN, "C0ALERTS", ts)
    await harness.settle()
    [mute] = await harness.store.active_mutes(time.time_ns())
    assert mute.target == "checkout:pg-pool.connect"
    assert f"Muted for 1 h by <@{ADMIN}>" in str(harness.standin.posted()[0]["attachments"])


async def test_reaction_on_incident_parent_applies_to_every_member(
        harness: SlackHarness) -> None:
    incident = await incident_record(harness.store)
    members = [await anomaly_record(harness.store, key, incident_id=incident.id)
               for key in ("payments-db:query", "checkout:POST /pay")]
    for member in members:
        await harness.bot.notifier.on_event("opened", member, incident)
    other = await anomaly_record(harness.store, "search:GET /q")  # not in the incident
    await harness.bot.notifier.on_event("opened", other)
    await harness.settle()
    parent_ts = next(m["ts"] for m in harness.standin.posted() if "incident" in m["text"])
    ids = [m.id for m in members]

    await harness.send_event(_reaction("x", parent_ts), base=REACTION_BODY)
    await harness.settle()
    feedback = await harness.store.feedback_for([*ids, other.id])
    assert [(f.verdict, f.user_id, f.source) for i in ids for f in feedback[i]] == [
        ("false_positive", USER, "reaction")] * 2
    assert feedback[other.id] == []
    posted = {m["ts"]: m for m in harness.standin.posted()}
    in_thread = [m for m in posted.values() if m.get("thread_ts") == parent_ts]
    assert len(in_thread) == 2 and all(
        f"Marked false positive by <@{USER}>" in str(m["attachments"]) for m in in_thread)
    assert f"Marked false positive by <@{USER}>" in str(posted[parent_ts]["attachments"])

    await harness.send_event(_reaction("x", parent_ts, added=False), base=REACTION_BODY)
    await harness.settle()
    assert all(v == [] for v in (await harness.store.feedback_for(ids)).values())
    shown = str(harness.standin.posted()[0]["attachments"])
    assert "Marked false positive" not in shown
