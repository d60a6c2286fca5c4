"""The one settings object: `OPSBOT_*` environment variables plus an optional TOML file.

Precedence: explicit arguments > environment > TOML file > defaults. Unknown keys
(in the file or as `OPSBOT_*` variables) and invalid values are rejected at start
with a message naming the key. Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "OPSBOT_"


class SettingsError(ValueError):
    """Configuration is invalid; the message names the offending key."""


class Settings(BaseSettings):
    """Every knob of opsbot. README.md lists each with its default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", case_sensitive=False, validate_default=True
    )

    # -- store and service --
    db_path: Path = Field(Path(".opsbot/opsbot.db"), description="SQLite store file")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_host: str = Field("127.0.0.1", description="bind address of the ASGI server")
    http_port: int = Field(4318, ge=0, le=65535, description="OTLP/HTTP standard port")

    # -- ingestion --
    otlp_max_body_bytes: int = Field(16 * 1024 * 1024, gt=0, description="413 above this")
    flush_interval_s: float = Field(5.0, gt=0, description="aggregate flush period")
    exemplars_per_key_hour: int = Field(5, ge=0, description="slowest traces kept per key-hour")
    exemplar_retention_days: int = Field(7, ge=1)
    anomaly_exemplar_retention_days: int = Field(30, ge=1)
    trace_buffer_spans: int = Field(200_000, ge=1000, description="recent spans kept to rebuild exemplar traces")
    jaeger_url: str | None = Field(None, description="Jaeger query base URL, e.g. http://jaeger:16686")
    tempo_url: str | None = Field(None, description="Tempo base URL, e.g. http://tempo:3200")
    poll_interval_s: float = Field(30.0, gt=0)
    trace_ui_url: str | None = Field(
        None, description="link template for exemplar traces, with {trace_id}"
    )

    # -- metrics --
    prometheus_url: str | None = Field(None, description="Prometheus base URL")
    prometheus_timeout_s: float = Field(5.0, gt=0, description="per-query timeout")
    promql_cpu_percent: str | None = Field(
        None, description="PromQL for CPU % of a service ({service}); unset = built-in template")
    promql_memory_mb: str | None = Field(
        None, description="PromQL for memory in MB; unset = built-in template")
    promql_error_rate_pct: str | None = Field(
        None, description="PromQL for error rate in %; unset = built-in template")
    promql_request_rate_rps: str | None = Field(
        None, description="PromQL for requests per second; unset = built-in template")
    promql_p99_ms: str | None = Field(
        None, description="PromQL for p99 latency in ms; unset = built-in template")

    # -- detection --
    baseline_window_days: int = Field(30, ge=1, le=365)
    recalc_hour_utc: int = Field(3, ge=0, le=23, description="hour of the nightly recalculation")

    # -- simulator (the embedded default source) --
    simulator_seed: int = 42
    simulator_requests_per_minute: int = Field(60, gt=0)
    simulator_history_days: int = Field(7, ge=0, description="history replayed before demo starts")

    # -- Slack --
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = Field(None, description="xapp- token: enables Socket Mode")
    slack_signing_secret: SecretStr | None = None
    slack_channel: str = "#opsbot-alerts"
    slack_api_base_url: str = Field("https://slack.com/api/", description="Slack Web API base URL")
    slack_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated user ids (U...) or user group ids (S...) allowed to recalc/mute",
    )
    slack_false_positive_reactions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["-1", "x", "no_entry_sign"],
        description="reactions that mark an alert a false positive (comma-separated)",
    )
    slack_confirmed_reactions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["+1", "white_check_mark", "fire"],
        description="reactions that confirm an alert (comma-separated)",
    )
    slack_alert_rate_cap: int = Field(
        10, ge=1, description="new alert posts per channel per window; beyond it, one digest")
    slack_alert_rate_window_s: float = Field(300.0, gt=0, description="window of the rate cap")

    # -- model --
    model_backend: Literal["auto", "none", "llamacpp", "openai"] = "auto"
    model_path: Path | None = Field(None, description="GGUF file for the in-process backend")
    model_lora_path: Path | None = None
    model_ctx: int = Field(4096, ge=512)
    model_threads: int = Field(0, ge=0, description="0 = number of cores")
    openai_base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. llama-server")
    openai_model: str = "opsbot"
    openai_api_key: SecretStr | None = None
    model_timeout_s: float = Field(60.0, gt=0)

    @field_validator("slack_admins", "slack_false_positive_reactions",
                     "slack_confirmed_reactions", mode="before")
    @classmethod
    def _split_admins(cls, v: Any) -> Any:
        return [u.strip() for u in v.split(",") if u.strip()] if isinstance(v, str) else v

    @field_validator("slack_bot_token", "slack_app_token", "slack_signing_secret",
                     "openai_api_key", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, v: Any) -> Any:
        # `OPSBOT_SLACK_SIGNING_SECRET=` in a shell or .env means "not set", not "the empty secret"
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("slack_api_base_url")
    @classmethod
    def _trailing_slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`[slack] bot_token = ...` in TOML is the same key as `slack_bot_token`."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}_{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _check_env(fields: set[str]) -> None:
    unknown = sorted(
        k for k in os.environ if k.upper().startswith(ENV_PREFIX)
        and k[len(ENV_PREFIX):].lower() not in fields
    )
    if unknown:
        raise SettingsError(
            f"unknown setting {unknown[0]} in the environment; see README.md 'Configuration' "
            f"for the list of OPSBOT_* variables"
        )


def _describe(err: ValidationError, source: str) -> SettingsError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        return SettingsError(f"unknown setting '{key}' in {source}")
    env = ENV_PREFIX + key.upper()
    return SettingsError(f"invalid value for '{key}' ({env}): {first['msg']}")


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults, an optional TOML file, the environment and overrides."""
    fields = set(Settings.model_fields)
    _check_env(fields)
    file_values: dict[str, Any] = {}
    source = "the environment"
    if config is not None:
        if not config.is_file():
            raise SettingsError(f"config file {config} does not exist")
        try:
            file_values = _flatten(tomllib.loads(config.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config} is not valid TOML: {exc}") from exc
        bad = sorted(set(file_values) - fields)
        if bad:
            raise SettingsError(f"unknown setting '{bad[0]}' in {config}")
        source = f"{config} or the environment"
    # Environment beats the file: drop file keys that the environment sets.
    env_set = {k[len(ENV_PREFIX):].lower() for k in os.environ if k.upper().startswith(ENV_PREFIX)}
    init = {k: v for k, v in file_values.items() if k not in env_set}
    init.update(overrides)
    try:
        return Settings(**init)
    except ValidationError as exc:
        raise _describe(exc, source) from None
