"""Upload an alert's chart into its thread once the alert message is in Slack.

The alert itself goes through the outbox; its chart is a job kept in the store
(`add_chart_job`) until it is uploaded or given up, so a chart still pending when the
process stops is uploaded after the restart (`resume`). Rendering and the upload
(files_upload_v2: getUploadURLExternal, the upload, completeUploadExternal) run in a
background task with a few retries, so they never delay an alert.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack._delivery import DELIVERY_ERRORS, backoff_s, classify
from bot.slack.chart import load_chart_data, render_png
from bot.slack.metrics import SlackMetrics
from bot.slack.outbox import Outbox, OutboxEntry
from bot.slack.tasks import BackgroundTasks
from bot.store import AnomalyRecord, SqliteStore

__all__ = ["ChartUploader", "wait_sent"]

log = logging.getLogger(__name__)
_rng = random.Random()  # jitter only


async def wait_sent(outbox: Outbox, dedupe_key: str, timeout_s: float,
                    poll_s: float = 0.05) -> OutboxEntry | None:
    """The entry once sent; None when it failed or is still pending after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        entry = await outbox.entry(dedupe_key)
        if entry is not None and entry.state != "pending":
            return entry if entry.state == "sent" else None
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(poll_s)


class ChartUploader:
    def __init__(self, store: SqliteStore, outbox: Outbox, client: AsyncWebClient,
                 tasks: BackgroundTasks, metrics: SlackMetrics, *, wait_s: float = 600.0,
                 attempts: int = 4, clock: Callable[[], int] = time.time_ns) -> None:
        self.store, self.outbox, self.client, self.tasks = store, outbox, client, tasks
        self.metrics, self.wait_s, self.attempts, self.clock = metrics, wait_s, attempts, clock

    async def schedule(self, anomaly: AnomalyRecord, post_key: str) -> None:
        """Store the chart job, then start it (call after the post is queued)."""
        await self.store.add_chart_job(post_key, anomaly.id, self.clock())
        self._start(anomaly, post_key)

    async def resume(self) -> int:
        """Start the jobs an earlier process left (at start); returns how many."""
        started = 0
        for job in await self.store.chart_jobs():
            anomaly = await self.store.get_anomaly(job.anomaly_id)
            if anomaly is None:
                await self.store.finish_chart_job(job.post_key)
                continue
            self._start(anomaly, job.post_key)
            started += 1
        if started:
            log.info("charts: %d upload(s) left by the last run resumed", started)
        return started

    def _start(self, anomaly: AnomalyRecord, post_key: str) -> None:
        self.tasks.spawn(self._job(anomaly, post_key), f"chart {anomaly.uid}")

    async def _job(self, anomaly: AnomalyRecord, post_key: str) -> None:
        # Cancelled (the process stops): the job stays stored and `resume` runs it again.
        # Done or given up: forgotten. A crash between Slack accepting the upload and this
        # delete would upload it again after the restart (files have no idempotency key).
        if await self.upload(anomaly, post_key) is not None:
            await self.store.finish_chart_job(post_key)

    async def upload(self, anomaly: AnomalyRecord, post_key: str) -> bool | None:
        """Render after the post is sent, then upload into its thread. True: uploaded;
        False: given up (no post, no data, refused); None: the post is still pending."""
        entry = await wait_sent(self.outbox, post_key, self.wait_s)
        if entry is None:
            pending = await self.outbox.entry(post_key)
            if pending is not None and pending.state == "pending":
                log.info("chart %s: the alert is still queued; the chart waits for the next"
                         " start", anomaly.uid)
                return None
        if entry is None or entry.channel is None or entry.result_ts is None:
            log.info("chart %s: the alert was not sent; no chart", anomaly.uid)
            return False
        # The 24 h up to the anomaly's last anomalous window: "now" when live, and the
        # right hours when the detector replays history.
        data = await load_chart_data(self.store, anomaly, anomaly.updated_ns)
        if not data.has_data:
            self.metrics.charts.labels("no_data").inc()
            return False
        png = await asyncio.to_thread(render_png, data)
        message = await self.store.slack_message_at(entry.channel, entry.result_ts)
        thread_ts = (message.thread_ts if message and message.thread_ts else entry.result_ts)
        return await self._send(anomaly, png, entry.channel, thread_ts)

    async def _send(self, anomaly: AnomalyRecord, png: bytes, channel: str,
                    thread_ts: str) -> bool | None:
        """True: uploaded; False: refused for good; None: Slack kept failing (try at the
        next start)."""
        for attempt in range(1, self.attempts + 1):
            try:
                await self.client.files_upload_v2(
                    channel=channel, thread_ts=thread_ts, content=png,
                    filename=f"opsbot-{anomaly.id}.png", title=f"{anomaly.key}: last 24 h")
            except DELIVERY_ERRORS as exc:
                failure = classify(exc, "files_upload_v2", channel)
                if failure.kind == "permanent" or attempt == self.attempts:
                    log.warning("chart %s: not uploaded: %s", anomaly.uid, failure.reason)
                    self.metrics.charts.labels("error").inc()
                    return False if failure.kind == "permanent" else None
                delay = failure.retry_after_s or backoff_s(attempt, _rng)
                await asyncio.sleep(delay)
                continue
            self.metrics.charts.labels("uploaded").inc()
            return True
        return None

