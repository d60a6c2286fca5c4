"""The Slack stand-in answers the real slack_sdk AsyncWebClient the way Slack does."""

from __future__ import annotations

import time

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.slack_standin import SlackStandIn, rate_limited, server_error, slack_error


def _client(standin: SlackStandIn, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or standin.token, base_url=standin.url, retry_handlers=[])


async def test_post_update_react_and_read_back(standin: SlackStandIn) -> None:
    client = _client(standin)
    first = await client.chat_postMessage(channel="#opsbot-alerts", text="one",
                                          metadata={"event_type": "t", "event_payload": {"k": 1}})
    second = await client.chat_postMessage(channel="C0ALERTS", text="two")
    assert (first["channel"], first["ts"], second["ts"]) == (
        "C0ALERTS", "1700000000.000100", "1700000000.000200")
    await client.chat_update(channel="C0ALERTS", ts=first["ts"], text="one, edited")
    await client.reactions_add(channel="C0ALERTS", timestamp=first["ts"], name="eyes")
    history = await client.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    newest, oldest = history["messages"]
    assert (newest["text"], oldest["text"]) == ("two", "one, edited")
    assert oldest["metadata"] == {"event_type": "t", "event_payload": {"k": 1}}
    assert oldest["reactions"][0]["name"] == "eyes"
    assert [c.method for c in standin.calls()][:2] == ["chat.postMessage", "chat.postMessage"]
    assert standin.calls("chat.update")[0].params["ts"] == first["ts"]


async def test_lookups_and_ephemeral(standin: SlackStandIn) -> None:
    client = _client(standin)
    assert (await client.auth_test())["user_id"] == "U0OPSBOT"
    assert (await client.users_info(user="U123"))["user"]["name"] == "alice"
    assert (await client.conversations_info(channel="C0ALERTS"))["channel"]["is_member"]
    ephemeral = await client.chat_postEphemeral(channel="C0ALERTS", user="U123", text="psst")
    assert ephemeral["message_ts"].startswith("1700000000.")
    assert standin.posted() == []  # ephemeral messages are not in the channel


async def test_files_upload_v2_round_trip(standin: SlackStandIn) -> None:
    result = await _client(standin).files_upload_v2(
        channel="C0ALERTS", content=b"\x89PNG chart", filename="chart.png", title="p99")
    assert result["file"]["size"] == len(b"\x89PNG chart")
    assert [c.method for c in standin.calls()] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    assert standin.posted()[0]["files"][0]["title"] == "p99"


@pytest.mark.parametrize(("channel", "member", "error"), [
    ("#nowhere", True, "channel_not_found"), ("C0QUIET", False, "not_in_channel")])
async def test_channel_errors(standin: SlackStandIn, channel: str, member: bool,
                              error: str) -> None:
    standin.add_channel("quiet", "C0QUIET", member=member)
    with pytest.raises(SlackApiError) as info:
        await _client(standin).chat_postMessage(channel=channel, text="x")
    assert info.value.response["error"] == error


async def test_bearer_token_is_checked(standin: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as info:
        await _client(standin, token="xoxb-wrong").auth_test()
    assert info.value.response["error"] == "invalid_auth"


async def test_scripted_failures_then_normal_service(standin: SlackStandIn) -> None:
    client = _client(standin)
    standin.script(rate_limited(7), method="chat.postMessage")
    standin.script(server_error(502), times=2)
    standin.script(slack_error("invalid_auth"))
    statuses = []
    for _ in range(5):
        try:
            await client.chat_postMessage(channel="C0ALERTS", text="x")
            statuses.append("ok")
        except SlackApiError as err:
            statuses.append(f"{err.response.status_code} {err.response.headers.get('Retry-After')}"
                            f" {err.response.data.get('error')}")
    assert statuses == ["429 7 ratelimited", "502 None None", "502 None None",
                        "200 None invalid_auth", "ok"]
    assert len(standin.posted()) == 1


async def test_down_refuses_connections_and_up_serves_the_same_url(
        standin: SlackStandIn) -> None:
    client, url = _client(standin), standin.url
    standin.stop()
    try:
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.auth_test()
    finally:
        standin.start()
    assert standin.url == url
    started = time.time()
    assert (await client.auth_test())["ok"]
    assert standin.calls("auth.test")[-1].at >= started
