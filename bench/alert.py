"""Alert latency benchmark: the detector's decision -> the stand-in receiving chat.postMessage.

The real bot (outbox worker, notifier, Block Kit, SQLite store) posts to the Slack Web
API stand-in over loopback HTTP while a background task ingests 1,000 simulated spans/s
into the same store. "Decision" is the moment the detector would persist the anomaly:
the clock starts before the record is written and `on_event` is called, and stops at the
stand-in's arrival time of the post. Next to it, the bare round trip of one
chat.postMessage from slack_sdk to the same stand-in, measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from slack_sdk.web.async_client import AsyncWebClient

from bench.slack_standin import SlackStandIn
from bot.ingest.pipeline import pipeline_for
from bot.settings import Settings
from bot.simulator import MINUTE_NS, Simulator, TrafficModel
from bot.slack.app import create_slack
from bot.slack.deps import BotDeps
from bot.slack.storm import ChannelRateCap
from bot.spans import RejectCounter
from bot.store import AnomalyRecord, SqliteStore

__all__ = ["AlertBench", "cli", "run_alert_bench"]

SPANS_PER_S = 1000


@dataclass(frozen=True)
class AlertBench:
    alerts: int
    latency_p50_ms: float
    latency_p99_ms: float
    bare_p50_ms: float
    bare_p99_ms: float
    background_spans_per_s: float

    @property
    def ratio_p50(self) -> float:
        return self.latency_p50_ms / self.bare_p50_ms if self.bare_p50_ms else float("nan")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _background_load(store: SqliteStore, settings: Settings, stop: asyncio.Event,
                           counted: list[int]) -> None:
    """Ingest simulated minutes back to back, paced to SPANS_PER_S on average."""
    pipeline = pipeline_for(settings, store, RejectCounter())
    sim = Simulator(7, traffic=TrafficModel(sampled_per_minute=12))
    minute = time.time_ns() // MINUTE_NS * MINUTE_NS - 24 * 60 * MINUTE_NS
    started = time.monotonic()
    while not stop.is_set():
        batch = sim.generate(minute, MINUTE_NS).to_batch()
        minute += MINUTE_NS
        await pipeline.ingest(batch)
        counted[0] += len(batch.keys)
        ahead = counted[0] / SPANS_PER_S - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await pipeline.flush()


async def _bare(standin: SlackStandIn, n: int) -> list[float]:
    client = AsyncWebClient(token=standin.token, base_url=standin.url, retry_handlers=[])
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await client.chat_postMessage(channel="C0ALERTS", text=f"bare {i}")
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.02)
    return out


async def _alerts(store: SqliteStore, standin: SlackStandIn, settings: Settings,
                  n: int) -> list[float]:
    bot = create_slack(settings, BotDeps(store, load_agent=False))
    bot.notifier.rate_cap = ChannelRateCap(max_posts=n + 1, window_s=60)  # no digest here
    bot.notifier.charts = None  # the chart follows the alert; it is not part of its latency
    await bot.start()
    ids = await store.touch_series({"bench:op": (time.time_ns(), time.time_ns())}, "span")
    decided: dict[str, float] = {}
    try:
        for i in range(n):
            now = time.time_ns()
            record = AnomalyRecord(
                uid=f"bench-{i}-{now}", key="bench:op", service="bench", operation="op",
                state="open", started_ns=now, updated_ns=now, peak_score=6.0, peak_severity=2,
                series_id=ids["bench:op"], observed=120.0, baseline={"p50": 2.0, "p99": 9.0})
            decided[f"alert:{record.uid}"] = time.time()
            await store.upsert_anomalies([record])
            await bot.notifier.on_event("opened", record)
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while len(_arrivals(standin, decided)) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await bot.stop()
    arrived = _arrivals(standin, decided)
    return [(arrived[k] - decided[k]) * 1000 for k in decided if k in arrived]


def _arrivals(standin: SlackStandIn, decided: dict[str, float]) -> dict[str, float]:
    out = {}
    for call in standin.calls("chat.postMessage"):
        key = ((call.params.get("metadata") or {}).get("event_payload") or {}).get(
            "opsbot_outbox")
        if key in decided:
            out[key] = call.at
    return out


async def run_alert_bench(settings: Settings, alerts: int = 100) -> AlertBench:
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn() as standin:
        bench_settings = settings.model_copy(update={
            "db_path": Path(tmp) / "bench.db", "slack_bot_token": SecretStr(standin.token),
            "slack_signing_secret": SecretStr("bench-secret"), "slack_app_token": None,
            "slack_api_base_url": standin.url, "slack_channel": "#opsbot-alerts"})
        async with SqliteStore(bench_settings.db_path) as store:
            stop, counted = asyncio.Event(), [0]
            load = asyncio.create_task(_background_load(store, bench_settings, stop, counted))
            await asyncio.sleep(1.0)  # let the load reach its pace
            t0, n0 = time.monotonic(), counted[0]
            bare = await _bare(standin, alerts)
            latency = await _alerts(store, standin, bench_settings, alerts)
            rate = (counted[0] - n0) / (time.monotonic() - t0)  # over the measured window
            stop.set()
            await load
    return AlertBench(len(latency), _pct(latency, 0.5), _pct(latency, 0.99), _pct(bare, 0.5),
                      _pct(bare, 0.99), rate)


def _print(result: AlertBench, console: Console) -> None:
    table = Table(title=f"Alert latency under {result.background_spans_per_s:,.0f} spans/s"
                        f" ({result.alerts} alerts)")
    for col in ("", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("decision -> chat.postMessage at Slack", f"{result.latency_p50_ms:.1f}",
                  f"{result.latency_p99_ms:.1f}")
    table.add_row("bare chat.postMessage round trip", f"{result.bare_p50_ms:.1f}",
                  f"{result.bare_p99_ms:.1f}")
    console.print(table)
    console.print(f"alert p50 / bare p50: {result.ratio_p50:.1f}x; "
                  f"target p99 < 1000 ms: {'met' if result.latency_p99_ms < 1000 else 'MISSED'}")


def cli(*, settings: Settings, as_json: bool) -> int:
    """`opsbot bench alert`: prints the table (or JSON); exit 1 when p99 misses 1 s."""
    result = asyncio.run(run_alert_bench(settings))
    if as_json:
        data: dict[str, Any] = {k: getattr(result, k) for k in result.__dataclass_fields__}
        data["ratio_p50"] = result.ratio_p50
        print(json.dumps(data, indent=2))
    else:
        _print(result, Console())
    return 0 if result.latency_p99_ms < 1000 else 1
