"""Smoke test of `opsbot bench alert`: every alert arrives and the figures are filled in."""

from __future__ import annotations

import json

import pytest

from bench.alert import cli, run_alert_bench
from bot.settings import load_settings


async def test_alert_bench_measures_every_alert() -> None:
    result = await run_alert_bench(load_settings(), alerts=5)
    assert result.alerts == 5
    assert 0 < result.latency_p50_ms <= result.latency_p99_ms
    assert 0 < result.bare_p50_ms <= result.bare_p99_ms
    assert result.background_spans_per_s > 100


def test_cli_prints_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                         ) -> None:
    import bench.alert as module

    real = module.run_alert_bench
    monkeypatch.setattr(module, "run_alert_bench", lambda s: real(s, alerts=3))
    code = cli(settings=load_settings(), as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["alerts"] == 3 and code == (0 if data["latency_p99_ms"] < 1000 else 1)
