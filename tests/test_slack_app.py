"""The real bolt app in HTTP mode: signatures, stale timestamps, retries handled once,
slash commands (usage help, admin-only refusals), against the Slack stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.settings import load_settings
from bot.slack.app import SlackConfigError, create_slack
from bot.slack.deps import BotDeps
from bot.slack.slash import USAGE
from bot.store import SqliteStore
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


@pytest.fixture
async def harness(tmp_path: Path, standin: SlackStandIn) -> AsyncIterator[SlackHarness]:
    async with running_bot(tmp_path / "opsbot.db", standin, agent=FakeAgent()) as h:
        yield h


def _mention(text: str, ts: str = "1700000100.000100") -> dict[str, object]:
    event: dict[str, object] = slack_payload("test_events__valid_event_body")["event"]
    event.update(text=f"<@U0OPSBOT> {text}", user=USER, channel="C0ALERTS", ts=ts, event_ts=ts)
    return event


async def test_url_verification_answers_the_challenge(harness: SlackHarness) -> None:
    body = slack_payload("test_events_url_verification__event_body")
    resp = await harness.post(json.dumps(body).encode(), "application/json")
    assert resp.status_code == 200
    assert resp.json()["challenge"] == body["challenge"]


async def test_bad_signature_and_stale_timestamp_are_rejected(harness: SlackHarness) -> None:
    body = json.dumps({**slack_payload("test_events__valid_event_body"),
                       "event": _mention("why?")}).encode()
    forged = await harness.post(body, "application/json", secret="not-the-secret")
    stale = await harness.post(body, "application/json", timestamp=int(time.time()) - 6 * 60)
    assert (forged.status_code, stale.status_code) == (401, 401)
    await harness.settle()
    assert harness.standin.calls("chat.postMessage") == []  # nothing was handled


async def test_retried_event_is_handled_once(harness: SlackHarness) -> None:
    event = _mention("is checkout slow?")
    first = await harness.send_event(event, event_id="EvRETRY1")
    again = await harness.send_event(event, event_id="EvRETRY1", retry=1)
    third = await harness.send_event(event, event_id="EvRETRY1", retry=2)
    assert [r.status_code for r in (first, again, third)] == [200, 200, 200]
    await harness.settle()
    answers = [m for m in harness.standin.posted() if m.get("thread_ts") == event["ts"]]
    assert len(answers) == 1
    agent = harness.bot.deps.conversations.agent
    assert isinstance(agent, FakeAgent) and agent.questions == ["is checkout slow?"]


async def test_bad_arguments_get_usage_help(harness: SlackHarness) -> None:
    resp = await harness.send_command("mute checkout forever")
    assert resp.status_code == 200
    assert "not a duration" in resp.text and "Usage" in resp.text
    unknown = await harness.send_command("frobnicate")
    assert "unknown command" in unknown.text
    help_ = await harness.send_command("")
    assert help_.text == USAGE


async def test_admin_only_commands_refused_for_others(harness: SlackHarness) -> None:
    for text in ("mute checkout 1h", "recalc all --dry-run", "unmute checkout"):
        resp = await harness.send_command(text, user=USER)
        assert resp.status_code == 200 and "only opsbot admins" in resp.text
    await harness.settle()
    assert await harness.store.active_mutes(time.time_ns()) == []
    assert harness.standin.calls("chat.postMessage") == []


async def test_admin_mutes_and_unmutes_with_a_channel_report(harness: SlackHarness) -> None:
    resp = await harness.send_command("mute checkout:POST /pay 2h", user=ADMIN)
    assert resp.status_code == 200
    await harness.settle()
    [mute] = await harness.store.active_mutes(time.time_ns())
    assert (mute.target, mute.created_by) == ("checkout:POST /pay", ADMIN)
    assert 7199 <= (mute.until_ns - mute.created_ns) / 1e9 <= 7200
    await harness.send_command("unmute checkout:POST /pay", user=ADMIN)
    await harness.settle()
    assert await harness.store.active_mutes(time.time_ns()) == []
    texts = [m["text"] for m in harness.standin.posted()]
    assert texts[0].startswith(":mute: Muted `checkout:POST /pay` until")
    assert texts[1] == ":loud_sound: Unmuted `checkout:POST /pay`."


async def test_user_group_members_are_admins(harness: SlackHarness, tmp_path: Path,
                                             standin: SlackStandIn) -> None:
    standin.workspace.usergroups["S0ONCALL"] = ["U0GROUPIE"]
    async with running_bot(tmp_path / "g.db", standin, slack_admins="S0ONCALL") as h:
        await h.send_command("mute checkout 30m", user="U0GROUPIE")
        await h.settle()
        assert [m.target for m in await h.store.active_mutes(time.time_ns())] == ["checkout"]


async def test_status_and_anomalies_answer_the_asker_only(harness: SlackHarness) -> None:
    await anomaly_record(harness.store)
    await harness.send_command("status")
    await harness.send_command("anomalies")
    await harness.settle()
    status, listing = (c.params["text"] for c in harness.standin.calls("chat.postEphemeral"))
    assert "Keys tracked: 1" in status and "Open anomalies: 1" in status
    assert "Model: loaded" in status and "Detector: not running in this process" in status
    assert "`checkout:pg-pool.connect`" in listing and "SEV2" in listing
    assert harness.standin.posted() == []


async def test_recalc_without_engine_reports_in_channel(harness: SlackHarness) -> None:
    await harness.send_command("recalc checkout --dry-run", user=ADMIN)
    await harness.settle()
    [message] = harness.standin.posted()
    assert "Recalculating baselines for `checkout` (dry run)" in message["text"]
    assert "not available" in message["text"]  # edited in place with the result


async def test_recalc_progress_and_result_edit_one_message(tmp_path: Path,
                                                           standin: SlackStandIn) -> None:
    seen: list[tuple[str | None, bool]] = []

    async def recalc(target: str | None, dry_run: bool, progress) -> str:  # type: ignore[no-untyped-def]
        seen.append((target, dry_run))
        await progress("12/40 keys")
        return "3 keys would alert differently"

    async with running_bot(tmp_path / "r.db", standin) as h:
        h.bot.deps.ops.recalculator = recalc
        await h.send_command("recalc", user=ADMIN)
        await h.settle()
    assert seen == [(None, False)]
    [message] = standin.posted()
    assert message["text"].endswith("done.\n3 keys would alert differently")
    assert "edited" in message


async def test_half_configured_slack_says_what_is_missing(tmp_path: Path) -> None:
    settings = load_settings(db_path=tmp_path / "x.db", slack_bot_token="xoxb-1")
    async with SqliteStore(settings.db_path) as store:
        with pytest.raises(SlackConfigError, match="OPSBOT_SLACK_SIGNING_SECRET"):
            create_slack(settings, BotDeps(store))


async def test_bot_metrics_count_events(harness: SlackHarness) -> None:
    await harness.send_event(_mention("hello?"), event_id="EvM1")
    await harness.send_event(_mention("hello?"), event_id="EvM1", retry=1)
    await harness.settle()
    registry = harness.bot.deps.metrics.events
    assert registry.labels("app_mention", "handled")._value.get() == 1
    assert registry.labels("app_mention", "duplicate")._value.get() == 1
