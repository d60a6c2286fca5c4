"""Run one tool by name outside the agent: `python -m tools.cli slow_traces '{"key": "a:b"}'`.

`run_tool` is what a CLI command (`opsbot tool ...`) or a test calls: it opens the
store from the settings, builds the registry and goes through `invoke`, so the
result is exactly what the agent would get.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools.base import ToolContext, ToolResult, ToolStatus, invoke

__all__ = ["main", "run_tool"]


async def run_tool(settings: Any, name: str, raw_args: dict[str, Any], *,
                   user_id: str | None = None, admin: bool = False, confirmed: bool = False,
                   now_ns: int | None = None, timeout_s: float = 30.0) -> ToolResult:
    """One tool call against the configured store; an unknown name is an error result."""
    from bot.store import SqliteStore
    from tools.registry import TOOL_NAMES, default_tools

    if name not in TOOL_NAMES:
        return ToolResult(name, ToolStatus.ERROR,
                          error=f"unknown tool {name!r}; choose one of: {', '.join(TOOL_NAMES)}")
    async with SqliteStore(settings.db_path) as store:
        ctx = ToolContext(store=store, settings=settings, now_ns=now_ns or time.time_ns(),
                          user_id=user_id, is_admin=admin, confirmed=confirmed)
        return await invoke(default_tools(settings)[name], raw_args, ctx, timeout_s)


def main(argv: list[str] | None = None) -> int:
    from bot.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m tools.cli", description=__doc__)
    parser.add_argument("tool")
    parser.add_argument("args", nargs="?", default="{}", help="JSON object of arguments")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    ns = parser.parse_args(argv)
    try:
        raw = json.loads(ns.args)
    except json.JSONDecodeError as exc:
        parser.error(f"arguments must be a JSON object: {exc}")
    result = asyncio.run(run_tool(load_settings(ns.config), ns.tool, raw))
    if ns.json:
        print(json.dumps(asdict(result), default=str, indent=2))
    else:
        print(f"[{result.status.value}] {result.summary or result.error}")
    return 0 if result.status in (ToolStatus.OK, ToolStatus.EMPTY) else 1


if __name__ == "__main__":
    sys.exit(main())
