"""The investigation graph: understand, plan, gather (and plan again), analyse, verify, respond.

verify sends a rejected model answer back to analyse once, with the violation named;
a second rejection, or any model failure, goes to the evidence-only fallback.
Every route is bounded: at most MAX_ROUNDS gather rounds and deps.max_steps steps.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph

from agent.nodes import Nodes
from agent.planner import MAX_ROUNDS
from agent.state import AgentDeps, AgentState

__all__ = ["build_graph", "route_after_analyse", "route_after_plan", "route_after_verify"]


def route_after_plan(state: AgentState) -> Literal["gather", "analyse"]:
    more = state.get("planned") and state.get("rounds", 0) < MAX_ROUNDS
    return "gather" if more else "analyse"


def route_after_analyse(state: AgentState) -> Literal["verify", "fallback"]:
    return "fallback" if state.get("outcome") == "fallback_model_error" else "verify"


def route_after_verify(state: AgentState) -> Literal["analyse", "fallback", "respond"]:
    outcome = state.get("outcome")
    if outcome in ("analyst", "action", "verified", "regenerated"):
        return "respond"
    if outcome == "fallback_unverified":
        return "fallback"
    return "analyse"  # rejected once: one regeneration with the violation named


def build_graph(deps: AgentDeps, checkpointer: Any = None) -> Any:
    """The compiled graph; `checkpointer` (e.g. AsyncSqliteSaver) gives per-thread memory."""
    nodes = Nodes(deps)
    g = StateGraph(AgentState)
    g.add_node("understand", nodes.understand)
    g.add_node("plan", nodes.plan)
    g.add_node("gather", nodes.gather)
    g.add_node("analyse", nodes.analyse)
    g.add_node("verify", nodes.verify)
    g.add_node("fallback", nodes.fallback)
    g.add_node("respond", nodes.respond)
    g.add_edge(START, "understand")
    g.add_edge("understand", "plan")
    g.add_conditional_edges("plan", route_after_plan)
    g.add_edge("gather", "plan")
    g.add_conditional_edges("analyse", route_after_analyse)
    g.add_conditional_edges("verify", route_after_verify)
    g.add_edge("fallback", "respond")
    g.add_edge("respond", END)
    return g.compile(checkpointer=checkpointer)
