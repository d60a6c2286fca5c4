"""Every detector parameter, with its default and what it means, as frozen dataclasses.

One section per step (baseline, scoring, severity, level shift, lifecycle,
grouping); `DetectorConfig.from_flat` maps `section_field` keys (the shape a
pydantic-settings object has) onto them and rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BaselineConfig",
    "ConfigError",
    "DetectorConfig",
    "Direction",
    "GroupingConfig",
    "LevelShiftConfig",
    "LatencyModel",
    "LifecycleConfig",
    "NoveltyGateConfig",
    "ScoringConfig",
    "SeverityConfig",
    "WarmupGate",
]

HOUR_S = 3600.0
DAY_S = 86400.0

Direction = Literal["up", "down", "both"]
LatencyModel = Literal["log", "raw"]


class ConfigError(ValueError):
    """A detector parameter is out of range; the message names it and the accepted range."""


@dataclass(frozen=True, slots=True)
class WarmupGate:
    """Minimum samples AND minimum wall-clock span (earliest sample to now) before a bucket scores.

    Both zero disables the gate. With `min_span_s > 0` an unknown earliest sample fails closed.
    """

    min_samples: int
    min_span_s: float

    @property
    def disabled(self) -> bool:
        return self.min_samples == 0 and self.min_span_s == 0


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    """How baselines are built from hourly partial aggregates."""

    window_days: int = 30  # sliding window: the window_days x 24 whole hours before the current one
    relative_pct: float = 0.05  # variance floor, relative part: |mean| x this, in the series' units
    absolute_floor: float = 0.001  # variance floor, absolute part, in the series' units (ms, ...)
    hour_of_week_min_samples: int = 50  # samples in the hour-of-week bucket before it is used
    hour_of_week_min_span_s: float = 21 * DAY_S  # three weeks: each weekly hour seen three times
    hour_of_day_min_samples: int = 50
    hour_of_day_min_span_s: float = 7 * DAY_S  # a week: each hour of the day seen seven times
    global_min_samples: int = 100
    global_min_span_s: float = 1 * DAY_S  # one whole daily cycle before anything scores
    # After a level-shift re-anchor the global bucket needs only this much post-shift history
    # (the confirmation period already supplies it), so the key keeps scoring at its new level.
    reanchor_min_span_s: float = 3 * HOUR_S
    # What a span key's baseline models: "log" (mean and std of ln ms, the detector) or "raw"
    # (mean and std of the raw ms: the naive model, heavy tails inflate its std). "raw" exists
    # only so `opsbot eval sim` can measure the log model against it; it needs partials with
    # raw sums (detectors.raw_latency), which the store does not keep.
    latency_model: LatencyModel = "log"

    def gate(self, bucket_type: str) -> WarmupGate:
        """The warm-up gate of a bucket type ("hour_of_week", "hour_of_day" or "global")."""
        if bucket_type == "hour_of_week":
            return WarmupGate(self.hour_of_week_min_samples, self.hour_of_week_min_span_s)
        if bucket_type == "hour_of_day":
            return WarmupGate(self.hour_of_day_min_samples, self.hour_of_day_min_span_s)
        if bucket_type == "global":
            return WarmupGate(self.global_min_samples, self.global_min_span_s)
        raise ConfigError(
            f"unknown bucket type {bucket_type!r}; use hour_of_week, hour_of_day or global"
        )

    def __post_init__(self) -> None:
        _check("baseline_window_days", self.window_days, 1, 3650)
        _check("baseline_relative_pct", self.relative_pct, 0.0, 10.0)
        _check("baseline_absolute_floor", self.absolute_floor, 0.0, math.inf)
        for name in ("hour_of_week", "hour_of_day", "global"):
            _check(f"baseline_{name}_min_samples", getattr(self, f"{name}_min_samples"), 0, 10**12)
            _check(
                f"baseline_{name}_min_span_s", getattr(self, f"{name}_min_span_s"), 0, 3650 * DAY_S
            )
        _check("baseline_reanchor_min_span_s", self.reanchor_min_span_s, 0, 3650 * DAY_S)
        if self.latency_model not in ("log", "raw"):
            raise ConfigError(
                f"baseline_latency_model = {self.latency_model!r}; use 'log' (the default) or "
                "'raw' (mean/std of raw ms, for comparison only)"
            )


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """How spans, windows and metric samples become scores (z in the transformed space)."""

    max_z: float = 20.0  # symmetric cap on every score; 0 disables the cap
    window_s: int = 60  # the alerting unit: one key over one window of this many seconds
    min_window_count: int = 5  # windows with fewer spans get no score (NaN)
    # The p90 of a window rests on its slowest tenth: below this many spans that is under five
    # spans, and one or two outliers would move it, so smaller windows are scored on the median.
    min_tail_count: int = 50
    # Spans of one minute share load, GC pauses and caches, so they are not independent:
    # the standard error of a window statistic uses min(n, max_effective_n) samples.
    max_effective_n: int = 30

    def __post_init__(self) -> None:
        _check("scoring_max_z", self.max_z, 0.0, math.inf)
        _check("scoring_window_s", self.window_s, 1, 86400)
        _check("scoring_min_window_count", self.min_window_count, 1, 10**9)
        _check("scoring_min_tail_count", self.min_tail_count, 1, 10**9)
        _check("scoring_max_effective_n", self.max_effective_n, 1, 10**9)


@dataclass(frozen=True, slots=True)
class SeverityConfig:
    """Adaptive severity: percentiles of a key's historical window scores, with floors."""

    # SEV1..SEV5: a window is SEVk when its score is at or above the k-th percentile of history
    percentiles: tuple[float, ...] = (99.9, 99.0, 95.0, 90.0, 80.0)
    # ... and at or above the k-th floor, so a quiet key still needs a real z to alert at all
    score_floors: tuple[float, ...] = (8.0, 6.0, 5.0, 4.0, 3.0)
    min_history: int = 500  # fewer historical scores than this: thresholds are the floors alone
    # Minimum deviation: the observed statistic must differ from the baseline's by BOTH
    latency_min_abs_deviation_ms: float = 0.5
    latency_min_rel_deviation: float = 0.2
    metric_min_abs_deviation: float = 0.0
    metric_min_rel_deviation: float = 0.1
    latency_direction: Direction = "up"  # only slower is bad by default
    metric_direction: Direction = "both"

    def __post_init__(self) -> None:
        if len(self.percentiles) != 5 or len(self.score_floors) != 5:
            raise ConfigError(
                "severity_percentiles and severity_score_floors need 5 values (SEV1..SEV5)"
            )
        for p in self.percentiles:
            _check("severity_percentiles", p, 0.0, 100.0)
        if list(self.percentiles) != sorted(self.percentiles, reverse=True):
            raise ConfigError(
                "severity_percentiles must decrease from SEV1 to SEV5, e.g. 99.9,99,95,90,80"
            )
        if list(self.score_floors) != sorted(self.score_floors, reverse=True):
            raise ConfigError(
                "severity_score_floors must decrease from SEV1 to SEV5, e.g. 8,6,5,4,3"
            )
        _check("severity_min_history", self.min_history, 0, 10**12)
        _check(
            "severity_latency_min_abs_deviation_ms", self.latency_min_abs_deviation_ms, 0, math.inf
        )
        _check("severity_latency_min_rel_deviation", self.latency_min_rel_deviation, 0, math.inf)
        _check("severity_metric_min_abs_deviation", self.metric_min_abs_deviation, 0, math.inf)
        _check("severity_metric_min_rel_deviation", self.metric_min_rel_deviation, 0, math.inf)
        for name in ("latency_direction", "metric_direction"):
            if getattr(self, name) not in ("up", "down", "both"):
                raise ConfigError(f"severity_{name} must be 'up', 'down' or 'both'")


