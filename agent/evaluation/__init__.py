"""`opsbot eval agent`: the agent on >= 30 cases, scored deterministically, per backend.

Cases are seeded simulator incidents or recorded tool outputs (agent/eval_cases/).
A simulator case is asked over a real store: the incident's traffic through the
real ingest pipeline and detection engine (`_store.py`), the real tools
(`tools.registry.default_tools`) over it, in the thread of the anomaly the engine
opened. Recorded cases replay their tool outputs. Reported: pass rate, latency
p50/p95, how each answer was reached, and every number delivered without support
in the evidence (the target for that is zero).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.evaluation._cases import Case, load_cases
from agent.evaluation._replay import replay_tools
from agent.evaluation._scoring import Score, score
from agent.evaluation._store import StoreCache

__all__ = ["StoreCache", "cli", "run_case", "run_eval", "tools_for"]

_RECORDED_NOW_NS = 1_717_409_700 * 10**9  # recorded cases: during their recorded incidents
_NO_BACKENDS = {"prometheus_url": None, "jaeger_url": None, "tempo_url": None}


def tools_for(case: Case, log: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The replay tools of a recorded case and the span keys the agent may know."""
    from bot.simulator import DEFAULT_TOPOLOGY

    return replay_tools(dict(case.tools), log), case.keys or list(DEFAULT_TOPOLOGY.keys)


@dataclass(slots=True)
class _Setup:
    """What one case is asked over: tools, their context, known keys, time and thread."""

    tools: Mapping[str, Any]
    context: Callable[[Mapping[str, Any], int], Any]
    known: Callable[[], Awaitable[list[str]]]
    now_ns: int
    thread: dict[str, Any]
    store: Any = None


def _recorded_setup(case: Case, settings: Any, log: list[dict[str, Any]]) -> _Setup:
    from tools.base import ToolContext

    tools, keys = tools_for(case, log)

    async def known() -> list[str]:
        return keys

    def context(ask: Any, now_ns: int) -> ToolContext:
        return ToolContext(store=None, settings=settings, now_ns=now_ns,
                           user_id=ask.get("user_id"), is_admin=bool(ask.get("is_admin")))

    return _Setup(tools, context, known, _RECORDED_NOW_NS, dict(case.thread))


async def _simulated_setup(case: Case, settings: Any, cache: StoreCache) -> _Setup:
    """The real tools over the incident's real store, in the thread of its anomaly."""
    from bot.store import SqliteStore
    from tools.base import ToolContext
    from tools.metrics.standin import MetricStandIn
    from tools.registry import default_tools

    sim = dict(case.simulator or {})
    built = await cache.get(sim["scenario"], int(sim.get("seed", 1)),
                            float(sim.get("magnitude", 1.0)), sim.get("subject_key"))
    # The case's own store and simulator: no Prometheus or trace backend of the user's.
    local = settings.model_copy(update={**_NO_BACKENDS, "db_path": built.path})
    tools = default_tools(local, metric_standin=MetricStandIn(built.simulator))
    store = await SqliteStore(built.path).__aenter__()

    async def known() -> list[str]:
        return [s.name for s in await store.list_series("span")]

    def context(ask: Any, now_ns: int) -> ToolContext:
        return ToolContext(store=store, settings=local, now_ns=now_ns,
                           user_id=ask.get("user_id"), is_admin=bool(ask.get("is_admin")))

    thread = dict(case.thread)
    thread.pop("anomaly_id", None)
    thread.pop("anomaly_key", None)
    if built.anomaly is not None:  # the alert the question is asked under
        thread.update(anomaly_id=built.anomaly.id, anomaly_key=built.anomaly.key)
        thread.setdefault("channel", "C0ALERTS")
        thread.setdefault("thread_ts", f"{built.anomaly.started_ns / 1e9:.6f}")
    return _Setup(tools, context, known, built.now_ns, thread, store)


async def run_case(case: Case, settings: Any, model: Any, cache: StoreCache | None = None
                   ) -> tuple[Score, dict[str, Any]]:
    """Run the case's earlier questions, then its question, in one thread; score the last."""
    log: list[dict[str, Any]] = []
    if case.simulator:
        if cache is None:
            with tempfile.TemporaryDirectory(prefix="opsbot-eval-agent-") as tmp:
                return await run_case(case, settings, model, StoreCache(Path(tmp)))
        setup = await _simulated_setup(case, settings, cache)
    else:
        setup = _recorded_setup(case, settings, log)
    try:
        return await _ask(case, setup, model, settings, log)
    finally:
        if setup.store is not None:
            await setup.store.close()


async def _ask(case: Case, setup: _Setup, model: Any, settings: Any, log: list[dict[str, Any]]
               ) -> tuple[Score, dict[str, Any]]:
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.evidence import EvidencePack
    from agent.facts import read_facts
    from agent.graph import build_graph
    from agent.prompting import shown_evidence
    from agent.state import AgentDeps, turn_input

    deps = AgentDeps(tools=setup.tools, context=setup.context, known_keys=setup.known,
                     model=model, model_timeout_s=getattr(settings, "model_timeout_s", 60.0))
    graph = build_graph(deps, InMemorySaver())
    config = {"configurable": {"thread_id": case.id}, "recursion_limit": 40}
    for q in case.previous:
        await graph.ainvoke(turn_input(q, setup.thread, setup.now_ns), config)
    started = time.perf_counter()
    state = await graph.ainvoke(turn_input(case.question, setup.thread, setup.now_ns), config)
    seconds = time.perf_counter() - started
    pack = EvidencePack.from_list(state.get("evidence", []))
    shown = shown_evidence(pack, read_facts(pack, (state.get("subject") or {}).get("key")))
    calls = state.get("calls", [])
    result = score(case, state.get("text", ""), state.get("answer", {}), calls, shown,
                   state.get("outcome", ""), seconds)
    writes = [c for c in log if c["tool"] in ("record_feedback", "recalculate")] or [
        c for c in calls if c["tool"] in ("record_feedback", "recalculate")]
    return result, {"text": state.get("text", ""), "calls": calls, "writes": writes,
                    "thread": setup.thread, "model_calls": state.get("model_calls", [])}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_eval(settings: Any, model: Any, backend: str, cases: list[Case] | None = None,
             cache: StoreCache | None = None) -> dict[str, Any]:
    """Every case (default: the packaged set); simulator stores are built once per incident,
    in `cache` or in a temporary folder removed at the end."""
    cases = cases if cases is not None else load_cases()

    async def all_cases(stores: StoreCache) -> list[Score]:
        return [(await run_case(c, settings, model, stores))[0] for c in cases]

    if cache is not None:
        scores = asyncio.run(all_cases(cache))
    else:
        with tempfile.TemporaryDirectory(prefix="opsbot-eval-agent-") as tmp:
            scores = asyncio.run(all_cases(StoreCache(Path(tmp))))
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


def cli(*, settings: Any, backend: str | None, as_json: bool, cache: StoreCache | None = None
        ) -> int:
    """Entry point of `opsbot eval agent`; exit 1 when any unsupported number was delivered."""
    from agent.backends import BackendError, make_model, resolve_backend

    try:
        choice = resolve_backend(settings, backend or "none")
        model = make_model(settings, choice)
    except BackendError as exc:
        sys.stderr.write(f"cannot use the backend: {exc}\n")
        return 2
    report = run_eval(settings, model, choice.name, cache=cache)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print(report, sys.stdout)
    return 1 if report["unverified_numbers"] else 0
