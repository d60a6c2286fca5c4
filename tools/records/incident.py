"""`incident`: one incident with its origin, chain, member anomalies and notes."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tools._format import fmt_time, name, quoted
from tools.base import ToolArgs, ToolContext, ToolResult, ToolStatus
from tools.records._describe import anomaly_facts, anomaly_line

__all__ = ["IncidentTool", "note_of"]

_NOTE_FIELDS = ("resolution", "resolution_note", "notes", "note")


class IncidentArgs(ToolArgs):
    incident: str = Field(min_length=1, max_length=300,
                          description="incident number (e.g. '3') or its uid")


def note_of(details: dict[str, Any]) -> str | None:
    """A resolution note written by people or the bot, if the details hold one."""
    for field in _NOTE_FIELDS:
        value = details.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return None


class IncidentTool:
    name: ClassVar[str] = "incident"
    description: ClassVar[str] = (
        "One incident by number: state, times, origin service and key, the call chain, its "
        "anomalies with severities, and any resolution note.")
    Args: ClassVar[type[BaseModel]] = IncidentArgs

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        ref = args.incident.strip().lstrip("#")
        inc = await ctx.store.get_incident(int(ref) if ref.isdigit() else ref)
        if inc is None:
            return ToolResult(self.name, ToolStatus.EMPTY, source="store", error=(
                f"no incident {quoted(ref, 40)}; list recent ones with the anomalies tool"))
        members = await ctx.store.list_anomalies(incident_id=inc.id)
        chain = [str(s) for s in inc.details.get("chain", []) if isinstance(s, str)]
        note = note_of(inc.details)
        data = {"id": inc.id, "uid": inc.uid, "state": inc.state,
                "started": fmt_time(inc.started_ns),
                "ended": fmt_time(inc.ended_ns) if inc.ended_ns is not None else None,
                "origin_service": inc.origin_service, "origin_key": inc.origin_key,
                "severity": f"SEV{inc.peak_severity}" if inc.peak_severity else None,
                "chain": chain, "note": note,
                "anomalies": [anomaly_facts(a) for a in members]}
        when = (f"open since {fmt_time(inc.started_ns)}" if inc.state == "open" else
                f"resolved, {fmt_time(inc.started_ns)} to "
                f"{fmt_time(inc.ended_ns) if inc.ended_ns is not None else '?'}")
        text = f"Incident #{inc.id} {when}"
        if inc.peak_severity:
            text += f", SEV{inc.peak_severity}"
        if inc.origin_service:
            text += f", origin {name(inc.origin_service)}"
            text += f" ({name(inc.origin_key)})" if inc.origin_key else ""
        if chain:
            text += ", chain " + " -> ".join(name(s) for s in chain)
        if note:
            text += f"; note (data): {quoted(note, 120)}"
        text += f"; {len(members)} anomalies: " + "; ".join(anomaly_line(a) for a in members[:4])
        return ToolResult(self.name, ToolStatus.OK, text + ".", data, source="store")
