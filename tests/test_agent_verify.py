"""The checker: numbers must come from the evidence; metric claims must agree with values."""

from __future__ import annotations

import pytest

from agent.evidence import EvidencePack
from agent.facts import Facts, Metric
from agent.numbers import find_numbers
from agent.verify import check, metric_level

SHOWN = ("[E1] anomalies: kx-exchange:pg-pool.connect p99 286.94 ms, baseline mean 0.44 ms "
         "± 10.66 ms, score 26.88σ\n[E2] metrics: CPU 0.5%, memory 142 MB, error rate 0.0%\n"
         "[E3] trace_breakdown: tcp.connect 264 ms = 92% (share 0.92), 0.264 s")


def facts(cpu: float = 0.5, memory: float = 142.0, errors: float = 0.0,
          base: float | None = None) -> Facts:
    f = Facts(key="kx-exchange:pg-pool.connect")
    f.metrics = {"cpu": Metric(cpu, base, "E2"), "memory": Metric(memory, None, "E2"),
                 "errors": Metric(errors, None, "E2")}
    return f


def test_numbers_skip_names_ids_links_and_list_markers() -> None:
    text = ("1. p99 of E2 is 286.94ms on SEV2, 5xx, trace 4bf92f35 "
            "<http://jaeger:16686/trace/4bf9|trace> took 3x longer")
    assert [n.text for n in find_numbers(text, skip_list_markers=True)] == ["286.94ms", "3x"]


@pytest.mark.parametrize("answer", [
    "took 286.94 ms", "took 287 ms", "about 286.9 ms", "26.88σ", "26.9σ", "92%", "264 ms",
    "264ms (0.264 s)", "1,000"[:0] + "CPU at 0.5%"])
def test_numbers_in_the_evidence_pass_within_rounding(answer: str) -> None:
    assert check(answer, SHOWN, facts()).ok


@pytest.mark.parametrize("answer,bad", [
    ("took 612 ms", "612 ms"), ("26.5σ above normal", "26.5σ"), ("about 95% of the time", "95%"),
    ("took 286.5 ms", "286.5 ms")])
def test_numbers_not_in_the_evidence_are_violations(answer: str, bad: str) -> None:
    result = check(answer, SHOWN, facts())
    assert not result.ok and result.unverified_numbers == [bad]
    assert "not in the evidence" in result.reason() and bad not in result.reason()


@pytest.mark.parametrize("claim", [
    "High CPU usage on kx-exchange.", "CPU is spiking.", "the service is under CPU pressure",
    "Memory is elevated.", "a memory leak", "error rate increased sharply"])
def test_high_claims_contradicting_low_values(claim: str) -> None:
    result = check(claim, SHOWN, facts())
    assert not result.ok and result.contradicted_claims


@pytest.mark.parametrize("claim", [
    "CPU is normal.", "CPU is not high.", "no sign of high CPU", "memory is stable"])
def test_true_claims_pass(claim: str) -> None:
    assert check(claim, SHOWN, facts()).ok


def test_high_cpu_passes_when_cpu_is_high_and_normal_claim_then_fails() -> None:
    hot = facts(cpu=91.0)
    assert check("high CPU", SHOWN.replace("0.5%", "91%"), hot).ok
    assert not check("CPU is normal", SHOWN, hot).ok


def test_claim_about_a_metric_with_no_value_is_a_violation() -> None:
    f = Facts(key="a:b")
    assert "no cpu value" in check("CPU saturation", SHOWN, f).describe()


def test_metric_levels_use_the_baseline() -> None:
    assert metric_level(facts(cpu=45.0, base=20.0), "cpu") == "high"
    assert metric_level(facts(cpu=45.0, base=40.0), "cpu") == "normal"
    assert metric_level(Facts(), "cpu") is None


def test_pack_is_bounded_to_its_token_budget() -> None:
    pack = EvidencePack(max_tokens=200)
    for i in range(10):
        pack.add("slow_traces", {"key": "a:b"}, "ok", f"trace {i} " + "x " * 500)
    text = pack.render()
    assert len(text) <= 200 * 3.5 + 10 * 12 and text.count("\n") == 9
    assert pack.ids() == [f"E{i}" for i in range(1, 11)]
