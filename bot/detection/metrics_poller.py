"""Polling Prometheus for configured PromQL queries into the detection engine.

Each poll evaluates every query with `/api/v1/query_range` at the engine's
metric step, from the source's cursor to now minus a delay (so the latest
scrape has landed), and feeds each result series to the engine as one metric
series. The cursor moves in memory with the samples and is saved by the engine
in the same transaction as the baselines those samples went into, so a restart
resumes exactly: no sample fed twice, none skipped. A first poll on a new store
reaches back `backfill_s`, so baselines can start warm from Prometheus' history.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from bot.detection.engine import DetectionEngine
from bot.detection.metric_series import MetricPoint
from bot.settings import Settings
from tools.metrics.prometheus import PrometheusClient, PrometheusError, PrometheusQueryError

__all__ = [
    "MetricQuery",
    "MetricsPoller",
    "PollStats",
    "QueryConfigError",
    "parse_queries",
    "poller_from_settings",
]

log = logging.getLogger(__name__)

SOURCE = "prometheus"  # the cursor's name in the store (meta key metrics_cursor:prometheus)
MAX_BACKOFF_S = 600.0
_NAMED = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*=(?![=~])\s*(.+)$", re.DOTALL)


class QueryConfigError(ValueError):
    """A configured metrics query cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One PromQL expression; `name` names its series when the result has no `__name__`."""

    promql: str
    name: str | None = None

    def series_metric(self, labels: dict[str, str]) -> str:
        """The metric name of a result series (and drops `__name__` from its labels)."""
        own = labels.pop("__name__", None)
        return self.name or own or self.promql


def parse_queries(entries: Sequence[str]) -> list[MetricQuery]:
    """`'up'` or `'cpu=sum by (service) (rate(x[1m]))'` entries, as MetricQuery."""
    out: list[MetricQuery] = []
    for entry in entries:
        m = _NAMED.match(entry)
        query = MetricQuery(m.group(2).strip(), m.group(1)) if m else MetricQuery(entry.strip())
        if not query.promql:
            raise QueryConfigError(f"metrics query {entry!r} has no PromQL after the name; "
                                   "write name=<PromQL> or just <PromQL>")
        out.append(query)
    return out


@dataclass(slots=True)
class PollStats:
    polls: int = 0  # polls that completed
    failures: int = 0  # polls that failed (Prometheus down, timeout, bad answer)
    consecutive_failures: int = 0
    query_errors: int = 0  # queries Prometheus refused (bad PromQL): skipped, others go on
    samples: int = 0  # samples fed to the engine
    last_error: str = ""


class MetricsPoller:
    """Moves Prometheus samples into `engine.feed_metrics`, one range of steps per poll."""

    def __init__(
        self, client: PrometheusClient, engine: DetectionEngine, queries: Sequence[MetricQuery],
        *, backfill_s: float = 86400.0, delay_s: float = 30.0, max_points: int = 720,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not queries:
            raise QueryConfigError("no metrics queries: set OPSBOT_METRICS_QUERIES")
        self.client = client
        self.engine = engine
        self.queries = list(queries)
        self.backfill_s = backfill_s
        self.delay_s = delay_s
        self.max_points = max_points
        self.clock = clock
        self.stats = PollStats()

    @property
    def step_s(self) -> int:
        return self.engine.metrics.step_s

    async def poll_once(self) -> int:
        """Feed every step after the cursor up to now - delay; returns samples fed.

        Raises PrometheusError when Prometheus cannot answer; nothing of the failed
        range is fed then, so the next poll asks for the same range again.
        """
        step = self.step_s
        end = int(math.floor((self.clock() / 1e9 - self.delay_s) / step)) * step
        cursor = self.engine.metrics.cursors.get(SOURCE)
        after = cursor // 10**9 if cursor is not None else end - max(
            int(self.backfill_s) // step * step, step)
        fed = 0
        while after < end:
            upto = min(end, after + self.max_points * step)
            points = await self._fetch(after, upto)
            self.engine.feed_metrics(points)
            self.engine.metrics.cursors[SOURCE] = upto * 10**9
            await self.engine.advance()
            fed += len(points)
            after = upto
        self.stats.polls += 1
        self.stats.samples += fed
        return fed

    async def _fetch(self, after_s: int, upto_s: int) -> list[MetricPoint]:
        """Samples of every query at the steps in (after_s, upto_s]."""
        points: list[MetricPoint] = []
        for query in self.queries:
            try:
                result = await self.client.query_range(query.promql, after_s, upto_s,
                                                       self.step_s)
            except PrometheusQueryError as exc:  # the query itself is wrong: skip it, go on
                self.stats.query_errors += 1
                log.error("metrics query %r failed: %s; fix it in OPSBOT_METRICS_QUERIES",
                          query.promql, exc)
                continue
            for w in result.warnings:
                log.warning("metrics query %r: Prometheus warns: %s", query.promql, w)
            for series in result.series:
                labels = dict(series.labels)
                name = query.series_metric(labels)
                keep = series.ts_s > after_s
                points += [MetricPoint(name, labels, int(round(t * 1e9)), float(v))
                           for t, v in zip(series.ts_s[keep].tolist(),
                                           series.values[keep].tolist(), strict=True)]
        return points

    async def run(self, interval_s: float) -> None:
        """Poll until cancelled; failures are logged and counted and back off, never fatal."""
        try:
            while True:
                await asyncio.sleep(await self._poll_logged(interval_s))
        finally:
            await self.client.aclose()

    async def _poll_logged(self, interval_s: float) -> float:
        """One poll; returns the seconds until the next one."""
        try:
            n = await self.poll_once()
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
            s = self.stats
            s.failures += 1
            s.consecutive_failures += 1
            s.last_error = str(exc)[:300]
            delay = min(interval_s * 2.0 ** min(s.consecutive_failures, 16), MAX_BACKOFF_S)
            if isinstance(exc, PrometheusError):
                log.warning("polling Prometheus failed (%d in a row): %s; next try in %.0f s",
                            s.consecutive_failures, exc, delay)
            else:
                log.exception("metrics poll failed (%d in a row); next try in %.0f s",
                              s.consecutive_failures, delay)
            return max(delay, interval_s)
        self.stats.consecutive_failures = 0
        log.debug("polled Prometheus: %d samples", n)
        return interval_s

    def register_gauges(self, registry: CollectorRegistry) -> None:
        """The poller's counters on the service's /metrics."""
        for name, doc, read in (
            ("opsbot_metric_polls", "Prometheus polls that completed", "polls"),
            ("opsbot_metric_poll_failures", "Prometheus polls that failed", "failures"),
            ("opsbot_metric_query_errors", "metrics queries Prometheus refused", "query_errors"),
            ("opsbot_metric_samples_fed", "metric samples fed to the detector", "samples"),
        ):
            Gauge(name, doc, registry=registry).set_function(self._reader(read))

    def _reader(self, attr: str) -> Callable[[], float]:
        return lambda: float(getattr(self.stats, attr))


def poller_from_settings(settings: Settings, engine: DetectionEngine) -> MetricsPoller | None:
    """The poller `opsbot run` starts, or None when no metrics queries are configured."""
    queries = parse_queries(settings.metrics_queries)
    if not queries or not settings.prometheus_url:
        return None
    client = PrometheusClient(settings.prometheus_url, timeout_s=settings.prometheus_timeout_s)
    return MetricsPoller(client, engine, queries, backfill_s=settings.metrics_backfill_s,
                         delay_s=settings.metrics_delay_s)
