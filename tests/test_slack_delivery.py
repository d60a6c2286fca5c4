"""Reading a Slack call's outcome, and the backoff between attempts (pure)."""

from __future__ import annotations

import random

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack._delivery import backoff_s, classify


def _api_error(status: int, data: dict[str, object], headers: dict[str, str] | None = None,
               ) -> SlackApiError:
    response = AsyncSlackResponse(client=None, http_verb="POST", api_url="x", req_args={},
                                  data=data, headers=headers or {}, status_code=status)
    return SlackApiError("failed", response)  # type: ignore[no-untyped-call]


def test_backoff_doubles_within_equal_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for failures, full in [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (40, 300.0)]:
        delays = [backoff_s(failures, rng) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered, not constant


@pytest.mark.parametrize(("exc", "kind", "maybe_sent"), [
    (_api_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"}),
     "rate_limited", False),
    (_api_error(503, {}), "retry", True),
    (_api_error(200, {"ok": False, "error": "internal_error"}), "retry", True),
    (_api_error(200, {"ok": False, "error": "service_unavailable"}), "retry", False),
    (_api_error(200, {"ok": False, "error": "invalid_blocks"}), "permanent", False),
    (TimeoutError(), "retry", True),
    (aiohttp.ServerDisconnectedError(), "retry", True),
])
def test_classify(exc: BaseException, kind: str, maybe_sent: bool) -> None:
    failure = classify(exc, "chat.postMessage", "C0ALERTS")
    assert (failure.kind, failure.maybe_sent) == (kind, maybe_sent)
    if kind == "rate_limited":
        assert failure.retry_after_s == 12.0


def test_refused_connection_cannot_have_reached_slack() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    failure = classify(aiohttp.ClientConnectorError(key, OSError(111, "refused")), "chat.update")
    assert (failure.kind, failure.maybe_sent) == ("retry", False)
