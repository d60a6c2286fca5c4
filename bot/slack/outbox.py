"""The persisted Slack outbox: every outbound call is a row in `outbox` before it is sent.

Delivery guarantee, per dedupe key (one worker per database at a time):
- `enqueue` commits the row before anything is sent; the same key is queued once, ever.
- chat.postMessage posts at most once, and exactly once whenever Slack can be read back.
  An attempt is committed as "sending since T" before its request, and each post carries
  its key in message metadata. After an attempt with no definite answer (the process died,
  a timeout, a dropped connection, HTTP 5xx, `internal_error`), the next one first reads
  the channel or thread from T - 10 min: a message with the key is recorded, not re-posted.
  If that cannot be checked (missing `channels:history`, a channel name never resolved)
  the row fails with "outcome unknown" instead of risking a duplicate.
- chat.update / reactions.add are idempotent and retried until sent; an older update of
  a message is never sent after a newer one (it is superseded). Updates queued before
  their post is attempted are folded into it; a post's permanent failure fails them too.
- chat.postEphemeral cannot be read back: at least once (a timeout may repeat it).
- Failures are permanent (`invalid_auth`, `not_in_channel`, `channel_not_found`, bad
  arguments: state 'failed', reason logged) or retried with exponential backoff and
  jitter; HTTP 429 holds that method for Retry-After and does not count as an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.settings import Settings
from bot.slack._delivery import DELIVERY_ERRORS, Failure, backoff_s, classify
from bot.slack._outbox_rows import Claim, OutboxEntry, OutboxRows, with_outbox_key
from bot.slack._reconcile import Unconfirmed, find_posted, is_channel_id, resolve_channel
from bot.store import SqliteStore

__all__ = ["DeliveryReport", "Method", "Outbox", "OutboxEntry", "OutboxError", "OutboxPolicy",
           "client_for"]

log = logging.getLogger(__name__)

Method = Literal["chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add"]
_NEEDS = {"chat.update": ("channel", "ts"), "reactions.add": ("channel", "timestamp")}
_MAYBE = "maybe sent since "


class OutboxError(ValueError):
    """A message cannot be queued as given; the message says what to change."""


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """Retry timing. `lease_s` must exceed the client's timeout (slack_sdk: 30 s)."""

    base_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    max_attempts: int = 20
    lease_s: float = 120.0
    idle_s: float = 1.0  # longest sleep of `run` between checks of the table


@dataclass(slots=True)
class DeliveryReport:
    """Dedupe keys by what one `deliver_due` pass did with them."""

    sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def client_for(settings: Settings) -> AsyncWebClient:
    """The Web API client for the outbox: without slack_sdk's own retries (they could re-post)."""
    if settings.slack_bot_token is None:
        raise OutboxError("no Slack bot token: set OPSBOT_SLACK_BOT_TOKEN (xoxb-...)")
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(),
                          base_url=settings.slack_api_base_url, retry_handlers=[])