@dataclass(frozen=True, slots=True)
class LevelShiftConfig:
    """When a sustained one-sided deviation becomes the new normal (re-anchoring the baseline)."""

    enabled: bool = True
    shift_z: float = 3.0  # a window counts toward a shift when its score is beyond +-shift_z
    confirm_s: float = 6 * HOUR_S  # ... for this long: the bound on how long a new level alerts
    min_fraction: float = 0.8  # share of windows in the run that must be shifted the same way
    max_gap_s: float = 1800.0  # a run breaks after this long without a shifted window
    max_spread: float = 0.5  # stable level: std of the deviation <= this x |mean deviation|

    def __post_init__(self) -> None:
        _check("level_shift_shift_z", self.shift_z, 0.0, math.inf)
        _check("level_shift_confirm_s", self.confirm_s, 0.0, 3650 * DAY_S)
        _check("level_shift_min_fraction", self.min_fraction, 0.0, 1.0)
        _check("level_shift_max_gap_s", self.max_gap_s, 0.0, 3650 * DAY_S)
        _check("level_shift_max_spread", self.max_spread, 0.0, math.inf)


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """Anomaly open / update / resolve, cooldown and flap damping, per key."""

    def for_metrics(self) -> LifecycleConfig:
        """The same rules with the metric series' opening rule."""
        return dataclasses.replace(self, open_k=self.metric_open_k, open_n=self.metric_open_n)

    # Open when k of the last n windows carry a severity (missing windows count as quiet).
    # 2 of 3 detects in two minutes; `opsbot eval sim` measured 3 of 5 at a 180 s median.
    open_k: int = 2
    open_n: int = 3
    # A metric sample is one value a minute, not a window over many spans: noisier, so a
    # metric series needs more evidence (on Nezha's fault-free hours 2 of 3 doubled the alerts).
    metric_open_k: int = 3
    metric_open_n: int = 5
    sustain_score: float = 2.0  # hysteresis: while open, a window at or above this keeps it alive
    quiet_period_s: float = 600.0  # resolve after this long without a sustaining window
    cooldown_s: float = 1800.0  # no re-open of the same key for this long after a resolve
    flap_window_s: float = 6 * HOUR_S  # opens within this window count as flapping ...
    max_cooldown_s: float = 6 * HOUR_S  # ... doubling the cooldown per extra open, up to this
    max_exemplars: int = 10  # exemplar trace ids kept per anomaly

    def __post_init__(self) -> None:
        _check("lifecycle_open_n", self.open_n, 1, 10**6)
        _check("lifecycle_open_k", self.open_k, 1, self.open_n)
        _check("lifecycle_metric_open_n", self.metric_open_n, 1, 10**6)
        _check("lifecycle_metric_open_k", self.metric_open_k, 1, self.metric_open_n)
        _check("lifecycle_sustain_score", self.sustain_score, 0.0, math.inf)
        _check("lifecycle_quiet_period_s", self.quiet_period_s, 0.0, 3650 * DAY_S)
        _check("lifecycle_cooldown_s", self.cooldown_s, 0.0, 3650 * DAY_S)
        _check("lifecycle_flap_window_s", self.flap_window_s, 0.0, 3650 * DAY_S)
        _check("lifecycle_max_cooldown_s", self.max_cooldown_s, self.cooldown_s, 3650 * DAY_S)
        _check("lifecycle_max_exemplars", self.max_exemplars, 0, 10**6)


