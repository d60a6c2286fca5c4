"""AgentService end to end: the real tools over a simulator-filled SQLite store, the Slack port,
and per-thread memory in `<db_path>.agent.db`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.service import AgentService, memory_path
from bot.slack.agent_port import AgentPort, AskContext
from bot.store import SqliteStore
from tests.test_tools_support import NOW, SimStore, build_sim_store, settings_for
from tools.registry import default_tools


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimStore:
    return build_sim_store(tmp_path_factory.mktemp("agent-sim"))


async def test_real_tools_lead_the_analyst_to_the_exhausted_pool(sim: SimStore,
                                                                 tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    shutil.copy(sim.path, db)
    settings = settings_for(db, model_backend="none")
    seen: list[str] = []

    async def on_text(text: str) -> None:
        seen.append(text)

    context = AskContext(user_id="U1", channel="C1", thread_ts="1717.1",
                         anomaly_key="kx-exchange:pg-pool.connect")
    async with SqliteStore(db) as store:
        service = AgentService(settings, store, default_tools(settings), clock=lambda: NOW)
        assert isinstance(service, AgentPort)
        async with service:
            reply = await service.answer("why is it slow?", context, on_text)
            again = await service.answer("and what about yesterday?", context, on_text)
    assert reply.outcome == "analyst" and reply.verification["ok"]
    assert "pg-pool.wait" in reply.text and "pool is exhausted" in reply.text
    assert {"slow_traces", "trace_breakdown", "baseline", "metrics"} <= {
        c["tool"] for c in reply.calls if c["status"] == "ok"}
    assert seen[0].startswith("gathering evidence") and seen[-1] == again.text
    assert again.subject is not None and again.subject["key"] == "kx-exchange:pg-pool.connect"
    assert memory_path(db).is_file()


async def test_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    from agent.backends import BackendError

    settings = settings_for(tmp_path / "x.db")
    with pytest.raises(BackendError, match="unknown model backend 'gpt'"):
        AgentService(settings, None, {}, backend="gpt")
    with pytest.raises(BackendError, match="OPSBOT_OPENAI_BASE_URL"):
        AgentService(settings, None, {}, backend="openai")


async def test_a_store_of_replayed_history_sets_the_clock(sim: SimStore, tmp_path: Path) -> None:
    """After `opsbot ingest` of old files, questions are about then, not the wall clock."""
    db = tmp_path / "sim.db"
    shutil.copy(sim.path, db)
    settings = settings_for(db, model_backend="none")
    async with SqliteStore(db) as store:
        newest = await store.newest_span_ns()
        assert newest is not None
        later = newest + 30 * 86_400_000_000_000  # a month after the data ends
        old = AgentService(settings, store, {}, memory=False, clock=lambda: later)
        live = AgentService(settings, store, {}, memory=False,
                            clock=lambda: newest + 60_000_000_000)
        assert await old._now() == newest
        assert await live._now() == newest + 60_000_000_000  # live traffic: the wall clock
