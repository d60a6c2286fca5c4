"""`opsbot ask`: one question to the agent from the command line, with its working shown."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

from agent.backends import BackendError
from agent.service import AgentReply, AgentService

__all__ = ["ask_command", "format_reply"]


async def _ask(settings: Any, question: str, backend: str | None) -> AgentReply:
    from bot.store import SqliteStore
    from tools.registry import default_tools

    async with SqliteStore(settings.db_path) as store:
        service = AgentService(settings, store, default_tools(settings), backend=backend)
        async with service:
            return await service.answer(question, {"thread_id": "cli"})


def format_reply(reply: AgentReply) -> str:
    """The answer, then the tools with arguments and timings, the evidence, the check."""
    lines = [reply.text, "", f"backend: {reply.backend}   outcome: {reply.outcome}   "
             f"total: {reply.seconds:.2f} s", "", "tools called:"]
    for c in reply.calls:
        args = ", ".join(f"{k}={v!r}" for k, v in c.get("args", {}).items())
        took = f"{c['elapsed_s'] * 1000:.1f} ms" if "elapsed_s" in c else c.get("reason", "")
        lines.append(f"  {c.get('evidence', '--'):>4} {c['tool']}({args}) -> {c['status']} "
                     f"{took}" + (f" error: {c['error']}" if c.get("error") else ""))
    lines += ["", "evidence pack:"]
    lines += [f"  [{e['id']}] {e['tool']} {e['status']}: {e['text']}" for e in reply.evidence]
    v = reply.verification
    lines += ["", f"verification: {'passed' if v.get('ok') else 'FAILED'} - "
                  f"{v.get('detail', 'not run')}"]
    for m in reply.model_calls:
        lines.append(f"model call: {m.get('prompt_tokens')} prompt + "
                     f"{m.get('completion_tokens')} generated tokens in {m['seconds']:.2f} s")
    return "\n".join(lines)


def ask_command(*, settings: Any, question: str, as_json: bool, backend: str | None, out: Any,
                err: Any) -> int:
    if not question.strip():
        err.print("[red]empty question[/]: ask something, e.g. opsbot ask \"why is "
                  "pg-pool.connect slow?\"")
        return 2
    if not settings.db_path.exists():
        err.print(f"[red]no store at {settings.db_path}[/]: run `opsbot demo` or `opsbot ingest` "
                  "first, or point OPSBOT_DB_PATH at your store")
        return 2
    try:
        reply = asyncio.run(_ask(settings, question, backend))
    except BackendError as exc:
        err.print(f"[red]model backend:[/] {exc}")
        return 2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("tools"):
            err.print("[yellow]the agent's tools are not built yet[/] (tools/registry.py); "
                      "nothing was asked")
            return 3
        raise
    if as_json:
        out.print_json(json.dumps(asdict(reply), default=str))
    else:
        out.print(format_reply(reply), markup=False, highlight=False)
    return 0
