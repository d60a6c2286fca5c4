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


def test_a_command_whose_module_has_not_landed_says_so_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import typer

    from bot.cli import _delegate

    with pytest.raises(typer.Exit) as exc:
        _delegate("bot.no_such_capability", "command", "issue 9: later")
    assert exc.value.exit_code == 3
    assert "not built yet" in capsys.readouterr().err


def test_a_broken_import_inside_a_landed_module_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from bot.cli import _delegate

    (tmp_path / "landed_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        _delegate("landed_mod", "command", "issue 9")


def test_ingest_unsupported_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not telemetry\n")
    result = runner.invoke(app, ["ingest", str(bad)],
                           env={"OPSBOT_DB_PATH": str(tmp_path / "o.db")})
    assert result.exit_code == 2
    assert "cannot load" in result.output


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
    assert set(summary) >= {
        "files", "spans", "keys", "aggregate_rows", "exemplar_traces", "rejected", "db_path"
    }
    rows = sum(1 for _ in csv.open()) - 1
    assert summary["spans"] + sum(summary["rejected"].values()) == rows
    assert 0 < summary["keys"] < 200


@pytest.mark.timeout(60)
def test_run_with_half_set_slack_config_names_the_missing_setting(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run"], env={
        "OPSBOT_DB_PATH": str(tmp_path / "o.db"), "OPSBOT_HTTP_PORT": "0",
        "OPSBOT_SLACK_BOT_TOKEN": "xoxb-test", "OPSBOT_SLACK_SIGNING_SECRET": "",
    })
    assert result.exit_code == 2, result.output
    assert "OPSBOT_SLACK_SIGNING_SECRET" in result.output
    assert "xoxb-test" not in result.output  # tokens are never printed


def test_reaction_sets_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import load_settings

    monkeypatch.setenv("OPSBOT_SLACK_FALSE_POSITIVE_REACTIONS", "thumbsdown, :zzz:")
    assert load_settings(None).slack_false_positive_reactions == ["thumbsdown", ":zzz:"]
