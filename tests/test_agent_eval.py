"""`opsbot eval agent`: the case set, its scoring, and the analyst's figures on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.evaluation import StoreCache, cli, run_case, run_eval
from agent.evaluation._cases import CaseError, load_cases
from agent.evaluation._scoring import score
from bot.settings import load_settings


def test_case_set_has_thirty_simulator_incidents_over_every_family() -> None:
    from bot.simulator import Scenario

    cases = load_cases()
    sims = [c for c in cases if c.simulator]
    assert len(cases) >= 30 and len(sims) >= 30
    assert {c.simulator["scenario"] for c in sims if c.simulator} == {s.value for s in Scenario}


def test_scoring_fails_wrong_family_missing_root_and_unverified_numbers() -> None:
    case = next(c for c in load_cases() if c.id == "rec-training-anomaly-tcp-connect")
    shown = "tcp.connect 264 ms = 92%"
    good = score(case, "kx-exchange tcp.connect: opening new connections, 264 ms", {}, [], shown,
                 "analyst", 0.1)
    assert not good.passed and {f.split()[0] for f in good.failures} == {"tool"}
    calls: list[dict[str, Any]] = [{"tool": "trace_breakdown", "status": "ok"},
                                   {"tool": "metrics", "status": "ok"}]
    assert score(case, "kx-exchange tcp.connect: opening new connections, 264 ms", {}, calls,
                 shown, "analyst", 0.1).passed
    bad = score(case, "kx-exchange tcp.connect: high CPU, 612 ms", {}, calls, shown, "x", 0.1)
    assert any("family" in f for f in bad.failures)
    assert any("high cpu" in f for f in bad.failures) and bad.unverified == ["612 ms"]


def test_malformed_case_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- {id: a}\n")
    with pytest.raises(CaseError, match="x.yaml: case a"):
        load_cases(tmp_path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> StoreCache:
    """Real incident stores (ingest + detection), built once for the module."""
    return StoreCache(tmp_path_factory.mktemp("eval-stores"))


def test_analyst_meets_the_targets_on_real_tools(stores: StoreCache) -> None:
    report = run_eval(load_settings(), None, "none", cache=stores)
    assert report["simulator_pass_rate"] >= 0.9, report["failures"]
    assert report["unverified_numbers"] == 0


async def test_simulator_case_runs_the_real_tools_in_the_detected_anomalys_thread(
        stores: StoreCache) -> None:
    case = next(c for c in load_cases() if c.id == "sim-cold_start-2")
    result, info = await run_case(case, load_settings(), None, stores)
    built = await stores.get("cold_start", 2, 1.3)
    assert built.anomaly is not None and built.anomaly.key == "kx-exchange:POST /orders"
    assert info["thread"]["anomaly_id"] == built.anomaly.id  # the engine's id, not the YAML's
    baseline = next(c for c in info["calls"] if c["tool"] == "baseline")
    assert baseline["status"] == "ok"
    assert result.passed, result.failures
    assert "warming up" in info["text"]


def test_cli_prints_json(capsys: pytest.CaptureFixture[str], stores: StoreCache) -> None:
    assert cli(settings=load_settings(), backend="none", as_json=True, cache=stores) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "none" and report["cases"] >= 30
