"""Settings: env prefix, TOML file, precedence, and rejection of unknown or invalid keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.upper().startswith("OPSBOT_") and k != "OPSBOT_SHARED_DATA":
            monkeypatch.delenv(k)
    monkeypatch.delenv("OPSBOT_SHARED_DATA", raising=False)


def test_defaults() -> None:
    s = load_settings()
    assert s.db_path == Path(".opsbot/opsbot.db")
    assert s.slack_api_base_url == "https://slack.com/api/"
    assert s.baseline_window_days == 30
    assert s.http_port == 4318


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "opsbot.toml"
    cfg.write_text('http_port = 9000\n[slack]\nchannel = "#from-file"\napi_base_url = "http://127.0.0.1:1/api"\n')
    monkeypatch.setenv("OPSBOT_HTTP_PORT", "9100")
    s = load_settings(cfg)
    assert s.http_port == 9100
    assert s.slack_channel == "#from-file"
    assert s.slack_api_base_url == "http://127.0.0.1:1/api/"


def test_unknown_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_SLAK_CHANNEL", "#x")
    with pytest.raises(SettingsError, match="OPSBOT_SLAK_CHANNEL"):
        load_settings()


def test_unknown_file_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[slack]\nchanel = '#x'\n")
    with pytest.raises(SettingsError, match="slack_chanel"):
        load_settings(cfg)


def test_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_HTTP_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="http_port.*OPSBOT_HTTP_PORT"):
        load_settings()


def test_out_of_range_value(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("baseline_window_days = 0\n")
    with pytest.raises(SettingsError, match="baseline_window_days"):
        load_settings(cfg)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad)


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_SLACK_BOT_TOKEN", "xoxb-very-secret")
    s = load_settings()
    assert "xoxb-very-secret" not in repr(s) and "xoxb-very-secret" not in str(s.model_dump())
    assert s.slack_bot_token is not None
    assert s.slack_bot_token.get_secret_value() == "xoxb-very-secret"


def test_admins_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_SLACK_ADMINS", "U1, U2")
    assert load_settings().slack_admins == ["U1", "U2"]


def test_every_setting_is_documented_in_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [f for f in Settings.model_fields if f"OPSBOT_{f.upper()}" not in readme]
    assert not missing, f"settings missing from README.md: {missing}"
