"""The evidence-only analyst: deterministic rules from evidence patterns to a four-part answer.

It is the default when no model is configured and the fallback on any model failure,
so opsbot always answers. It prints only numbers that the evidence pack shows (each
statement has a number-free variant used when a value was cut from the pack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent._rules import Finding, findings
from agent.answer import Answer
from agent.evidence import EvidencePack
from agent.facts import Facts
from agent.numbers import find_numbers, matches_any

__all__ = ["Analysis", "analyse"]


@dataclass(slots=True)
class Analysis:
    answer: Answer
    family: str | None  # the scenario family of the top cause, for scoring
    findings: list[Finding] = field(default_factory=list)


def _shown(text: str, reference: list[float]) -> bool:
    return all(matches_any(n, reference) for n in find_numbers(text))


def _pick(full: str, plain: str, reference: list[float]) -> str:
    return full if _shown(full, reference) else plain


def _summary(facts: Facts, top: Finding | None, ref: list[float]) -> str:
    subject = facts.key or "the subject"
    if facts.observed_ms is not None and facts.baseline_p99_ms is not None:
        full = (f"{subject} took {_ms(facts.observed_ms)} against a baseline p99 of "
                f"{_ms(facts.baseline_p99_ms)}.")
    elif facts.observed_ms is not None:
        full = f"{subject} took {_ms(facts.observed_ms)}."
    else:
        full = f"{subject}: no latency figure in the evidence."
    plain = f"{subject} is slower than its baseline." if facts.observed_ms else full
    lead = _pick(full, plain, ref) if facts.observed_ms is not None else full
    if top is None:
        return lead + " The evidence shows no pattern the rules recognise."
    return f"{lead} Most likely: {_pick(top.cause, top.plain_cause, ref)}"


def _ms(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") + " ms"


def _confidence(top: Finding | None, facts: Facts, pack: EvidencePack) -> str:
    if top is None:
        return "low: no rule matched the evidence; treat this as a starting point only."
    gaps = [n for n in ("breakdown", "metrics") if n not in facts.cite]
    if top.strength >= 0.8 and not gaps:
        level = "high"
    elif top.strength >= 0.5:
        level = "medium"
    else:
        level = "low"
    missing = f" Missing evidence: {', '.join(gaps)}." if gaps else ""
    stand_in = " Metrics are stand-in data." if any(
        i.source == "stand-in" for i in pack.by_tool("metrics")) else ""
    return f"{level}: rule '{top.rule}' matched.{missing}{stand_in}"


def analyse(pack: EvidencePack, facts: Facts, shown: str | None = None) -> Analysis:
    """Run every rule over the facts and write the strongest findings as an answer.

    `shown` is the evidence text a reader sees (the pack by default); only its numbers
    are printed.
    """
    ref = [n.value for n in find_numbers(pack.render() if shown is None else shown)]
    found = findings(facts)
    top = found[0] if found else None
    causes = [f"{_pick(f.cause, f.plain_cause, ref)} [{f.evidence}]" for f in found[:3]]
    recs = [r for f in found[:2] for r in f.recommendations][:4]
    if not recs:
        recs = ["Open the slowest exemplar trace and compare it with a normal one."]
    if facts.trace_links:
        recs.append(f"Exemplar trace: {facts.trace_links[0]}")
    answer = Answer(
        summary=_summary(facts, top, ref),
        causes=causes or ["No cause stands out in the evidence gathered."],
        recommendations=recs,
        confidence=_confidence(top, facts, pack),
        evidence_ids=sorted({f.evidence for f in found} | set(facts.cite.values()),
                            key=lambda e: int(e[1:])),
    )
    return Analysis(answer, top.family if top else None, found)
