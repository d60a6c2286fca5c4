"""The checker: every number in an answer must be in the evidence, every metric claim true.

"High CPU" when the evidence says 0.5% is the hallucination the fine-tuned model
was trained against; this module catches it for every backend. The analyst uses
`metric_level` too, so the rules and the checker cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from agent.facts import Facts, metric_anomaly
from agent.numbers import find_numbers, matches_any

__all__ = ["Level", "Verification", "check", "metric_level"]

Level = Literal["high", "normal"]

_METRIC_WORDS = {
    "cpu": r"cpu|processor",
    "memory": r"memory|heap|rss|ram\b",
    "errors": r"error rate|errors|failures|5xx|failing requests",
}
_HIGH = (r"high|higher|elevated|spik\w*|saturat\w*|pegged|maxed|pressure|surg\w*|heavy|"
         r"increas\w*|rising|climb\w*|jump\w*|exhaust\w*|leak\w*|burst\w*|grow\w*|excessive")
_LOW = r"low|normal|idle|fine|healthy|stable|flat|unchanged|quiet|nominal|modest"
_NEGATION = re.compile(r"\b(not|no|never|without|isn't|wasn't|aren't|nor|rule[sd]? out)\b", re.I)
_CLAUSE = re.compile(r"[^.;:\n!?]+")


@dataclass(slots=True)
class Verification:
    ok: bool
    unverified_numbers: list[str] = field(default_factory=list)
    contradicted_claims: list[str] = field(default_factory=list)

    def reason(self) -> str:
        """What went wrong, in words only: notes shown to users must not carry stray numbers."""
        parts = ["it cited numbers that are not in the evidence"] if self.unverified_numbers else []
        metrics = sorted({c.split()[1] for c in self.contradicted_claims})
        parts += [f"its claim about {m} disagreed with the evidence" for m in metrics]
        return " and ".join(parts) or "no violation"

    def describe(self) -> str:
        parts = []
        if self.unverified_numbers:
            parts.append("numbers not in the evidence: " + ", ".join(self.unverified_numbers))
        parts += self.contradicted_claims
        return "; ".join(parts) if parts else "every number and metric claim matches the evidence"


def _level(name: str, value: float, base: float | None) -> Level:
    if name == "cpu":
        high = value >= 70.0 or (base is not None and value >= 1.5 * base and value - base >= 10)
    elif name == "memory":
        high = (base is not None and (value >= 1.3 * base or value - base >= 500.0)) or (
            base is None and value >= 4096.0)
    else:  # error rate, percent
        high = value >= 5.0 or (base is not None and value >= 1.0 and value >= 5 * max(base, 0.01))
    return "high" if high else "normal"


def _anomalous_high(facts: Facts, name: str) -> bool:
    row = metric_anomaly(facts, name)
    if row is None:
        return False
    observed, p99 = row.get("observed_ms"), row.get("baseline_p99_ms")
    return isinstance(observed, (int, float)) and isinstance(p99, (int, float)) and observed > p99


def metric_level(facts: Facts, name: str) -> Level | None:
    """Whether a metric is high or normal by the evidence; None when there is no value.

    For errors, the service's error rate and the subject key's both count: either high is high.
    An open detector anomaly on the service's series of that metric, above its baseline p99,
    is high too: the detector compared it with a longer baseline than the metrics window.
    """
    if name in ("cpu", "memory", "rate") and _anomalous_high(facts, name):
        return "high"
    found = [facts.metrics.get(name)]
    if name == "errors":
        found.append(facts.key_errors)
    levels = [_level(name, m.value, m.baseline) for m in found if m is not None]
    if not levels:
        return None
    return "high" if "high" in levels else "normal"


def _claims(text: str) -> list[tuple[str, Level, str]]:
    """(metric, claimed level, clause) for each clause that qualifies a metric."""
    out = []
    for clause in _CLAUSE.findall(text):
        for metric, words in _METRIC_WORDS.items():
            near = (rf"\b({_HIGH}|{_LOW})\b(\W+\w+){{0,3}}?\W+({words})"
                    rf"|\b({words})\b(\W+\w+){{0,4}}?\W+({_HIGH}|{_LOW})\b")
            m = re.search(near, clause, re.I)
            if m is None:
                continue
            word = (m.group(1) or m.group(6) or "").lower()
            level: Level = "normal" if re.fullmatch(_LOW, word) else "high"
            if _NEGATION.search(clause):
                level = "normal" if level == "high" else "high"
            out.append((metric, level, clause.strip()))
    return out


def _unverified(text: str, shown: str) -> list[str]:
    reference = [n.value for n in find_numbers(shown)]
    return [n.text.strip() for n in find_numbers(text, skip_list_markers=True)
            if not matches_any(n, reference)]


def check(text: str, shown: str, facts: Facts) -> Verification:
    """Numbers first (against `shown`, the evidence text the model read), then metric claims."""
    numbers = _unverified(text, shown)
    contradicted = []
    for metric, claimed, clause in _claims(text):
        actual = metric_level(facts, metric)
        if actual is None and claimed == "high":
            contradicted.append(f"claims {metric} is high but the evidence has no {metric} value"
                                f" ('{clause[:80]}')")
        elif actual is not None and actual != claimed:
            m = facts.metrics.get(metric) or facts.key_errors
            value = f" ({m.value:g})" if m else ""
            contradicted.append(f"claims {metric} is {claimed} but the evidence shows {actual}"
                                f"{value} ('{clause[:80]}')")
    return Verification(not numbers and not contradicted, numbers, contradicted)
