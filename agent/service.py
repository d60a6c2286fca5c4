"""The agent as a service: one graph, one model, per-thread memory in SQLite.

`AgentService.answer(question, context, on_text)` is what the Slack bot and the CLI
call. Memory lives in `<db_path>.agent.db` through langgraph-checkpoint-sqlite,
keyed by the Slack thread, so a follow-up question keeps the thread's subject.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.backends import BackendChoice, make_model, resolve_backend
from agent.graph import build_graph
from agent.state import AgentDeps, turn_input

__all__ = ["AgentReply", "AgentService", "memory_path"]

OnText = Callable[[str], Awaitable[None]]
LOCAL_MAX_TOKENS = 256  # the four sections fit in ~150-250 tokens
LOCAL_PACK_TOKENS = 800


def memory_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".agent.db")


@dataclass(slots=True)
class AgentReply:
    """What an answer carries: the text, and how it was reached (for --json and tests)."""

    text: str
    outcome: str
    answer: dict[str, Any]
    calls: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    verification: dict[str, Any]
    subject: dict[str, Any] | None
    backend: str
    seconds: float
    model_calls: list[dict[str, Any]] = field(default_factory=list)


def _ask_dict(context: Any) -> dict[str, Any]:
    """Any context object (the Slack port's AskContext, a dict, None) as plain fields."""
    if context is None:
        return {}
    if isinstance(context, Mapping):
        return dict(context)
    names = ("user_id", "channel", "thread_ts", "anomaly_id", "incident_id", "anomaly_key",
             "is_admin", "confirmed")
    return {n: getattr(context, n) for n in names if getattr(context, n, None) is not None}


def thread_id(ask: Mapping[str, Any]) -> str:
    if ask.get("channel") and ask.get("thread_ts"):
        return f"slack:{ask['channel']}:{ask['thread_ts']}"
    return str(ask.get("thread_id") or "cli")


STALE_STORE_NS = 3_600_000_000_000  # an hour without spans: the store holds history


class AgentService:
    """Build once at start (loads the model), then `answer` per question."""

    def __init__(self, settings: Any, store: Any, tools: Mapping[str, Any] | None = None,
                 backend: str | None = None, model: Any = None, memory: bool = True,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        if tools is None:
            from tools.registry import default_tools

            tools = default_tools(settings)
        self.tools = tools
        self.choice = BackendChoice("custom") if model is not None else resolve_backend(
            settings, backend)
        self.model = model if model is not None else make_model(settings, self.choice)
        self._memory = memory
        self._saver: Any = None
        self._conn: Any = None
        self.graph: Any = None

    async def start(self) -> AgentService:
        saver = None
        if self._memory:
            import aiosqlite
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            path = memory_path(Path(self.settings.db_path))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = await aiosqlite.connect(str(path))
            saver = self._saver = AsyncSqliteSaver(self._conn)
            await saver.setup()
        # A local llama.cpp model on CPU pays ~2.5 ms per prompt token and ~17 ms per generated
        # one (Gemma 3 270M, 2 cores): a tighter evidence pack and an answer-sized token cap.
        local = self.choice.name == "llamacpp"
        deps = AgentDeps(tools=self.tools, context=self._context, known_keys=self._keys,
                         model=self.model, model_timeout_s=self.settings.model_timeout_s,
                         max_tokens=LOCAL_MAX_TOKENS if local else 384,
                         pack_tokens=LOCAL_PACK_TOKENS if local else 1500)
        self.graph = build_graph(deps, saver)
        return self

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> AgentService:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _now(self) -> int:
        """The wall clock, or the newest span for a store of replayed history.

        After `opsbot ingest` of last month's files, "why is X slow?" means then, not
        today: when the newest span is over an hour old, time stops there.
        """
        now = self.clock()
        latest = await self.store.newest_span_ns()
        return latest if latest is not None and latest < now - STALE_STORE_NS else now

    async def _keys(self) -> list[str]:
        return [s.name for s in await self.store.list_series("span")]

    def _context(self, ask: Mapping[str, Any], now_ns: int) -> Any:
        from tools.base import ToolContext

        user = ask.get("user_id")
        admin = bool(ask.get("is_admin")) or (user is not None and user in
                                              (self.settings.slack_admins or []))
        return ToolContext(store=self.store, settings=self.settings, now_ns=now_ns,
                           user_id=user, is_admin=admin, confirmed=bool(ask.get("confirmed")))

    async def answer(self, question: str, context: Any = None, on_text: OnText | None = None
                     ) -> AgentReply:
        """Answer one question; `on_text` gets progress lines, the queue place, then the answer."""
        if self.graph is None:
            await self.start()
        ask = _ask_dict(context)
        started = time.perf_counter()
        config: dict[str, Any] = {"configurable": {"thread_id": thread_id(ask)},
                                  "recursion_limit": 40}
        if on_text is not None:
            config["configurable"]["progress"] = on_text
        state = await self.graph.ainvoke(turn_input(question, ask, await self._now()), config)
        return AgentReply(text=state.get("text", ""), outcome=state.get("outcome", ""),
                          answer=state.get("answer", {}), calls=state.get("calls", []),
                          evidence=state.get("evidence", []),
                          verification=state.get("verification", {}),
                          subject=state.get("subject"), backend=self.choice.name,
                          seconds=time.perf_counter() - started,
                          model_calls=state.get("model_calls", []))
