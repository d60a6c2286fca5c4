"""What every agent tool is: a typed description the model sees, plus a client that does the work.

A tool never raises into the agent loop: `run` returns a `ToolResult` whose status
says what happened and whose `summary` holds the facts (with their numbers) that
go into the evidence pack. `invoke` enforces that contract and the timeout for
any tool, so a broken backend becomes an `error` result, not a crash.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "SUMMARY_MAX_CHARS",
    "Tool",
    "ToolArgs",
    "ToolContext",
    "ToolResult",
    "ToolStatus",
    "clip_summary",
    "invoke",
]

# A summary goes to a small model inside an evidence pack of ~1,500 tokens for all tools.
SUMMARY_MAX_CHARS = 600


class ToolStatus(enum.StrEnum):
    OK = "ok"
    EMPTY = "empty"  # the call worked and found nothing
    ERROR = "error"  # bad arguments, backend failure, timeout
    UNAVAILABLE = "unavailable"  # the backend is not configured or not reachable
    DENIED = "denied"  # the caller may not do this (admin-only, unidentified user)


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool: str
    status: ToolStatus
    summary: str = ""  # facts with numbers, for the evidence pack; bounded in size
    data: dict[str, Any] = field(default_factory=dict)  # JSON-able, for tests and --json
    error: str | None = None
    source: str = ""  # store | jaeger | tempo | prometheus | stand-in (labelled as such)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is ToolStatus.OK


@dataclass(slots=True)
class ToolContext:
    """What a tool may use: the store, settings, and who is asking (never a token)."""

    store: Any  # bot.store.SqliteStore
    settings: Any  # bot.settings.Settings
    now_ns: int
    user_id: str | None = None  # the identified Slack user, None from the CLI
    is_admin: bool = False
    confirmed: bool = False  # the user confirmed an action that asked for confirmation
    clients: dict[str, Any] = field(default_factory=dict)  # shared HTTP clients by name


class ToolArgs(BaseModel):
    """Base of every tool's `Args`: unknown fields are an error, not silently dropped.

    A small model that invents an argument should hear about it, and the JSON
    schema (`additionalProperties: false`) keeps grammar-constrained output closed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def clip_summary(text: str, limit: int = SUMMARY_MAX_CHARS) -> str:
    """`text` cut at the last sentence or clause that fits, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = max(head.rfind("; "), head.rfind(". "))
    return (head[: cut + 1] if cut > limit // 2 else head).rstrip() + "…"


class Tool(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]

    async def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult: ...


async def invoke(
    tool: Tool, raw_args: dict[str, Any], ctx: ToolContext, timeout_s: float = 10.0
) -> ToolResult:
    """Validate arguments, run with a timeout, and turn every failure into a result."""
    started = time.perf_counter()
    try:
        args = tool.Args.model_validate(raw_args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return ToolResult(tool.name, ToolStatus.ERROR, error=f"bad arguments: {problems}")
    try:
        result = await asyncio.wait_for(tool.run(args, ctx), timeout_s)
    except TimeoutError:
        result = ToolResult(tool.name, ToolStatus.ERROR, error=f"timed out after {timeout_s:g} s")
    except Exception as exc:  # noqa: BLE001 - the contract: never raise into the loop
        result = ToolResult(tool.name, ToolStatus.ERROR, error=f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    return ToolResult(result.tool, result.status, clip_summary(result.summary), result.data,
                      result.error, result.source, elapsed)