class Outbox:
    """Queue Slack calls durably; deliver them with `deliver_due` or `run`."""

    def __init__(self, store: SqliteStore, policy: OutboxPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self._rows = OutboxRows(lambda: store.db, store.transaction)
        self.policy = policy or OutboxPolicy()
        self._rng = rng or random.Random()
        self._holds: dict[str, int] = {}  # method -> held until (ns), after an HTTP 429
        self._wakeup = asyncio.Event()
        self._warned_retries = False

    async def enqueue(self, dedupe_key: str, method: Method, payload: Mapping[str, Any], *,
                      target: str | None = None, now_ns: int | None = None) -> bool:
        """Queue one call; False when `dedupe_key` was queued before (nothing changes).

        `payload` holds the Slack arguments. A post's `metadata.event_payload` may carry
        `anomaly_id`, `incident_id` and `kind`: they link the sent message in
        slack_messages. `target` is the dedupe key of an earlier post whose channel and
        ts this call needs (chat.update, reactions.add, or a reply in its thread).
        """
        args = _checked(dedupe_key, method, payload, target)
        if method == "chat.postMessage":
            args = with_outbox_key(args, dedupe_key)
        stored = {"args": args, "target": target}
        added = await self._rows.insert(dedupe_key, method, stored, now_ns or time.time_ns())
        if added:
            self._wakeup.set()
        return added

    async def entry(self, dedupe_key: str) -> OutboxEntry | None:
        return await self._rows.entry(dedupe_key)

    async def deliver_due(self, client: AsyncWebClient, now_ns: int) -> DeliveryReport:
        """Send every row due at `now_ns`, one at a time; the clock runs on as calls take time."""
        started = time.monotonic_ns()

        def clock() -> int:
            return now_ns + time.monotonic_ns() - started

        if client.retry_handlers and not self._warned_retries:
            self._warned_retries = True
            log.warning("outbox: this Slack client retries by itself, which can post twice;"
                        " build it with bot.slack.outbox.client_for(settings)")
        report = DeliveryReport()
        lease_ns = int(self.policy.lease_s * 1e9)
        while (claim := await self._rows.claim(clock(), lease_ns, self._held(clock()))) is not None:
            await self._deliver(client, claim, clock, report)
        return report

    async def run(self, client: AsyncWebClient, clock: Callable[[], int] = time.time_ns) -> None:
        """Deliver until cancelled, waking when a row falls due or one is enqueued.

        Only one worker may run per database: at start it takes over the rows an earlier,
        stopped or dead, worker left mid-attempt instead of waiting out their lease.
        """
        taken = await self._rows.release_claims(clock())
        if taken:
            log.warning("outbox: %d message(s) were mid-send when the last worker stopped;"
                        " checking Slack before re-sending them", taken)
        while True:
            self._wakeup.clear()
            try:
                await self.deliver_due(client, clock())
                wake_ns = await self._next_wake_ns(clock())
            except sqlite3.Error:
                log.exception("outbox: the store failed; retrying in %.1f s", self.policy.idle_s)
                wake_ns = None
            sleep_s = self.policy.idle_s
            if wake_ns is not None:
                sleep_s = min(sleep_s, max(0.0, (wake_ns - clock()) / 1e9))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), sleep_s)

    def _held(self, now_ns: int) -> list[str]:
        return [method for method, until in self._holds.items() if until > now_ns]

    async def _next_wake_ns(self, now_ns: int) -> int | None:
        times = [until for until in self._holds.values() if until > now_ns]
        due = await self._rows.next_due_ns(self._held(now_ns))
        return min([*times, due]) if due is not None else min(times, default=None)

    async def _deliver(self, client: AsyncWebClient, claim: Claim, clock: Callable[[], int],
                       report: DeliveryReport) -> None:
        if claim.blocked is not None:
            await self._fail(claim, claim.blocked, report)
            return
        try:
            channel, ts, fresh = await self._send(client, claim)
        except DELIVERY_ERRORS as exc:
            await self._after_failure(claim, classify(exc, claim.method, _channel(claim)),
                                      clock(), report)
            return
        except Unconfirmed as exc:
            await self._fail(claim, f"outcome unknown, not re-posted to avoid a duplicate: {exc}",
                             report)
            return
        except Exception as exc:  # a bug or bad arguments: fail this row, keep the worker alive
            log.exception("outbox %s: unexpected error", claim.dedupe_key)
            await self._fail(claim, f"unexpected {type(exc).__name__}: {exc}", report)
            return
        await self._rows.mark_sent(claim, channel, ts, clock(), fold=fresh)
        report.sent.append(claim.dedupe_key)
        log.info("outbox %s: %s done (%s %s)", claim.dedupe_key, claim.method, channel, ts)

    async def _send(self, client: AsyncWebClient, claim: Claim) -> tuple[str, str, bool]:
        """(channel, ts, posted fresh); a fresh post also carried the folded updates."""
        if claim.recovering and claim.method == "chat.postMessage":
            channel_id, ts = await self._find_earlier_post(client, claim)
            if ts is not None:
                log.warning("outbox %s: an interrupted attempt had posted %s; not posting again",
                            claim.dedupe_key, ts)
                return channel_id, ts, False
        response = await _call(client, claim.method, claim.args)
        return _result_ref(claim, response) + (True,)

    async def _find_earlier_post(self, client: AsyncWebClient,
                                 claim: Claim) -> tuple[str, str | None]:
        """(channel id, ts of the post an earlier attempt made, if it did)."""
        try:
            channel_id = await self._channel_id(client, claim)
            ts = await find_posted(client, channel_id, claim.dedupe_key, claim.since_ns,
                                   claim.args.get("thread_ts"))
        except SlackApiError as exc:
            failure = classify(exc, "reading the channel back", _channel(claim))
            if failure.kind == "permanent":
                raise Unconfirmed(f"cannot read the channel back ({failure.reason})") from exc
            raise
        return channel_id, ts

    async def _channel_id(self, client: AsyncWebClient, claim: Claim) -> str:
        channel = _channel(claim)
        if is_channel_id(channel):
            return channel
        return await self._rows.known_channel_id(channel) or await resolve_channel(client, channel)

    async def _after_failure(self, claim: Claim, failure: Failure, now_ns: int,
                             report: DeliveryReport) -> None:
        if failure.kind == "permanent":
            await self._fail(claim, failure.reason, report)
            return
        if failure.kind == "retry" and claim.attempts >= self.policy.max_attempts:
            await self._fail(claim, f"gave up after {claim.attempts} attempts; last: "
                             f"{failure.reason}", report)
            return
        if failure.kind == "rate_limited":
            delay_s = failure.retry_after_s * (1.0 + 0.1 * self._rng.random())
            self._holds[claim.method] = now_ns + int(delay_s * 1e9)
        else:
            delay_s = backoff_s(claim.attempts, self._rng, self.policy.base_backoff_s,
                                self.policy.max_backoff_s)
        unsure = claim.method == "chat.postMessage" and (claim.recovering or failure.maybe_sent)
        error = f"{_MAYBE}{claim.since_ns}: {failure.reason}" if unsure else failure.reason
        await self._rows.mark_retry(claim, now_ns + int(delay_s * 1e9), error,
                                    refund=failure.kind == "rate_limited")
        report.retrying.append(claim.dedupe_key)
        log.warning("outbox %s: %s; retrying in %.1f s", claim.dedupe_key, failure.reason, delay_s)

    async def _fail(self, claim: Claim, reason: str, report: DeliveryReport) -> None:
        await self._rows.mark_failed(claim, reason)
        report.failed.append(claim.dedupe_key)
        log.error("outbox %s: %s failed permanently: %s", claim.dedupe_key, claim.method, reason)


