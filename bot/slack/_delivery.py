"""How the outbox reads the outcome of one Slack call, and how long it waits (pure).

A failed call is permanent (retrying cannot help), retryable, or rate limited; a
retryable one may also have reached Slack (`maybe_sent`: a timeout, a dropped
connection, a 5xx, `internal_error`), which matters for non-idempotent posts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import aiohttp
from slack_sdk.errors import SlackApiError

__all__ = ["DELIVERY_ERRORS", "Failure", "backoff_s", "classify"]

# Exceptions a Slack call raises for reasons outside our code; anything else is a bug.
DELIVERY_ERRORS: tuple[type[BaseException], ...] = (
    SlackApiError, aiohttp.ClientError, TimeoutError, OSError)

# Slack errors that say the request was refused as a whole and may work later.
_TRANSIENT = frozenset({"ratelimited", "service_unavailable", "request_timeout"})
# Slack errors after which Slack says "some aspect of the operation may have succeeded".
_MAYBE_DONE = frozenset({"internal_error", "fatal_error"})
_HINTS = {
    "invalid_auth": "Slack rejected the bot token; check OPSBOT_SLACK_BOT_TOKEN",
    "not_authed": "no bot token was sent; set OPSBOT_SLACK_BOT_TOKEN",
    "account_inactive": "the bot token belongs to a deactivated user or app; reinstall the app",
    "token_revoked": "the bot token was revoked; reinstall the app and update the token",
    "not_in_channel": "the bot is not a member of {channel}; invite it with /invite @opsbot",
    "channel_not_found": "channel {channel} does not exist or the bot cannot see it;"
                         " check OPSBOT_SLACK_CHANNEL",
    "is_archived": "channel {channel} is archived; set OPSBOT_SLACK_CHANNEL to a live channel",
    "missing_scope": "the Slack app lacks a scope this call needs; add it and reinstall",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a call failed and what to do about it."""

    kind: Literal["permanent", "retry", "rate_limited"]
    reason: str
    maybe_sent: bool = False
    retry_after_s: float = 0.0


def classify(exc: BaseException, method: str, channel: str = "?") -> Failure:
    """Turn a delivery exception (one of DELIVERY_ERRORS) into a Failure."""
    if isinstance(exc, SlackApiError):
        return _slack_failure(exc, method, channel)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The TCP connection never opened, so Slack cannot have seen the request.
        return Failure("retry", f"cannot reach Slack: {exc}")
    if isinstance(exc, TimeoutError):
        return Failure("retry", f"{method} timed out", maybe_sent=True)
    return Failure("retry", f"{method}: {type(exc).__name__}: {exc}", maybe_sent=True)


def _slack_failure(exc: SlackApiError, method: str, channel: str) -> Failure:
    status = exc.response.status_code
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    error = str(data.get("error") or f"HTTP {status}")
    if status == 429:
        header = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
        return Failure("rate_limited", f"{method} rate limited (HTTP 429)",
                       retry_after_s=_seconds(header))
    if status >= 500:
        return Failure("retry", f"Slack answered HTTP {status} to {method}", maybe_sent=True)
    if error in _TRANSIENT:
        return Failure("retry", f"Slack answered {error} to {method}")
    if error in _MAYBE_DONE:
        return Failure("retry", f"Slack answered {error} to {method}", maybe_sent=True)
    hint = _HINTS.get(error, "the request itself is wrong; fix the message and enqueue it anew")
    return Failure("permanent", f"{error}: {hint.format(channel=channel)}")


def _seconds(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else 1.0
    except ValueError:
        return 1.0  # an HTTP-date Retry-After; Slack sends seconds, so wait a little


def backoff_s(failures: int, rng: random.Random, base_s: float = 1.0,
              cap_s: float = 300.0) -> float:
    """Exponential backoff with equal jitter: uniform in [d/2, d], d = min(cap, base * 2**(n-1))."""
    delay = min(cap_s, base_s * 2.0 ** max(0, failures - 1))
    return delay / 2 + rng.random() * delay / 2
