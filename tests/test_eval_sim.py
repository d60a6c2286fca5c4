"""`opsbot eval sim` at a tiny size: the harness scores what the engine really found."""

from __future__ import annotations

from pathlib import Path

from bench.sim import WARMUP_DAYS, cli, run_seed, summarize
from bot.settings import load_settings


async def test_a_short_seed_is_scored_against_ground_truth(tmp_path: Path) -> None:
    res = await run_seed(4, (WARMUP_DAYS + 1) / 7, tmp_path / "sim.db", count=3)
    assert len(res.incidents) == 3 and res.keys >= 10 and res.clean_key_days > 0
    s = summarize([res])
    assert s["injected"] == 3
    assert s["recall"] is not None and s["recall"] >= 2 / 3
    for inc in res.incidents:
        if inc["detected"]:
            assert inc["ttd_s"] is not None and -60 <= inc["ttd_s"] <= 3600
    assert s["precision"] is not None and 0 <= s["precision"] <= 1
    assert s["false_alerts_per_100_keys_day"] is not None
    assert set(s["per_scenario"]) == {i["scenario"] for i in res.incidents}


def test_too_short_a_run_is_refused_with_a_reason() -> None:
    assert cli(settings=load_settings(), seeds=1, weeks=0.1, as_json=True) == 2
    assert cli(settings=load_settings(), seeds=0, weeks=2, as_json=True) == 2


def test_an_unknown_baseline_model_is_refused() -> None:
    assert cli(settings=load_settings(), seeds=1, weeks=1, as_json=True,
               baseline_model="median") == 2


async def test_the_raw_model_runs_the_same_engine_on_raw_moments(tmp_path: Path) -> None:
    from detectors.config import BaselineConfig, DetectorConfig

    config = DetectorConfig(baseline=BaselineConfig(latency_model="raw"))
    res = await run_seed(4, (WARMUP_DAYS + 1) / 7, tmp_path / "raw.db", count=3, config=config)
    s = summarize([res])
    assert s["injected"] == 3 and res.windows_scored > 0 and res.clean_key_days > 0
