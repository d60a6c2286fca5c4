"""Prompts are files rendered by one function; the anomaly block is the training format."""

from __future__ import annotations

import pytest

from agent.answer import parse_answer
from agent.evidence import EvidencePack
from agent.facts import read_facts
from agent.prompting import analysis_prompt, anomaly_block
from prompts import PromptError, render, template_names
from tests.agent_fakes import training_tools


def pack() -> EvidencePack:
    p = EvidencePack()
    for tool, r in training_tools().items():
        p.add(tool, {}, r.get("status", "ok"), r["summary"], r["data"])
    return p


def test_every_template_renders_and_missing_variables_are_named() -> None:
    assert {"anomaly", "analyse", "answer_rules", "regenerate", "understand",
            "plan"} <= set(template_names())
    with pytest.raises(PromptError, match="needs variable 'violations'"):
        render("regenerate")
    with pytest.raises(PromptError, match="no prompt template 'nope'"):
        render("nope")


def test_anomaly_block_is_the_exact_training_format() -> None:
    p = pack()
    block = anomaly_block(read_facts(p, "kx-exchange:pg-pool.connect"), p)
    assert block.startswith(
        "Analyze this performance anomaly:\n"
        "- Service: kx-exchange\n"
        "- Operation: pg-pool.connect\n"
        "- Duration: 286.94ms (expected: 0.44ms ± 10.66ms)\n"
        "- Deviation: 26.88σ\n"
        "- CPU Usage: 0.5%, Memory: 142MB, Error Rate: 0.0%\n")
    assert "Trace evidence:\n[E3] slow_traces(" in block


def test_prompt_puts_fixed_rules_first_for_kv_cache_reuse() -> None:
    p = pack()
    facts = read_facts(p, "kx-exchange:pg-pool.connect")
    one, _ = analysis_prompt("why?", "U1", facts, p)
    two, _ = analysis_prompt("and now?", "U2", facts, p, "numbers not in the evidence: 612")
    rules = render("answer_rules")
    assert one.startswith(rules) and two.startswith(rules)
    assert "rejected by the checker: numbers not in the evidence: 612" in two


@pytest.mark.parametrize("text,summary,causes", [
    ("SUMMARY: slow pool\nCAUSES:\n1. tcp.connect [E7]\n- dns\nRECOMMENDATIONS:\n- reuse\n"
     "CONFIDENCE: medium", "slow pool", ["tcp.connect [E7]", "dns"]),
    ("**Summary**: slow pool\n## Root causes\n* tcp.connect", "slow pool", ["tcp.connect"]),
])
def test_parser_reads_sections_in_several_styles(text: str, summary: str,
                                                 causes: list[str]) -> None:
    a = parse_answer(text)
    assert a.structured and a.summary == summary and a.causes == causes


def test_parser_keeps_free_form_text_as_the_summary() -> None:
    a = parse_answer("The pool   is exhausted because\nconnections leak. See E7.")
    assert not a.structured
    assert a.summary == "The pool is exhausted because connections leak. See E7."
    assert a.evidence_ids == ["E7"] and a.text().startswith("*SUMMARY:* The pool")
