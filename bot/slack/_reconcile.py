"""Find a post that an interrupted attempt may have made, by the dedupe key in its metadata.

Slack has no idempotency key for chat.postMessage, so before posting again after an
attempt with an unknown outcome, the outbox reads the channel (or thread) back.
"""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack._outbox_rows import OUTBOX_EVENT

__all__ = ["CLOCK_SKEW_S", "Unconfirmed", "find_posted", "is_channel_id", "resolve_channel"]

CLOCK_SKEW_S = 600.0  # look this far before our own clock's start of the first attempt
_PAGES = 5  # at most 5 x 200 messages: an alert channel holds far fewer in the window
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class Unconfirmed(Exception):
    """Whether an earlier attempt posted cannot be told; posting again could duplicate it."""


def is_channel_id(channel: str) -> bool:
    return bool(_CHANNEL_ID.match(channel))


async def resolve_channel(client: AsyncWebClient, name: str) -> str:
    """The id of a channel the bot is a member of, by name ('#alerts' or 'alerts')."""
    wanted, cursor = name.lstrip("#"), None
    for _ in range(_PAGES * 10):
        page = await client.users_conversations(
            types="public_channel,private_channel", exclude_archived=True, limit=200,
            cursor=cursor)
        for channel in page.get("channels") or []:
            if channel.get("name") == wanted:
                return str(channel["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    raise Unconfirmed(f"the bot is in no channel named {name}")


async def find_posted(client: AsyncWebClient, channel_id: str, dedupe_key: str, since_ns: int,
                      thread_ts: str | None = None) -> str | None:
    """The ts of the message carrying `dedupe_key` posted since `since_ns`, or None."""
    oldest = f"{max(0.0, since_ns / 1e9 - CLOCK_SKEW_S):.6f}"
    cursor: str | None = None
    for _ in range(_PAGES):
        if thread_ts is None:
            page = await client.conversations_history(
                channel=channel_id, oldest=oldest, limit=200, include_all_metadata=True,
                cursor=cursor)
        else:
            page = await client.conversations_replies(
                channel=channel_id, ts=thread_ts, oldest=oldest, limit=200,
                include_all_metadata=True, cursor=cursor)
        for message in page.get("messages") or []:
            if _key_of(message) == dedupe_key:
                return str(message["ts"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return None
    raise Unconfirmed(f"more than {_PAGES * 200} messages in {channel_id} since the attempt")


def _key_of(message: dict[str, Any]) -> str | None:
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    key = payload.get(OUTBOX_EVENT)
    return str(key) if key is not None else None
