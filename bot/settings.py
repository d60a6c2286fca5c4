"""The one settings object: `OPSBOT_*` environment variables plus an optional TOML file.

Precedence: explicit arguments > environment > TOML file > defaults. Unknown keys
(in the file or as `OPSBOT_*` variables) and invalid values are rejected at start
with a message naming the key. Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from detectors.config import DetectorConfig

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
    trace_buffer_spans: int = Field(
        200_000, ge=1000, description="recent spans kept to rebuild exemplar traces")
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
    metrics_queries: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="PromQL polled into the detector, ';'-separated; 'name=' prefix names a "
        "query's series; empty = no metric polling")
    metrics_poll_interval_s: float = Field(30.0, gt=0, description="seconds between metric polls")
    metrics_backfill_s: float = Field(
        86400.0, ge=0, description="history fetched on the first poll of a new store")
    metrics_delay_s: float = Field(
        30.0, ge=0, description="evaluate PromQL this far behind now, so the last scrape landed")

    # -- detection (names after `section_field` of detectors.config.DetectorConfig) --
    baseline_window_days: int = Field(
        30, ge=1, le=365, description="sliding window of the baselines")
    baseline_relative_pct: float = Field(
        0.05, ge=0, description="variance floor, relative part: |mean| x this")
    baseline_absolute_floor: float = Field(
        0.001, ge=0, description="variance floor, absolute part, in the baseline's units")
    baseline_hour_of_week_min_samples: int = Field(
        50, ge=0, description="warm-up: samples before an hour-of-week bucket is used")
    baseline_hour_of_week_min_span_s: float = Field(
        21 * 86400.0, ge=0, description="warm-up: seconds from the first sample (0 and 0 = off)")
    baseline_hour_of_day_min_samples: int = Field(
        50, ge=0, description="warm-up: samples before an hour-of-day bucket is used")
    baseline_hour_of_day_min_span_s: float = Field(
        7 * 86400.0, ge=0, description="warm-up: seconds from the first sample")
    baseline_global_min_samples: int = Field(
        100, ge=0, description="warm-up: samples before the global bucket scores anything")
    baseline_global_min_span_s: float = Field(
        86400.0, ge=0, description="warm-up: seconds of history before a key scores at all")
    scoring_max_z: float = Field(20.0, ge=0, description="symmetric cap on every score; 0 = off")
    scoring_window_s: int = Field(
        60, ge=1, le=86400, description="the alerting unit: one key over one window of this length")
    severity_percentiles: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [99.9, 99.0, 95.0, 90.0, 80.0],
        description="SEV1..SEV5: percentile of the key's historical scores to reach")
    severity_score_floors: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [8.0, 6.0, 5.0, 4.0, 3.0],
        description="SEV1..SEV5: minimum score as well (a stable key needs a real deviation)")
    severity_latency_min_abs_deviation_ms: float = Field(
        0.5, ge=0, description="minimum deviation from the baseline, in ms ...")
    severity_latency_min_rel_deviation: float = Field(
        0.2, ge=0, description="... and relative to it (both must hold)")
    level_shift_enabled: bool = Field(
        True, description="re-anchor a baseline after a sustained shift (e.g. a deploy)")
    level_shift_confirm_s: float = Field(
        6 * 3600.0, ge=0, description="how long a new level alerts before it is the baseline")
    lifecycle_open_k: int = Field(
        2, ge=1, description="an anomaly opens when k of the last n windows are anomalous ...")
    lifecycle_open_n: int = Field(3, ge=1, description="... out of n windows")
    lifecycle_metric_open_k: int = Field(
        3, ge=1, description="the same rule for metric series (one noisy sample a minute) ...")
    lifecycle_metric_open_n: int = Field(5, ge=1, description="... out of n samples")
    lifecycle_quiet_period_s: float = Field(
        600.0, ge=0, description="an anomaly resolves after this long without anomalous windows")
    lifecycle_cooldown_s: float = Field(
        1800.0, ge=0, description="no re-open of the same key for this long after a resolve")
    novelty_enabled: bool = Field(
        False, description="metric series: a value beyond its own history's range opens at once")
    novelty_threshold: float = Field(
        0.02, gt=0, le=1, description="... when its novelty score reaches this (0..1)")
    novelty_min_z: float = Field(
        4.0, ge=0, description="... and its hour-of-week z (warm baseline) reaches this")
    novelty_severity: int = Field(
        3, ge=1, le=5, description="... with this severity (or the z path's, if higher)")
    novelty_min_history_s: float = Field(
        3 * 86400.0, ge=0, description="... once the series is at least this old")
    grouping_max_hops: int = Field(
        2, ge=0, description="anomalies at most this many call-graph hops apart form an incident")
    grouping_overlap_slack_s: float = Field(
        300.0, ge=0, description="anomalies closer in time than this count as overlapping")
    detection_interval_s: float = Field(
        5.0, gt=0, description="how often the live engine scores windows closed by the clock")
    detection_lateness_s: float = Field(
        30.0, ge=0, description="a window is scored this long after its end (late spans)")
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
        description=(
            "comma-separated user ids (U...) or user group ids (S...) allowed to recalc/mute"
        ),
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
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible server, e.g. llama-server")
    openai_model: str = "opsbot"
    openai_api_key: SecretStr | None = None
    model_url: str | None = Field(
        None, description="where `opsbot model pull` downloads the fine-tuned GGUF from")
    model_sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="expected sha256 of that GGUF")
    model_timeout_s: float = Field(60.0, gt=0)

    @field_validator("slack_admins", "slack_false_positive_reactions",
                     "slack_confirmed_reactions", mode="before")
    @classmethod
    def _split_admins(cls, v: Any) -> Any:
        return [u.strip() for u in v.split(",") if u.strip()] if isinstance(v, str) else v

    @field_validator("metrics_queries", mode="before")
    @classmethod
    def _split_queries(cls, v: Any) -> Any:
        # PromQL uses commas (`sum by (a, b)`), so a list in one variable is ';'-separated
        return [q.strip() for q in v.split(";") if q.strip()] if isinstance(v, str) else v

    @field_validator("slack_bot_token", "slack_app_token", "slack_signing_secret",
                     "openai_api_key", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, v: Any) -> Any:
        # `OPSBOT_SLACK_SIGNING_SECRET=` in a shell or .env means "not set", not "the empty secret"
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("severity_percentiles", "severity_score_floors", mode="before")
    @classmethod
    def _split_numbers(cls, v: Any) -> Any:
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _detector_config_is_valid(self) -> Settings:
        from detectors.config import ConfigError

        try:
            self.detector_config()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def detector_config(self) -> DetectorConfig:
        """The detection settings as the detectors' own config (the rest: its defaults)."""
        from detectors.config import DetectorConfig

        sections = ("baseline_", "scoring_", "severity_", "level_shift_", "lifecycle_", "grouping_",
                    "novelty_")
        flat = {k: v for k, v in self.model_dump().items() if k.startswith(sections)}
        return DetectorConfig.from_flat(flat)

    @model_validator(mode="after")
    def _metric_queries_need_prometheus(self) -> Settings:
        if self.metrics_queries and not self.prometheus_url:
            raise ValueError("metrics_queries is set but prometheus_url is not: set "
                             "OPSBOT_PROMETHEUS_URL (e.g. http://prometheus:9090) or clear "
                             "OPSBOT_METRICS_QUERIES")
        return self

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
    key = ".".join(str(p) for p in first["loc"])
    if not key:  # a rule across settings (the detector config): its message names the key
        return SettingsError(f"invalid settings in {source}: {first['msg']}")
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
