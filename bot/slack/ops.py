"""What `/opsbot` commands do, as mrkdwn replies: status, anomalies, mute, unmute, recalc.

Recalculation belongs to the detection engine; it is reached through the `Recalculator`
port, and `HealthProbe` reports the detector's health. Both are None until the engine
runs in this process, and the replies then say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx

from bot.settings import Settings
from bot.slack.feedback import FeedbackDesk
from bot.store import SqliteStore

__all__ = ["HealthProbe", "OpsCommands", "Recalculator"]

Progress = Callable[[str], Awaitable[None]]


class Recalculator(Protocol):
    async def __call__(self, target: str | None, dry_run: bool, progress: Progress) -> str:
        """Recalculate baselines/thresholds for a key, a service or all (None); the result
        (with the dry-run diff) as mrkdwn. Calls `progress` with short status lines."""
        ...


HealthProbe = Callable[[], Awaitable[dict[str, object]]]


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class OpsCommands:
    def __init__(self, settings: Settings, store: SqliteStore, desk: FeedbackDesk, *,
                 recalculator: Recalculator | None = None, health: HealthProbe | None = None,
                 agent_loaded: bool = False, clock: Callable[[], int] = time.time_ns) -> None:
        self.settings, self.store, self.desk = settings, store, desk
        self.recalculator, self.health = recalculator, health
        self.agent_loaded, self.clock = agent_loaded, clock

    async def anomalies(self, limit: int = 15) -> str:
        found = await self.store.list_anomalies(state="open", limit=limit + 1)
        if not found:
            return ":white_check_mark: No open anomalies."
        lines = [f"• SEV{a.peak_severity} `{a.key}` since {_when(a.started_ns)}"
                 f" (score {a.peak_score:.1f}, id {a.id})" for a in found[:limit]]
        more = "\n_and more; see `opsbot anomalies`_" if len(found) > limit else ""
        return f"*Open anomalies ({min(len(found), limit)})*\n" + "\n".join(lines) + more

    async def status(self) -> str:
        now = self.clock()
        series = await self.store.list_series()
        incidents = await self.store.list_incidents(state="open")
        open_anomalies = await self.store.list_anomalies(state="open")
        mutes = await self.store.active_mutes(now)
        detector = await self._detector_line()
        backends = await self._backends()
        lines = [
            "*opsbot status*",
            f"• Detector: {detector}",
            f"• Keys tracked: {len(series)}",
            f"• Open anomalies: {len(open_anomalies)} · open incidents: {len(incidents)}",
            f"• Mutes: {', '.join(f'`{m.target}` until {_when(m.until_ns)}' for m in mutes)}"
            if mutes else "• Mutes: none",
            f"• Backends: {backends}",
            f"• Model: {'loaded' if self.agent_loaded else 'not loaded (the agent is off)'}",
        ]
        return "\n".join(lines)

    async def _detector_line(self) -> str:
        if self.health is None:
            return "not running in this process"
        try:
            health = await self.health()
        except Exception as exc:  # a status command must answer even when a part is broken
            return f":warning: health check failed ({type(exc).__name__})"
        return ", ".join(f"{k} {v}" for k, v in health.items()) or "ok"

    async def _backends(self) -> str:
        s = self.settings
        named = {"Jaeger": s.jaeger_url, "Tempo": s.tempo_url, "Prometheus": s.prometheus_url}
        wanted = {name: url for name, url in named.items() if url}
        if not wanted:
            return "none configured (embedded store only)"
        async with httpx.AsyncClient(timeout=2.0) as client:
            results = await asyncio.gather(*(client.get(url) for url in wanted.values()),
                                           return_exceptions=True)
        parts = []
        for name, result in zip(wanted, results, strict=True):
            ok = not isinstance(result, BaseException) and result.status_code < 500
            parts.append(f"{name} {'reachable' if ok else 'unreachable'}")
        return ", ".join(parts)

    async def mute(self, target: str, duration_s: int, user_id: str) -> str:
        until = await self.desk.mute(target, duration_s, user_id)
        return f":mute: Muted `{target}` until {_when(until)} (by <@{user_id}>)."

    async def unmute(self, target: str) -> str:
        lifted = await self.desk.unmute(target)
        if not lifted:
            return f"`{target}` was not muted."
        return f":loud_sound: Unmuted `{target}`."

    async def recalc(self, target: str | None, dry_run: bool, progress: Progress) -> str:
        if self.recalculator is None:
            return (":warning: Recalculation is not available: the detection engine is not"
                    " running in this process. Run `opsbot recalc` on the host instead.")
        return await self.recalculator(target, dry_run, progress)
