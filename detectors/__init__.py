"""Detection core: baselines, scores, severity, level shifts, anomaly lifecycle, incidents.

Pure numpy and small state machines: no IO, no clock, no globals. The detector
loop chains the steps: partials -> `build_baseline` -> `BaselineTable` ->
`score_windows` (the alerting unit: one key, one window) -> `decide_windows`
(direction, minimum deviation, `SeverityThresholds.classify`) ->
`AnomalyTracker.observe` -> `group_incidents`; `LevelShiftTracker` re-anchors a
baseline after a sustained shift. Metric samples: `sample_scores` -> `decide_samples`.
"""

from detectors.aggregate import LatencyAggregate
from detectors.baseline import (
    Baseline,
    baseline_from_aggregate,
    build_baseline,
    transformed_floor,
    variance_floor,
    warmup_ok,
)
from detectors.buckets import (
    BucketType,
    bucket_id,
    day_index,
    hour_of_day,
    hour_of_week,
    select_window,
)
from detectors.config import (
    BaselineConfig,
    ConfigError,
    DetectorConfig,
    GroupingConfig,
    LevelShiftConfig,
    LifecycleConfig,
    ScoringConfig,
    SeverityConfig,
    WarmupGate,
)
from detectors.decide import WindowDecisions, decide_samples, decide_windows
from detectors.grouping import CallGraph, Incident, IncidentMember, group_incidents, pick_origin
from detectors.level_shift import LevelShift, LevelShiftTracker
from detectors.lifecycle import Anomaly, AnomalyEvent, AnomalyTracker
from detectors.metric_aggregate import MetricAggregate
from detectors.scoring import (
    BaselineTable,
    WindowScores,
    cap_scores,
    sample_scores,
    score_windows,
    top_per_window,
)
from detectors.series import SeriesDetector, latency_detector, metric_detector, score_series
from detectors.severity import (
    Severity,
    SeverityDecision,
    SeverityThresholds,
    badness,
    compute_thresholds,
    deviation_ok,
    thresholds_by_group,
)
from detectors.threshold_diff import ThresholdDiff, diff_thresholds
from detectors.transforms import Transform, transform_for_metric

__all__ = [
    "Anomaly",
    "AnomalyEvent",
    "AnomalyTracker",
    "Baseline",
    "BaselineConfig",
    "BaselineTable",
    "BucketType",
    "CallGraph",
    "ConfigError",
    "DetectorConfig",
    "GroupingConfig",
    "Incident",
    "IncidentMember",
    "LatencyAggregate",
    "LevelShift",
    "LevelShiftConfig",
    "LevelShiftTracker",
    "LifecycleConfig",
    "MetricAggregate",
    "ScoringConfig",
    "SeriesDetector",
    "Severity",
    "SeverityConfig",
    "SeverityDecision",
    "SeverityThresholds",
    "ThresholdDiff",
    "Transform",
    "WarmupGate",
    "WindowDecisions",
    "WindowScores",
    "badness",
    "baseline_from_aggregate",
    "bucket_id",
    "build_baseline",
    "cap_scores",
    "compute_thresholds",
    "day_index",
    "decide_samples",
    "decide_windows",
    "deviation_ok",
    "diff_thresholds",
    "group_incidents",
    "hour_of_day",
    "hour_of_week",
    "latency_detector",
    "metric_detector",
    "pick_origin",
    "sample_scores",
    "score_series",
    "score_windows",
    "select_window",
    "thresholds_by_group",
    "top_per_window",
    "transform_for_metric",
    "transformed_floor",
    "variance_floor",
    "warmup_ok",
]
