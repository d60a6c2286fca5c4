"""The investigation graph with a scripted chat model and replayed tool outputs."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agent.planner import MAX_CALLS
from agent.state import turn_input
from tests.agent_fakes import NOW_NS, BrokenChatModel, make_graph, scripted

THREAD = {"user_id": "U1", "channel": "C1", "thread_ts": "1.1", "anomaly_id": 7}
CFG: dict[str, Any] = {"configurable": {"thread_id": "t"}, "recursion_limit": 40}
GOOD = ("SUMMARY: pg-pool.connect took 286.94 ms; kx-exchange:tcp.connect takes 264 ms, "
        "92% of it [E7].\nCAUSES:\n- new TCP connections to the database are slow [E7]\n"
        "RECOMMENDATIONS:\n- check connection reuse in the pool\n"
        "CONFIDENCE: medium, CPU is low at 0.5% [E5]")
BAD_NUMBER = GOOD.replace("264 ms", "612 ms")
BAD_CLAIM = GOOD.replace("CPU is low at 0.5%", "high CPU usage")


async def ask(graph: Any, question: str = "why is pg-pool.connect slow?",
              thread: dict[str, Any] | None = None, config: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    answer: dict[str, Any] = await graph.ainvoke(
        turn_input(question, thread or THREAD, NOW_NS), config or CFG)
    return answer


def test_graph_shape_snapshot() -> None:
    g = make_graph().get_graph()
    edges = sorted((e.source, e.target, bool(e.conditional)) for e in g.edges)
    assert sorted(g.nodes) == sorted(["__start__", "understand", "plan", "gather", "analyse",
                                      "verify", "fallback", "respond", "__end__"])
    assert edges == sorted([
        ("__start__", "understand", False), ("understand", "plan", False),
        ("plan", "gather", True), ("plan", "analyse", True), ("gather", "plan", False),
        ("analyse", "verify", True), ("analyse", "fallback", True),
        ("verify", "analyse", True), ("verify", "fallback", True), ("verify", "respond", True),
        ("fallback", "respond", False), ("respond", "__end__", False)])


async def test_no_model_uses_the_analyst_and_passes_the_check() -> None:
    state = await ask(make_graph())
    assert state["outcome"] == "analyst"
    assert state["verification"]["ok"], state["verification"]
    assert "tcp.connect" in state["text"] and "evidence-only analyst" in state["text"]
    tools = [c["tool"] for c in state["calls"]]
    assert tools[-1] == "trace_breakdown" and "metrics" in tools


async def test_verified_model_answer_is_delivered() -> None:
    model = scripted(GOOD)
    state = await ask(make_graph(model))
    assert state["outcome"] == "verified"
    assert "new TCP connections" in state["text"]
    prompt = model.prompts[0]
    assert "Analyze this performance anomaly:\n- Service: kx-exchange\n" in prompt
    assert "- Duration: 286.94ms (expected: 0.44ms ± 10.66ms)\n- Deviation: 26.88σ\n" in prompt
    assert "- CPU Usage: 0.5%, Memory: 142MB, Error Rate: 0.0%" in prompt


@pytest.mark.parametrize("bad", [BAD_NUMBER, BAD_CLAIM])
async def test_one_regeneration_names_the_violation(bad: str) -> None:
    model = scripted(bad, GOOD)
    state = await ask(make_graph(model))
    assert state["outcome"] == "regenerated"
    assert "rejected" in model.prompts[1]
    assert ("612" in model.prompts[1]) if bad is BAD_NUMBER else ("cpu" in model.prompts[1])
    assert "written a second time" in state["text"] and "612" not in state["text"]


async def test_two_rejections_fall_back_to_the_analyst() -> None:
    model = scripted(BAD_CLAIM, BAD_NUMBER)
    state = await ask(make_graph(model))
    assert state["outcome"] == "fallback_unverified"
    assert len(model.prompts) == 2
    assert "evidence-only analysis instead" in state["text"]
    assert "high CPU" not in state["text"] and "612" not in state["text"]
    assert state["verification"]["ok"]


async def test_model_failure_falls_back_to_the_analyst() -> None:
    state = await ask(make_graph(BrokenChatModel(messages=iter([]))))
    assert state["outcome"] == "fallback_model_error"
    assert "The model failed (ConnectionError)" in state["text"]
    assert "tcp.connect" in state["text"]


async def test_calls_are_unique_and_bounded() -> None:
    state = await ask(make_graph())
    made = [c for c in state["calls"] if c["status"] != "refused"]
    sigs = [json.dumps([c["tool"], c["args"]], sort_keys=True) for c in made]
    assert len(sigs) == len(set(sigs)) and len(made) <= MAX_CALLS
    assert state["rounds"] <= 3 and state["steps"] < 40


async def test_model_picks_the_subject_from_a_closed_list() -> None:
    model = scripted('{"key": "kx-exchange:pg-pool.connect"}', GOOD)
    state = await ask(make_graph(model), "the database connections feel sluggish",
                      {"user_id": "U1"})
    assert state["subject"]["key"] == "kx-exchange:pg-pool.connect"
    assert state["subject"]["source"] == "model"
    assert model.kwargs_seen[0]["response_format"]["schema"]["properties"]["key"]["enum"][-1] \
        == "none"


async def test_an_invented_subject_is_refused() -> None:
    model = scripted('{"key": "frontend:render"}', GOOD)
    state = await ask(make_graph(model), "the database connections feel sluggish",
                      {"user_id": "U1"})
    assert state["subject"] is None
    assert [c["tool"] for c in state["calls"]] == ["anomalies"]


async def test_thread_memory_survives_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "opsbot.db.agent.db"
    config: dict[str, Any] = {"configurable": {"thread_id": "slack:C1:1.1"}}
    async with aiosqlite.connect(str(path)) as conn:
        await ask(make_graph(saver=AsyncSqliteSaver(conn)), config=config)
    async with aiosqlite.connect(str(path)) as conn:  # a new process would do this
        state = await ask(make_graph(saver=AsyncSqliteSaver(conn)), "and what about yesterday?",
                          {"user_id": "U1"}, config)
    assert state["subject"]["key"] == "kx-exchange:pg-pool.connect"
    assert state["subject"]["source"] == "memory"
    assert state["subject"]["at_ns"] == NOW_NS - 86_400 * 10**9
    baseline = next(c for c in state["calls"] if c["tool"] == "baseline")
    assert baseline["args"]["at"] == "2024-06-02T10:15:00Z"
    assert len(state["turns"]) == 2
