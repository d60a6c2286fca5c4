"""The graph's nodes: each reads the state, does one thing, and returns only what it changed."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from agent.analyst import analyse
from agent.answer import Answer, parse_answer
from agent.evidence import EvidencePack
from agent.facts import read_facts
from agent.planner import MAX_CALLS, call_signature, plan_calls, validate_call
from agent.prompting import analysis_prompt, shown_evidence
from agent.state import AgentDeps, AgentState
from agent.structured import choice_schema, choose, tools_schema
from agent.subject import Subject, intent_of, resolve_subject
from agent.verify import check
from prompts import render

__all__ = ["Nodes"]

log = logging.getLogger(__name__)

_NOTES = {
    "analyst": "Answer by the evidence-only analyst (no model configured).",
    "verified": "Model answer; every number and metric claim was checked against the evidence.",
    "regenerated": "Model answer, written a second time: the checker rejected the first "
                   "because {violation}.",
    "fallback_unverified": "The model's answers failed the evidence check ({violation}); "
                           "this is the evidence-only analysis instead.",
    "fallback_model_error": "The model failed ({violation}); this is the evidence-only "
                            "analysis instead.",
    "action": "",
    "pending": "",
}


async def _progress(config: RunnableConfig, text: str) -> None:
    cb = (config.get("configurable") or {}).get("progress")
    if cb is not None:
        await cb(text)


def _queue_kwargs(model: Any, config: RunnableConfig) -> dict[str, Any]:
    """A model with a queue tells a waiting user their place through the progress callback."""
    cb = (config.get("configurable") or {}).get("progress")
    if cb is None or not hasattr(model, "queue"):
        return {}

    async def on_wait(ahead: int) -> None:
        await cb(f"waiting for the model: {ahead} request(s) ahead of yours")

    return {"on_wait": on_wait}


def _action_answer(state: AgentState, pack: EvidencePack) -> Answer:
    """Feedback, recalculation and listings: the tool's own words, nothing invented."""
    if not pack.items:
        return Answer(summary="Nothing was done: no tool could serve this request.",
                      confidence="high: no tool ran.")
    lines = [f"{i.text} [{i.id}]" for i in pack.items]
    return Answer(summary=lines[0], causes=[], recommendations=lines[1:],
                  confidence=f"high: reported by the tool ({pack.items[0].status}).",
                  evidence_ids=pack.ids())


