"""The command line: unbuilt commands say so, configuration errors name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPSBOT_SHARED_DATA", raising=False)


@pytest.mark.parametrize("argv", [["ask", "why?"], ["recalc"], ["anomalies"]])
def test_unbuilt_commands_say_so_and_fail(argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 3
    assert "not built yet" in result.output


def test_bad_setting_stops_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_BASELINE_WINDOW_DAYS", "-3")
    result = runner.invoke(app, ["anomalies"])
    assert result.exit_code == 2
    assert "baseline_window_days" in result.output


def test_ingest_missing_file() -> None:
    result = runner.invoke(app, ["ingest", "nope.json"])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_ingest_nezha_csv_json_summary(tmp_path: Path) -> None:
    from tests.conftest import shared_path

    csv = shared_path("nezha", "rca_data", "2022-08-22", "trace", "03_53_trace.csv")
    result = runner.invoke(app, ["ingest", str(csv), "--json"],
                           env={"OPSBOT_DB_PATH": str(tmp_path / "o.db")})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) >= {"files", "spans", "keys", "aggregate_rows", "exemplar_traces", "rejected", "db_path"}
    rows = sum(1 for _ in csv.open()) - 1
    assert summary["spans"] + sum(summary["rejected"].values()) == rows
    assert 0 < summary["keys"] < 200
