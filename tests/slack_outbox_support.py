"""Shared pieces of the outbox tests: an injected clock, helpers and crash test doubles."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.outbox import Outbox, OutboxPolicy
from bot.store import SqliteStore
from tests.slack_standin import SlackStandIn

__all__ = ["LEASE", "S", "T0", "CrashAfterSlackAcceptsClient", "CrashBeforeSlackSeesClient",
           "SimulatedCrash", "alert", "anomaly", "new_outbox", "run_for", "until", "web_client"]

T0 = 1_700_000_000 * 10**9  # an injected "now" (ns), near the stand-in's first ts
S = 10**9
LEASE = int(OutboxPolicy().lease_s * S)


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing in the outbox catches a BaseException."""


class CrashAfterSlackAcceptsClient(AsyncWebClient):
    """Test double: the post reaches Slack, then the process 'dies' before recording it."""

    async def chat_postMessage(self, **kwargs: Any) -> Any:  # noqa: N802 (slack_sdk's name)
        await super().chat_postMessage(**kwargs)
        raise SimulatedCrash


class CrashBeforeSlackSeesClient(AsyncWebClient):
    """Test double: the process 'dies' after marking the attempt, before the request."""

    async def chat_postMessage(self, **kwargs: Any) -> Any:  # noqa: N802
        raise SimulatedCrash


def web_client(standin: SlackStandIn, cls: type[AsyncWebClient] = AsyncWebClient,
               token: str | None = None) -> AsyncWebClient:
    return cls(token=token or standin.token, base_url=standin.url, retry_handlers=[])


def new_outbox(store: SqliteStore, **policy: Any) -> Outbox:
    return Outbox(store, OutboxPolicy(**policy), rng=random.Random(7))


def alert(text: str, anomaly_id: int | None = None) -> dict[str, Any]:
    meta = {"event_type": "opsbot_alert", "event_payload": {"anomaly_id": anomaly_id}}
    return {"channel": "#opsbot-alerts", "text": text,
            **({"metadata": meta} if anomaly_id is not None else {})}


async def anomaly(store: SqliteStore) -> int:
    ids = await store.touch_series({"checkout:POST /pay": (T0, T0)}, "span")
    cur = await store.db.execute(
        "INSERT INTO anomalies (series_id, key, service, operation, state, started_ns,"
        " updated_ns, peak_score, peak_severity) VALUES (?, 'checkout:POST /pay', 'checkout',"
        " 'POST /pay', 'open', ?, ?, 7.5, 2)", (ids["checkout:POST /pay"], T0, T0))
    return int(cur.lastrowid or 0)


async def until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def run_for(outbox: Outbox, client: AsyncWebClient, seconds: float) -> None:
    worker = asyncio.create_task(outbox.run(client))
    await asyncio.sleep(seconds)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