def _checked(key: str, method: str, payload: Mapping[str, Any],
             target: str | None) -> dict[str, Any]:
    if not key:
        raise OutboxError("a dedupe key is required: it is what keeps an alert from posting twice")
    if method not in get_args(Method):
        raise OutboxError(f"the outbox does not send {method!r}; use one of {get_args(Method)}")
    missing = [a for a in _NEEDS.get(method, ()) if a not in payload]
    if target is None and missing:
        raise OutboxError(f"{method} needs {missing} in the payload, or target=<dedupe key of the"
                          " post it refers to>")
    if target is None and "channel" not in payload:
        raise OutboxError(f"{method} needs a channel")
    return dict(payload)


def _channel(claim: Claim) -> str:
    return str(claim.args.get("channel", "?"))


async def _call(client: AsyncWebClient, method: str, args: dict[str, Any]) -> AsyncSlackResponse:
    """Call through slack_sdk's typed method, so each is encoded the way slack_sdk does."""
    try:
        response: AsyncSlackResponse = await getattr(client, method.replace(".", "_"))(**args)
    except SlackApiError as exc:
        if method == "reactions.add" and exc.response.get("error") == "already_reacted":
            already: AsyncSlackResponse = exc.response
            return already
        raise
    return response


def _result_ref(claim: Claim, response: AsyncSlackResponse) -> tuple[str, str]:
    """Where the call's message is: (channel, ts)."""
    if claim.method == "reactions.add":
        return _channel(claim), str(claim.args["timestamp"])
    if claim.method == "chat.postEphemeral":
        return _channel(claim), str(response["message_ts"])
    return str(response["channel"]), str(response["ts"])
