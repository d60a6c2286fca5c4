"""Detector parameters: the issue's defaults, flat settings keys, and range checks."""

from __future__ import annotations

import pytest

from detectors.config import (
    BaselineConfig,
    ConfigError,
    DetectorConfig,
    LifecycleConfig,
    WarmupGate,
)


def test_defaults_are_the_issues() -> None:
    cfg = DetectorConfig()
    assert cfg.baseline.window_days == 30
    assert (cfg.baseline.relative_pct, cfg.baseline.absolute_floor) == (0.05, 0.001)
    assert cfg.severity.percentiles == (99.9, 99.0, 95.0, 90.0, 80.0)
    assert cfg.baseline.gate("global") == WarmupGate(100, 86400.0)
    assert cfg.level_shift.confirm_s == 6 * 3600


def test_from_flat_maps_settings_keys_onto_sections() -> None:
    cfg = DetectorConfig.from_flat(
        {
            "baseline_window_days": 14,
            "baseline_global_min_span_s": 0,
            "baseline_global_min_samples": 0,
            "scoring_max_z": 0,
            "severity_percentiles": [99.99, 99.9, 99, 95, 90],
            "lifecycle_cooldown_s": 60,
        }
    )
    assert cfg.baseline.window_days == 14 and cfg.baseline.gate("global").disabled
    assert cfg.scoring.max_z == 0 and cfg.severity.percentiles[0] == 99.99
    assert cfg.lifecycle.cooldown_s == 60 and cfg.grouping == DetectorConfig().grouping


@pytest.mark.parametrize("key", ["window_days", "baseline_nope", "severity_", "nothing_at_all"])
def test_unknown_keys_are_rejected_by_name(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        DetectorConfig.from_flat({key: 1})


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: BaselineConfig(window_days=0), "baseline_window_days"),
        (lambda: BaselineConfig(relative_pct=-0.1), "baseline_relative_pct"),
        (lambda: BaselineConfig(global_min_span_s=float("nan")), "baseline_global_min_span_s"),
        (lambda: LifecycleConfig(open_k=6, open_n=5), "lifecycle_open_k"),
        (lambda: LifecycleConfig(cooldown_s=600, max_cooldown_s=60), "lifecycle_max_cooldown_s"),
        (
            lambda: DetectorConfig.from_flat({"severity_percentiles": [80, 90, 95, 99, 99.9]}),
            "decrease",
        ),
        (lambda: DetectorConfig.from_flat({"severity_latency_direction": "sideways"}), "direction"),
    ],
)
def test_out_of_range_values_name_the_setting(make: object, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make()  # type: ignore[operator]


def test_unknown_bucket_type() -> None:
    with pytest.raises(ConfigError, match="hour_of_week"):
        BaselineConfig().gate("minute")
