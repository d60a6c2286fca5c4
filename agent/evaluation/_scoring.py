"""Deterministic scoring of one answer against a case's expected facts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agent.evaluation._cases import Case
from agent.numbers import find_numbers, matches_any

__all__ = ["FAMILY_WORDS", "Score", "score"]

# How an answer names each scenario family, in words an engineer would use.
FAMILY_WORDS: dict[str, tuple[str, ...]] = {
    "connection_pool_exhaustion": ("pool is exhausted", "pool exhaust", "free connection",
                                   "connection pool"),
    "cold_start": ("cold start", "warming up", "fresh instance"),
    "lock_contention": ("lock",),
    "dns_cache_miss": ("dns", "resolver"),
    "network_jitter": ("packet loss", "jitter", "varies widely", "network"),
    "gc_pause": ("stop-the-world", "gc pause", "garbage collect", "gc "),
    "message_queue_backlog": ("queue backs up", "falls behind", "backlog", "consumer lag"),
    "cascading_timeout": ("time out", "timeouts", "timed out", "hangs"),
    "retry_storm": ("retry", "retries"),
    "slow_downstream_dependency": ("slow dependency", "downstream", "waits on"),
    "cpu_saturation": ("cpu limit", "cpu saturat", "queue for cpu", "saturat"),
    "memory_leak": ("leak", "unbounded cache"),
    "error_burst": ("burst of errors", "error burst", "fails far more", "poisoned"),
    "deploy_regression": ("regression", "deploy", "release"),
    "connection_setup": ("new connection", "connection set-up", "not reusing connections"),
    "noisy_neighbour": ("noisy neighbour", "competes for cpu", "other workloads", "steal"),
}


@dataclass(slots=True)
class Score:
    case: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    seconds: float = 0.0
    outcome: str = ""
    families: list[str] = field(default_factory=list)


def families_named(text: str) -> list[str]:
    t = text.lower()
    return [f for f, words in FAMILY_WORDS.items() if any(w in t for w in words)]


def _top_cause(answer: dict[str, Any], text: str) -> str:
    causes = answer.get("causes") or []
    return f"{answer.get('summary', '')} {causes[0] if causes else ''}" if answer else text


def score(case: Case, text: str, answer: dict[str, Any], calls: list[dict[str, Any]],
          shown: str, outcome: str, seconds: float) -> Score:
    e, t, fails = case.expect, text.lower(), []
    if e.root_operation and e.root_operation.lower() not in t:
        fails.append(f"root operation {e.root_operation} not named")
    if e.root_service and e.root_service.lower() not in t:
        fails.append(f"root service {e.root_service} not named")
    named = families_named(_top_cause(answer, text))
    if e.family and not set(e.family) & set(named):
        fails.append(f"family {'/'.join(e.family)} not the top cause (named: {named})")
    found = find_numbers(text)
    for n in e.numbers:
        if not any(abs(x.value - n) <= max(0.01, 0.005 * abs(n)) for x in found):
            fails.append(f"number {n:g} missing")
    fails += [f"missing '{s}'" for s in e.must_include if s.lower() not in t]
    fails += [f"forbidden '{s}' present" for s in e.must_not
              if re.search(re.escape(s.lower()), t)]
    ran = [c["tool"] for c in calls if c.get("status") != "refused"]
    fails += [f"tool {n} not called" for n in e.tools_called if n not in ran]
    fails += [f"tool {n} called" for n in e.tools_not_called if n in ran]
    if e.outcome and outcome not in e.outcome:
        fails.append(f"outcome {outcome} not in {e.outcome}")
    reference = [n.value for n in find_numbers(shown)]
    unverified = [n.text for n in find_numbers(text, skip_list_markers=True)
                  if not matches_any(n, reference)]
    if unverified:
        fails.append(f"unverified numbers delivered: {unverified}")
    return Score(case.id, not fails, fails, unverified, seconds, outcome, named)
