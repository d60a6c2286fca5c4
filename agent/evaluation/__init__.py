"""`opsbot eval agent`: the agent on >= 30 cases, scored deterministically, per backend.

Cases are seeded simulator incidents or recorded tool outputs (agent/eval_cases/).
Reported: pass rate, latency p50/p95, how each answer was reached, and every
number delivered without support in the evidence (the target for that is zero).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from agent.evaluation._cases import Case, load_cases
from agent.evaluation._replay import replay_tools
from agent.evaluation._scoring import Score, score
from agent.evaluation._simulated import simulate

__all__ = ["cli", "run_case", "run_eval", "tools_for"]


def tools_for(case: Case, log: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The replay tools of a case and the span keys the agent may know."""
    from bot.simulator import DEFAULT_TOPOLOGY

    recorded = dict(case.tools)
    if case.simulator:
        sim = simulate(**case.simulator)
        recorded = {**sim.results, **recorded}
    return replay_tools(recorded, log), case.keys or list(DEFAULT_TOPOLOGY.keys)


async def run_case(case: Case, settings: Any, model: Any) -> tuple[Score, dict[str, Any]]:
    """Run the case's earlier questions, then its question, in one thread; score the last."""
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.evidence import EvidencePack
    from agent.facts import read_facts
    from agent.graph import build_graph
    from agent.prompting import shown_evidence
    from agent.state import AgentDeps, turn_input
    from tools.base import ToolContext

    log: list[dict[str, Any]] = []
    tools, keys = tools_for(case, log)

    async def known() -> list[str]:
        return keys

    def context(ask: Any, now_ns: int) -> ToolContext:
        return ToolContext(store=None, settings=settings, now_ns=now_ns,
                           user_id=ask.get("user_id"), is_admin=bool(ask.get("is_admin")))

    deps = AgentDeps(tools=tools, context=context, known_keys=known, model=model,
                     model_timeout_s=getattr(settings, "model_timeout_s", 60.0))
    graph = build_graph(deps, InMemorySaver())
    config = {"configurable": {"thread_id": case.id}, "recursion_limit": 40}
    now = 1_717_409_700 * 10**9  # during the simulated incidents
    for q in case.previous:
        await graph.ainvoke(turn_input(q, case.thread, now), config)
    started = time.perf_counter()
    state = await graph.ainvoke(turn_input(case.question, case.thread, now), config)
    seconds = time.perf_counter() - started
    pack = EvidencePack.from_list(state.get("evidence", []))
    shown = shown_evidence(pack, read_facts(pack, (state.get("subject") or {}).get("key")))
    result = score(case, state.get("text", ""), state.get("answer", {}), state.get("calls", []),
                   shown, state.get("outcome", ""), seconds)
    return result, {"text": state.get("text", ""), "calls": state.get("calls", []),
                    "writes": [c for c in log if c["tool"] in ("record_feedback", "recalculate")]}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_eval(settings: Any, model: Any, backend: str, cases: list[Case] | None = None
             ) -> dict[str, Any]:
    cases = cases if cases is not None else load_cases()

    async def all_cases() -> list[Score]:
        return [(await run_case(c, settings, model))[0] for c in cases]

    scores = asyncio.run(all_cases())
    secs = [s.seconds for s in scores]
    sim_ids = {c.id for c in cases if c.simulator}
    sim_scores = [s for s in scores if s.case in sim_ids]
    outcomes: dict[str, int] = {}
    for s in scores:
        outcomes[s.outcome] = outcomes.get(s.outcome, 0) + 1
    return {
        "backend": backend, "cases": len(scores),
        "passed": sum(s.passed for s in scores),
        "pass_rate": round(sum(s.passed for s in scores) / max(1, len(scores)), 3),
        "simulator_pass_rate": round(sum(s.passed for s in sim_scores) / max(1, len(sim_scores)),
                                     3),
        "unverified_numbers": sum(len(s.unverified) for s in scores),
        "latency_s": {"p50": round(statistics.median(secs), 3) if secs else 0.0,
                      "p95": round(_pct(secs, 0.95), 3), "max": round(max(secs, default=0), 3)},
        "outcomes": outcomes,
        "failures": {s.case: s.failures for s in scores if not s.passed},
    }


def _print(report: dict[str, Any], out: Any) -> None:
    out.write(f"backend {report['backend']}: {report['passed']}/{report['cases']} passed "
              f"({100 * report['pass_rate']:.1f}%), simulator incidents "
              f"{100 * report['simulator_pass_rate']:.1f}%\n")
    lat = report["latency_s"]
    out.write(f"latency per answer: p50 {lat['p50']:.3f} s, p95 {lat['p95']:.3f} s, "
              f"max {lat['max']:.3f} s\n")
    out.write(f"unverified numbers delivered: {report['unverified_numbers']}\n")
    out.write("outcomes: " + ", ".join(f"{k}={v}" for k, v in report["outcomes"].items()) + "\n")
    for case, fails in report["failures"].items():
        out.write(f"  FAIL {case}: {'; '.join(fails)}\n")


def cli(*, settings: Any, backend: str | None, as_json: bool) -> int:
    """Entry point of `opsbot eval agent`; exit 1 when any unsupported number was delivered."""
    from agent.backends import BackendError, make_model, resolve_backend

    try:
        choice = resolve_backend(settings, backend or "none")
        model = make_model(settings, choice)
    except BackendError as exc:
        sys.stderr.write(f"cannot use the backend: {exc}\n")
        return 2
    report = run_eval(settings, model, choice.name)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print(report, sys.stdout)
    return 1 if report["unverified_numbers"] else 0
