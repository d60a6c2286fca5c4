"""Prompts for the analyse step, rendered from prompts/ (no prompt text lives here).

For an anomaly the prompt carries the exact block our fine-tuned model was trained
on; the fixed rules come first so llama.cpp can reuse their KV cache across calls.
"""

from __future__ import annotations

from agent.evidence import EvidenceItem, EvidencePack
from agent.facts import Facts
from prompts import render

__all__ = ["analysis_prompt", "anomaly_block", "evidence_text", "shown_evidence"]

_TRACE_TOOLS = ("slow_traces", "trace_breakdown")


def _f(v: float | None, unit: str, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


def anomaly_block(facts: Facts, pack: EvidencePack) -> str:
    """The training format: 'Analyze this performance anomaly:' and its lines, or ''."""
    if facts.anomaly_id is None and facts.observed_ms is None or not facts.key:
        return ""
    rendered = _lines(pack)
    lines = [ln for i, ln in rendered if i.tool in _TRACE_TOOLS]
    similar = [ln for i, ln in rendered if i.tool == "similar_incidents"]
    return render(
        "anomaly", service=facts.service, operation=facts.operation,
        duration=_f(facts.observed_ms, "ms", 2), expected=_f(facts.expected_ms, "ms", 2),
        spread=_f(facts.spread_ms, "ms", 2), deviation=_f(facts.deviation, "σ", 2),
        cpu=_f(facts.metric("cpu"), "%", 1), memory=_f(facts.metric("memory"), "MB", 0),
        error_rate=_f(facts.metric("errors"), "%", 1),
        trace_evidence="\n".join(lines) or "(none)", similar_evidence="\n".join(similar) or
        "(none)")


def evidence_text(facts: Facts, pack: EvidencePack) -> tuple[str, str]:
    """(anomaly block, remaining evidence lines): together, everything the model is shown."""
    block = anomaly_block(facts, pack)
    if not block:
        return "", pack.render()
    used = set(_TRACE_TOOLS) | {"similar_incidents"}
    rest = [ln for i, ln in _lines(pack) if i.tool not in used]
    return block, "\n".join(rest) if rest else "(see above)"


def _lines(pack: EvidencePack) -> list[tuple[EvidenceItem, str]]:
    """Each item with its line as rendered under the pack's token budget."""
    return list(zip(pack.items, pack.render().splitlines(), strict=False)) if pack.items else []


def analysis_prompt(question: str, asker: str, facts: Facts, pack: EvidencePack,
                    violation: str = "") -> tuple[str, str]:
    """(prompt, shown evidence text). One user turn: Gemma templates drop system messages."""
    block, rest = evidence_text(facts, pack)
    prompt = render("analyse", rules=render("answer_rules"), asker=asker, question=question,
                    anomaly_block=block, evidence=rest)
    if violation:
        prompt += "\n" + render("regenerate", violations=violation)
    return prompt, block + "\n" + rest


def shown_evidence(pack: EvidencePack, facts: Facts) -> str:
    """All evidence text a reader of the prompt sees: the checker's reference."""
    block, rest = evidence_text(facts, pack)
    return block + "\n" + rest
