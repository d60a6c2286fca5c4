"""The metrics poller against a scripted Prometheus over loopback HTTP: cursor, errors, backoff."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.detection.engine import DetectionEngine
from bot.detection.metrics_poller import (
    MetricQuery,
    MetricsPoller,
    QueryConfigError,
    parse_queries,
    poller_from_settings,
)
from bot.settings import load_settings
from bot.store import SqliteStore
from tests.prometheus_support import QueryRangeStandIn, free_port, wrap_matrix
from tools.metrics.prometheus import PrometheusClient, PrometheusUnavailable

T = 1_704_067_200  # 2024-01-01 00:00 UTC, seconds
STEP = 60


def _matrix(minutes: int = 240, end: int = T) -> dict[str, Any]:
    """Two CPU series, a sample a minute from `end` - minutes*60 to `end` + 29 minutes."""
    rng = np.random.default_rng(3)
    result = []
    for svc in ("api", "db"):
        ts = end - minutes * STEP + np.arange(minutes + 30) * STEP
        vals = 30 + rng.normal(0, 1, ts.size)
        result.append({"metric": {"__name__": "cpu", "service": svc},
                       "values": [[int(t), repr(float(v))] for t, v in zip(ts, vals, strict=True)]})
    return wrap_matrix(result)


@contextlib.asynccontextmanager
async def _engine(db: Path) -> AsyncIterator[DetectionEngine]:
    async with SqliteStore(db) as store:
        engine = DetectionEngine(store)
        await engine.start()
        try:
            yield engine
        finally:
            await engine.close()


def _poller(url: str, engine: DetectionEngine, now_s: list[int], **kw: Any) -> MetricsPoller:
    return MetricsPoller(PrometheusClient(url, timeout_s=2), engine, [MetricQuery("cpu")],
                         clock=lambda: now_s[0] * 10**9, **kw)


def test_parse_queries() -> None:
    q = parse_queries(["up", 'cpu = sum by (service, pod) (rate(x{a="b"}[1m]))',
                       "x == 1", 'up{job=~"a"}'])
    assert q[0] == MetricQuery("up")
    assert q[1] == MetricQuery('sum by (service, pod) (rate(x{a="b"}[1m]))', "cpu")
    assert q[2] == MetricQuery("x == 1") and q[3] == MetricQuery('up{job=~"a"}')
    with pytest.raises(QueryConfigError, match="no PromQL"):
        parse_queries(["cpu=  "])
    labels = {"__name__": "up", "job": "a"}
    assert MetricQuery("up").series_metric(labels) == "up" and labels == {"job": "a"}
    assert MetricQuery("sum(x)").series_metric({}) == "sum(x)"


def test_poller_from_settings(tmp_path: Path) -> None:
    assert poller_from_settings(load_settings(db_path=tmp_path / "x.db"), None) is None  # type: ignore[arg-type]
    s = load_settings(db_path=tmp_path / "x.db", prometheus_url="http://127.0.0.1:9",
                      metrics_queries="cpu=sum(x);up", metrics_delay_s=5)
    poller = poller_from_settings(s, None)  # type: ignore[arg-type]
    assert poller is not None and poller.delay_s == 5
    assert [q.name for q in poller.queries] == ["cpu", None]


async def test_cursor_feeds_each_step_once_across_polls_and_restarts(tmp_path: Path) -> None:
    with QueryRangeStandIn() as prom:
        prom.script.body = _matrix()
        now = [T + 25]
        async with _engine(tmp_path / "a.db") as engine:
            poller = _poller(prom.url, engine, now, backfill_s=3600, delay_s=0)
            assert await poller.poll_once() == 2 * 60  # (T - 1h, T]: 60 steps, two series
            first = prom.script.requests[-1]
            assert (float(first["start"]), float(first["end"]), first["step"]) == (
                T - 3600, T, "60")
            assert await poller.poll_once() == 0  # same minute: nothing new
            now[0] = T + 3 * STEP + 59
            assert await poller.poll_once() == 2 * 3
            await poller.client.aclose()
        now[0] = T + 10 * STEP
        async with _engine(tmp_path / "a.db") as engine:  # restart: resume at the cursor
            poller = _poller(prom.url, engine, now, backfill_s=3600, delay_s=0)
            assert await poller.poll_once() == 2 * 7
            assert float(prom.script.requests[-1]["start"]) == T + 3 * STEP
            key = 'cpu{service="api"}'
            # every minute of (T - 1h, T + 10 min] learnt exactly once
            det = engine.metrics.detectors[key]
            total = sum(a.count for _, a in det.folded(0)) + len(det.pending_values())
            assert total == 70
            await poller.client.aclose()


async def test_prometheus_down_backs_off_and_loses_nothing(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    now = [T]
    async with _engine(tmp_path / "d.db") as engine:
        poller = _poller(dead, engine, now, backfill_s=600, delay_s=0)
        with pytest.raises(PrometheusUnavailable, match="unreachable"):
            await poller.poll_once()
        assert engine.metrics.cursors == {}
        delays = [await poller._poll_logged(1.0) for _ in range(3)]
        assert delays == [2.0, 4.0, 8.0]  # doubling
        assert poller.stats.failures == 3 and poller.stats.consecutive_failures == 3
        assert "OPSBOT_PROMETHEUS_URL" in poller.stats.last_error
        with QueryRangeStandIn() as prom:  # Prometheus comes back
            prom.script.status, prom.script.body = 503, {"status": "error",
                                                        "errorType": "unavailable",
                                                        "error": "shutting down"}
            poller.client = PrometheusClient(prom.url, timeout_s=2)
            assert await poller._poll_logged(1.0) == 16.0
            prom.script.status, prom.script.body = 200, _matrix()
            assert await poller._poll_logged(1.0) == 1.0
            assert poller.stats.consecutive_failures == 0 and poller.stats.samples == 2 * 10
            await poller.client.aclose()


async def test_a_refused_query_is_skipped_and_counted(tmp_path: Path) -> None:
    with QueryRangeStandIn() as prom:
        prom.script.status = 400
        prom.script.body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
        async with _engine(tmp_path / "q.db") as engine:
            poller = _poller(prom.url, engine, [T], backfill_s=600, delay_s=0)
            assert await poller.poll_once() == 0
            assert poller.stats.query_errors == 1 and poller.stats.polls == 1
            assert engine.metrics.cursors == {"prometheus": T * 10**9}  # nothing to wait for
            await poller.client.aclose()


async def test_run_loop_survives_failures_until_cancelled(tmp_path: Path) -> None:
    async with _engine(tmp_path / "r.db") as engine:
        poller = _poller(f"http://127.0.0.1:{free_port()}", engine, [T], backfill_s=600,
                         delay_s=0)
        task = asyncio.create_task(poller.run(0.01))
        await asyncio.sleep(0.5)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert poller.stats.failures >= 2


async def test_opsbot_run_polls_prometheus(tmp_path: Path) -> None:
    """`run_service` with metrics queries: samples reach the engine and the store."""
    from bot.server import run_service

    with QueryRangeStandIn() as prom:
        prom.script.body = _matrix(end=int(time.time()) // STEP * STEP)
        settings = load_settings(db_path=tmp_path / "run.db", http_port=0,
                                 prometheus_url=prom.url, metrics_queries="cpu",
                                 metrics_backfill_s=1800, metrics_delay_s=0)
        task = asyncio.create_task(run_service(settings))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if prom.script.requests:
                break
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert prom.script.requests and prom.script.requests[0]["query"] == "cpu"
    async with SqliteStore(tmp_path / "run.db") as store:
        names = {s.name for s in await store.list_series("metric")}
        assert names == {'cpu{service="api"}', 'cpu{service="db"}'}
        assert await store.get_meta("metrics_cursor:prometheus") is not None