class Nodes:
    """Node functions bound to their dependencies."""

    def __init__(self, deps: AgentDeps) -> None:
        self.deps = deps

    def _pack(self, state: AgentState) -> EvidencePack:
        """The evidence as the model and the checker see it, under the deps' token budget."""
        pack = EvidencePack.from_list(state.get("evidence", []))
        pack.max_tokens = self.deps.pack_tokens
        return pack

    async def understand(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        q, ask = state["question"], state.get("ask", {})
        keys = await self.deps.known_keys()
        subject = resolve_subject(q, ask, keys, state["now_ns"], state.get("subject"))
        if subject is None and self.deps.model is not None and keys:
            subject = await self._model_subject(q, keys, state["now_ns"])
        intent = intent_of(q)
        if intent == "list" and subject and subject.get("key") and subject["source"] != "memory":
            intent = "investigate"  # "what's wrong with pg.query?" names its subject
        return {"subject": subject, "intent": intent, "steps": state.get("steps", 0) + 1}

    async def _model_subject(self, q: str, keys: list[str], now_ns: int) -> Subject | None:
        options = sorted(keys)[:200] + ["none"]
        services = sorted({k.split(":", 1)[0] for k in keys})
        picked = await choose(self.deps.model, render(
            "understand", keys=", ".join(options[:-1]), services=", ".join(services),
            question=q), choice_schema("key", options), self.deps.model_timeout_s)
        key = (picked or {}).get("key")
        if not key or key == "none":
            return None
        return Subject(key=key, service=key.split(":", 1)[0], anomaly_id=None, incident_id=None,
                       at_ns=now_ns, window="30m", source="model")

    async def plan(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        pack = EvidencePack.from_list(state.get("evidence", []))
        rounds, extra = state.get("rounds", 0), state.get("model_tools", [])
        if rounds == 0 and self.deps.model is not None and state.get("intent") == "investigate" \
                and state.get("subject") and not (state["subject"] or {}).get("key"):
            extra = await self._model_tools(state)
        proposed = plan_calls(state.get("subject"), state.get("intent", "investigate"),
                              state.get("ask", {}), state["question"], rounds, pack, extra)
        seen, planned, refused = list(state.get("seen_calls", [])), [], []
        for tool_name, args in proposed:
            tool = self.deps.tools.get(tool_name)
            if tool is None:
                continue
            kept, problem = validate_call(tool, args)
            sig = call_signature(tool_name, kept or args)
            if kept is None or sig in seen or len(seen) >= MAX_CALLS:
                refused.append({"tool": tool_name, "args": args,
                                "status": "refused", "reason": problem or "repeated or over the "
                                "call budget"})
                continue
            seen.append(sig)
            planned.append({"tool": tool_name, "args": kept})
        return {"planned": planned, "seen_calls": seen, "model_tools": extra,
                "calls": state.get("calls", []) + refused, "steps": state.get("steps", 0) + 1}

    async def _model_tools(self, state: AgentState) -> list[str]:
        names = [n for n in ("baseline", "slow_traces", "metrics", "similar_incidents",
                             "service_graph", "anomalies") if n in self.deps.tools]
        listing = "\n".join(f"- {n}: {self.deps.tools[n].description}" for n in names)
        picked = await choose(self.deps.model, render(
            "plan", tools=listing, subject=state.get("subject"), question=state["question"]),
            tools_schema(names), self.deps.model_timeout_s)
        return list((picked or {}).get("tools", []))

    async def gather(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        from tools.base import invoke  # the tools package owns the call contract

        planned = state.get("planned", [])
        await _progress(config, f"gathering evidence: {', '.join(p['tool'] for p in planned)}")
        ctx = self.deps.context(state.get("ask", {}), state["now_ns"])
        results = await asyncio.gather(*(invoke(self.deps.tools[p["tool"]], p["args"], ctx,
                                                self.deps.tool_timeout_s) for p in planned))
        pack = EvidencePack.from_list(state.get("evidence", []))
        calls = list(state.get("calls", []))
        for p, r in zip(planned, results, strict=True):
            text = r.summary if r.summary else (r.error or r.status.value)
            item = pack.add(p["tool"], p["args"], r.status.value, text, r.data, r.source,
                            r.elapsed_s)
            calls.append({"tool": p["tool"], "args": p["args"], "status": r.status.value,
                          "elapsed_s": round(r.elapsed_s, 4), "evidence": item.id,
                          "error": r.error})
        return {"evidence": pack.to_list(), "calls": calls, "planned": [],
                "rounds": state.get("rounds", 0) + 1, "steps": state.get("steps", 0) + 1}

    async def analyse(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        pack = self._pack(state)
        facts = read_facts(pack, (state.get("subject") or {}).get("key"))
        steps = state.get("steps", 0) + 1
        if state.get("intent", "investigate") != "investigate":
            return {"draft": _action_answer(state, pack).text(), "outcome": "action",
                    "steps": steps}
        if self.deps.model is None:
            result = analyse(pack, facts, shown_evidence(pack, facts))
            return {"draft": result.answer.text(), "outcome": "analyst", "steps": steps}
        prompt, _shown = analysis_prompt(state["question"], state.get("ask", {}).get(
            "user_id") or "an engineer", facts, pack, state.get("violation", ""))
        await _progress(config, "writing the answer")
        started = time.perf_counter()
        try:
            msg = await asyncio.wait_for(self.deps.model.ainvoke(
                [HumanMessage(prompt)], max_tokens=self.deps.max_tokens, temperature=0.0,
                **_queue_kwargs(self.deps.model, config)), self.deps.model_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any model failure falls back to the analyst
            log.warning("model failed: %s: %s", type(exc).__name__, exc)
            return {"outcome": "fallback_model_error", "steps": steps,
                    "violation": f"{type(exc).__name__}: {exc}"[:200],
                    "violation_reason": f"{type(exc).__name__}"}
        usage = getattr(msg, "usage_metadata", None) or {}
        record = {"prompt": prompt, "prompt_tokens": usage.get("input_tokens"),
                  "completion_tokens": usage.get("output_tokens"),
                  "seconds": round(time.perf_counter() - started, 4)}
        return {"draft": str(msg.content), "outcome": "pending",
                "attempts": state.get("attempts", 0) + 1, "steps": steps,
                "model_calls": state.get("model_calls", []) + [record]}

    async def verify(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        pack = self._pack(state)
        facts = read_facts(pack, (state.get("subject") or {}).get("key"))
        result = check(state.get("draft", ""), shown_evidence(pack, facts), facts)
        out: dict[str, Any] = {"verification": {"ok": result.ok, "detail": result.describe(),
                                                "unverified_numbers": result.unverified_numbers,
                                                "contradicted": result.contradicted_claims},
                               "steps": state.get("steps", 0) + 1}
        if state.get("outcome") in ("analyst", "action"):
            return out
        if result.ok:
            out["outcome"] = "regenerated" if state.get("attempts", 0) > 1 else "verified"
        else:
            out["violation"] = result.describe()[:300]
            out["violation_reason"] = result.reason()
            if state.get("attempts", 0) >= 2:
                out["outcome"] = "fallback_unverified"
        return out

    async def fallback(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        pack = self._pack(state)
        facts = read_facts(pack, (state.get("subject") or {}).get("key"))
        shown = shown_evidence(pack, facts)
        draft = analyse(pack, facts, shown).answer.text()
        result = check(draft, shown, facts)
        return {"draft": draft, "steps": state.get("steps", 0) + 1,
                "verification": {"ok": result.ok, "detail": result.describe(),
                                 "unverified_numbers": result.unverified_numbers,
                                 "contradicted": result.contradicted_claims}}

    async def respond(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        outcome = state.get("outcome", "analyst")
        answer = parse_answer(state.get("draft", "")) if state.get("draft") else Answer(
            summary="No answer could be written.")
        note = _NOTES[outcome].format(violation=state.get("violation_reason", ""))
        text = answer.text() + (f"\n_{note}_" if note else "")
        await _progress(config, text)
        turn = {"question": state["question"], "subject": state.get("subject"),
                "outcome": outcome, "summary": answer.summary[:300]}
        return {"answer": answer.to_dict(), "text": text, "turns": [turn],
                "steps": state.get("steps", 0) + 1}
