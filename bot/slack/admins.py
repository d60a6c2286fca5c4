"""Who may recalc and mute: user ids in `slack_admins`, or members of a user group listed
there by its id (`S...`), resolved with usergroups.users.list and cached for a while."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack._delivery import DELIVERY_ERRORS

__all__ = ["AdminCheck", "REFUSAL"]

log = logging.getLogger(__name__)

REFUSAL = ("Sorry, only opsbot admins can {what}. Ask one of them, or ask whoever runs opsbot"
           " to add you to `OPSBOT_SLACK_ADMINS`.")


class AdminCheck:
    def __init__(self, admins: Sequence[str], client: AsyncWebClient | None, *,
                 cache_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.users = {a for a in admins if not a.startswith("S")}
        self.groups = [a for a in admins if a.startswith("S")]
        self.client, self.cache_s, self.clock = client, cache_s, clock
        self._members: set[str] = set()
        self._fetched = -float("inf")

    async def allows(self, user_id: str) -> bool:
        if user_id in self.users:
            return True
        if not self.groups or self.client is None:
            return False
        if self.clock() - self._fetched > self.cache_s:
            await self._refresh()
        return user_id in self._members

    async def _refresh(self) -> None:
        assert self.client is not None
        members: set[str] = set()
        try:
            for group in self.groups:
                reply = await self.client.usergroups_users_list(usergroup=group)
                members.update(reply.get("users") or [])
        except DELIVERY_ERRORS as exc:  # keep the last known members; refuse if none
            log.warning("admins: cannot read user group members (%s)", exc)
            return
        self._members, self._fetched = members, self.clock()
