"""Where a tool gets traces: the store's exemplars first, then Jaeger or Tempo when configured.

Clients come from `ToolContext.clients` ("jaeger", "tempo") when the caller shares
them, else they are built from the settings for one call and closed after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.spans import Span
from tools.traces._backend import TraceNotFoundError
from tools.traces.jaeger import JaegerClient
from tools.traces.tempo import TempoClient

__all__ = ["Backends", "backends", "fetch_trace", "focus_span", "store_trace_id", "trace_link"]


@dataclass(slots=True)
class Backends:
    jaeger: JaegerClient | None
    tempo: TempoClient | None


@asynccontextmanager
async def backends(ctx: Any, timeout_s: float = 8.0) -> AsyncIterator[Backends]:
    """The configured trace backends; the ones built here are closed on exit."""
    owned: list[JaegerClient | TempoClient] = []
    found: dict[str, Any] = {}
    for name, factory, setting in (("jaeger", JaegerClient, "jaeger_url"),
                                   ("tempo", TempoClient, "tempo_url")):
        client = ctx.clients.get(name)
        url = getattr(ctx.settings, setting, None)
        if client is None and url:
            client = factory(url, timeout_s=timeout_s, retries=1)
            owned.append(client)
        found[name] = client
    try:
        yield Backends(found["jaeger"], found["tempo"])
    finally:
        for client in owned:
            await client.aclose()


def store_trace_id(trace_id: str) -> str:
    """Trace ids are kept as 32 lowercase hex digits; Tempo and users drop leading zeros."""
    return trace_id.strip().lower().rjust(32, "0")


async def fetch_trace(ctx: Any, trace_id: str) -> tuple[list[Span], str]:
    """The spans of a trace and where they came from ("store", "jaeger", "tempo").

    Empty spans and source "" when no source has it; backend errors other than
    not-found propagate (the tool turns them into an error result).
    """
    spans = await ctx.store.get_trace(store_trace_id(trace_id))
    if spans:
        return spans, "store"
    async with backends(ctx) as b:
        for source, client in (("jaeger", b.jaeger), ("tempo", b.tempo)):
            if client is None:
                continue
            try:
                spans = await client.get_trace(trace_id)
            except TraceNotFoundError:
                continue
            if spans:
                return spans, source
    return [], ""


def focus_span(spans: list[Span], key: str | None) -> Span | None:
    """The slowest span of `key` in the trace, or None when the key is absent."""
    if key is None:
        return None
    matching = [s for s in spans if s.key == key]
    return max(matching, key=lambda s: (s.duration_ns, -s.start_ns), default=None)


def trace_link(settings: Any, trace_id: str) -> str | None:
    template = getattr(settings, "trace_ui_url", None)
    return template.replace("{trace_id}", trace_id) if template else None
