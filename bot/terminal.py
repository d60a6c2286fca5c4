"""The terminal as the alert channel when no Slack token is set (`opsbot run` / `opsbot demo`).

Alerts render as rich panels with the same content as the Slack message; typed lines
give feedback and ask the agent: `ask <question>`, `fp <id>`, `ok <id>`, `help`.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from bot.slack.agent_port import AGENT_UNAVAILABLE, AgentPort, AskContext
from bot.slack.blocks import SEVERITY_STYLE, AlertView
from bot.slack.notifier import EventKind
from bot.slack.views import alert_view, feedback_notes
from bot.store import AnomalyRecord, IncidentRecord, SqliteStore

__all__ = ["TERMINAL_HELP", "TerminalChannel", "stdin_lines"]

TERMINAL_HELP = ("commands: ask <question> | fp <anomaly id> (false positive) | "
                 "ok <anomaly id> (confirmed) | help")
TERMINAL_USER = "terminal"
_WORDS = {"false_positive": "marked false positive", "confirmed": "confirmed",
          "acknowledged": "acknowledged", "muted": "muted"}


def _panel(view: AlertView, kind: EventKind) -> Panel:
    colour = SEVERITY_STYLE[view.severity][1]
    unit = view.unit
    head = Text(f"SEV{view.severity}  {view.service}:{view.operation}", style=f"bold {colour}")
    if view.state == "resolved":
        head.append("  resolved", style="green")
    lines = [
        head,
        Text(f"{view.observed:,.1f} {unit} vs p50 {view.baseline_p50:,.1f} {unit} / "
             f"p99 {view.baseline_p99:,.1f} {unit} for {view.baseline_bucket}"),
        Text(f"score {view.score:.1f}"
             + (f" · p{view.percentile:g} of this key's history" if view.percentile else ""),
             style="dim"),
    ]
    if view.origin_service:
        lines.append(Text(f"most likely origin: {view.origin_service}"))
    for trace_id in view.exemplar_trace_ids[:3]:
        link = view.trace_url_template.format(trace_id=trace_id) if view.trace_url_template \
            else trace_id
        lines.append(Text(f"trace {link}", style="cyan"))
    for note in view.feedback:
        lines.append(Text(f"{_WORDS[note.kind]} by {note.user_id}", style="italic"))
    title = f"anomaly {view.anomaly_id} · {kind}"
    return Panel(Group(*lines), title=title, border_style=colour, expand=False,
                 subtitle="fp/ok <id> · ask <question>")


class TerminalChannel:
    """An AlertSink that prints; `run_input` handles what the user types."""

    def __init__(self, console: Console, store: SqliteStore, agent: AgentPort | None = None,
                 *, agent_loader: Callable[[], Awaitable[AgentPort | None]] | None = None,
                 trace_url_template: str | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.console, self.store, self.agent = console, store, agent
        self.agent_loader = agent_loader  # loads the model on the first `ask`, not at start
        self.trace_url_template, self.clock = trace_url_template, clock

    async def on_event(self, kind: EventKind, anomaly: AnomalyRecord | None,
                       incident: IncidentRecord | None = None) -> None:
        if anomaly is None:
            if incident is not None:
                self.console.print(f"[bold]incident {incident.id}[/] {incident.state}"
                                   f" (origin {incident.origin_service or '?'})")
            return
        await self.show(anomaly, kind, incident)

    async def on_engine_event(self, event: Any) -> None:
        """Subscriber for bot.detection's EngineEvent."""
        await self.on_event(event.kind, event.anomaly, event.incident)

    async def show(self, anomaly: AnomalyRecord, kind: EventKind = "updated",
                   incident: IncidentRecord | None = None) -> None:
        now = self.clock()
        feedback = (await self.store.feedback_for([anomaly.id]))[anomaly.id]
        notes = feedback_notes(feedback, await self.store.acks_for(anomaly.id),
                               await self.store.active_mutes(now), anomaly.key, now)
        view = alert_view(anomaly, incident, notes, self.trace_url_template)
        self.console.print(_panel(view, kind))

    async def handle(self, line: str) -> None:
        """One typed line."""
        verb, _, rest = line.strip().partition(" ")
        verb, rest = verb.lower(), rest.strip()
        if not verb:
            return
        if verb in ("fp", "ok"):
            await self._feedback("false_positive" if verb == "fp" else "confirmed", rest)
        elif verb == "ask" and rest:
            await self._ask(rest)
        else:
            self.console.print(TERMINAL_HELP)

    async def _feedback(self, verdict: Any, ref: str) -> None:
        anomaly = await self.store.get_anomaly(int(ref)) if ref.isdigit() else None
        if anomaly is None:
            self.console.print(f"[red]no anomaly {ref!r}[/]: give the number shown in the"
                               " alert's title, e.g. `fp 12`")
            return
        await self.store.add_feedback(anomaly.id, verdict, TERMINAL_USER, "cli", self.clock())
        await self.show(anomaly)

    async def _ask(self, question: str) -> None:
        if self.agent is None and self.agent_loader is not None:
            with self.console.status("Loading the agent's model..."):
                self.agent = await self.agent_loader()
            self.agent_loader = None
        if self.agent is None:
            self.console.print(AGENT_UNAVAILABLE.replace(":warning: ", ""))
            return
        open_ids = [a.id for a in await self.store.list_anomalies(state="open", limit=5)]
        context = AskContext(TERMINAL_USER, "terminal", None, tuple(open_ids))

        async def on_text(_: str) -> None:
            return None

        with self.console.status("Looking at traces and metrics..."):
            answer = await self.agent.answer(question, context, on_text)
        self.console.print(answer.text)

    async def run_input(self, lines: AsyncIterator[str]) -> None:
        async for line in lines:
            try:
                await self.handle(line)
            except Exception as exc:  # a typo must not end the session
                self.console.print(f"[red]error:[/] {type(exc).__name__}: {exc}")


async def stdin_lines() -> AsyncIterator[str]:
    """Lines typed on stdin; ends at EOF. A daemon thread reads, so a pending read never
    holds up the process's exit (asyncio.to_thread's threads are joined at shutdown)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, name="terminal input", daemon=True).start()
    while line := await queue.get():
        yield line
