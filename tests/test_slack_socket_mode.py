"""Socket Mode: the real app connects out to the stand-in (apps.connections.open, then its
WebSocket), acks every envelope by id, and handles mentions, reactions, buttons and
/opsbot exactly as in HTTP mode. Envelopes carry the real payloads of ../shared/data/slack/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.slack.slash import USAGE
from tests.slack_app_support import (
    USER,
    FakeAgent,
    SlackHarness,
    anomaly_record,
    running_bot,
    slack_payload,
)
from tests.slack_standin import SlackStandIn


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _deliver(h: SlackHarness, kind: Any, payload: dict[str, Any], **retry: Any) -> str:
    """Send one envelope, wait for the app's ack, then for what it started to finish."""
    envelope_id = h.standin.socket.send(kind, payload, **retry)
    await _until(lambda: envelope_id in h.standin.socket.acks())
    await h.settle()
    return envelope_id


def _event_callback(event: dict[str, Any], event_id: str,
                    base: str = "test_events__valid_event_body") -> dict[str, Any]:
    body = slack_payload(base)
    body.update(event=event, event_id=event_id, team_id="T0STANDIN")
    return dict(body)


def _command(text: str) -> dict[str, Any]:
    form = dict(parse_qsl(slack_payload("test_slash_command__slash_command_body")))
    form.update(command="/opsbot", text=text, user_id=USER, channel_id="C0ALERTS",
                team_id="T0STANDIN", trigger_id=f"trig.socket.{text}")
    return form


async def test_socket_mode_handles_events_commands_and_buttons_like_http(
        tmp_path: Path, standin: SlackStandIn) -> None:
    agent = FakeAgent()
    async with running_bot(tmp_path / "sm.db", standin, agent=agent,
                           slack_app_token=standin.app_token) as h:
        assert h.bot.socket_mode
        await _until(lambda: standin.socket.connected)
        [opened] = standin.calls("apps.connections.open")
        assert opened.params.get("token") is None and opened.status == 200  # token in header
        record = await anomaly_record(h.store)
        await h.bot.notifier.on_event("opened", record)
        await h.settle()
        alert_ts = standin.posted()[0]["ts"]

        mention = slack_payload("test_events__valid_event_body")["event"]
        mention.update(text="<@U0OPSBOT> why is it slow", user=USER, channel="C0ALERTS",
                       ts="1700000900.000100", thread_ts=alert_ts)
        await _deliver(h, "events_api", _event_callback(mention, "EvSOCKET1"))
        # Slack's retry of the same event (the ack was late): acked, not handled again
        await _deliver(h, "events_api", _event_callback(mention, "EvSOCKET1"),
                       retry_attempt=1, retry_reason="timeout")

        reaction = slack_payload("test_events__valid_reaction_added_body")["event"]
        reaction.update(reaction="-1", user=USER)
        reaction["item"].update(channel="C0ALERTS", ts=alert_ts)
        await _deliver(h, "events_api", _event_callback(
            reaction, "EvSOCKET2", "test_events__valid_reaction_added_body"))

        press = slack_payload("test_block_actions__body")
        press["user"]["id"], press["channel"]["id"], press["team"]["id"] = (
            USER, "C0ALERTS", "T0STANDIN")
        press["container"].update(channel_id="C0ALERTS", message_ts=alert_ts,
                                  is_ephemeral=False)
        press["actions"][0].update(action_id="acknowledge", value=str(record.id),
                                   block_id="alert", action_ts="1700000901.000100")
        await _deliver(h, "interactive", press)

        help_id = await _deliver(h, "slash_commands", _command("help"))
        await _deliver(h, "slash_commands", _command("status"))
        over_http = await h.send_command("help")  # the same command in HTTP mode

    acks = standin.socket.acks()
    assert sorted(acks) == sorted(e["envelope_id"] for e in standin.socket.sent())
    assert len(acks) == 6
    # the mention: asked once, answered in the alert's thread with the alert as context
    assert agent.questions == ["why is it slow"]
    assert list(agent.contexts[0].anomaly_ids) == [record.id]
    [answer] = [m for m in standin.posted() if m.get("thread_ts") == alert_ts]
    assert answer["text"].startswith("The p99 of pg-pool.connect")
    # the reaction and the button: stored and shown on the alert
    [feedback] = (await _feedback(tmp_path / "sm.db", record.id))
    assert feedback == ("false_positive", USER, "reaction")
    shown = str(standin.posted()[0]["attachments"])
    assert f"Marked false positive by <@{USER}>" in shown and f"Acknowledged by <@{USER}>" in shown
    # /opsbot help answers in the ack, as HTTP mode does in the response body
    help_ack = acks[help_id].payload
    assert help_ack is not None and help_ack["text"] == USAGE == over_http.text
    [status] = standin.calls("chat.postEphemeral")
    assert status.params["user"] == USER and "open" in status.params["text"].lower()


async def _feedback(db: Path, anomaly_id: int) -> list[tuple[str, str, str]]:
    from bot.store import SqliteStore

    async with SqliteStore(db) as store:
        return [(f.verdict, f.user_id, f.source)
                for f in (await store.feedback_for([anomaly_id]))[anomaly_id]]


async def test_the_app_token_is_required_for_socket_mode(standin: SlackStandIn) -> None:
    """The stand-in refuses apps.connections.open with a bot token, as Slack does."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(base_url=standin.url)
    with pytest.raises(SlackApiError) as refused:
        await client.apps_connections_open(app_token=standin.token)
    assert refused.value.response["error"] == "not_allowed_token_type"
    opened = await client.apps_connections_open(app_token=standin.app_token)
    assert str(opened["url"]).startswith("ws://127.0.0.1:")