@dataclass(frozen=True, slots=True)
class NoveltyGateConfig:
    """The second signal of a metric series: its value leaves the range of its own history.

    Scored by `detectors.novelty_stream.NoveltyStream` (level, daily residual, spread and
    stuck runs, one score per excursion; windows are `NoveltyConfig`'s defaults). A
    sample whose novelty reaches `threshold` while its hour-of-week z is at least
    `min_z` (a warm baseline, so a young series stays quiet) opens an anomaly at once
    with severity `severity`, or the z path's own if that is higher.
    """

    # off by default: on the simulator's clean metric series it opens 3.75 times per 100
    # series-days, mostly new maxima of sparse error-rate series (`python -m bench.metric_quiet`)
    enabled: bool = False
    # score = e / (1 + e), e = excess over the past range in units of that range: 0.02
    # is a value 2% of its history's range beyond it (NAB: 65.4 / 61.8 at 0.02 fixed)
    threshold: float = 0.02
    min_z: float = 4.0  # the SEV4 score floor: clearly unusual for its hour as well
    severity: int = 3
    # a range is a history only once the series has one: no novelty opens before this age
    min_history_s: float = 3 * DAY_S

    def __post_init__(self) -> None:
        _check("novelty_threshold", self.threshold, 1e-9, 1.0)
        _check("novelty_min_z", self.min_z, 0.0, math.inf)
        _check("novelty_severity", self.severity, 1, 5)
        _check("novelty_min_history_s", self.min_history_s, 0.0, 3650 * DAY_S)


@dataclass(frozen=True, slots=True)
class GroupingConfig:
    """Which anomalies form one incident."""

    max_hops: int = 2  # services at most this many call-graph hops apart (either direction)
    overlap_slack_s: float = 300.0  # intervals closer than this count as overlapping
    min_edge_calls: int = 1  # caller->callee edges seen fewer times are ignored
    recent_spans: int = (
        100_000  # span ids remembered to link a child to a parent in an earlier batch
    )

    def __post_init__(self) -> None:
        _check("grouping_max_hops", self.max_hops, 0, 1000)
        _check("grouping_overlap_slack_s", self.overlap_slack_s, 0.0, 3650 * DAY_S)
        _check("grouping_min_edge_calls", self.min_edge_calls, 1, 10**12)
        _check("grouping_recent_spans", self.recent_spans, 0, 10**9)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """All sections together; what the detector loop and the recalculation receive."""

    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    severity: SeverityConfig = field(default_factory=SeverityConfig)
    level_shift: LevelShiftConfig = field(default_factory=LevelShiftConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    novelty: NoveltyGateConfig = field(default_factory=NoveltyGateConfig)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> DetectorConfig:
        """Build from `section_field` keys, e.g. {"baseline_window_days": 14}; unknown keys raise"""
        sections: dict[str, dict[str, Any]] = {f.name: {} for f in dataclasses.fields(cls)}
        for key, value in values.items():
            section = next((s for s in sections if key.startswith(s + "_")), None)
            name = key[len(section) + 1 :] if section else ""
            sub = _section_type(section) if section else None
            if sub is None or name not in {f.name for f in dataclasses.fields(sub)}:
                raise ConfigError(f"unknown detector setting {key!r}; see detectors/config.py")
            sections[section][name] = tuple(value) if isinstance(value, list) else value  # type: ignore[index]
        kwargs = {name: _section_type(name)(**vals) for name, vals in sections.items()}
        return cls(**kwargs)


def _section_type(name: str) -> Any:
    types = {f.name: f.default_factory for f in dataclasses.fields(DetectorConfig)}
    return types.get(name)


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, float) and math.isnan(value) or not lo <= value <= hi:
        raise ConfigError(f"{name} = {value!r} is out of range; use a value in [{lo}, {hi}]")
