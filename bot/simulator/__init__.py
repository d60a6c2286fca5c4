"""Deterministic telemetry simulator of a small exchange platform, with injectable incidents.

`Simulator(seed, incidents=...)` generates spans (columnar `SpanColumns`, or
`SpanBatch`/`Span` on demand) and per-minute service metrics for any simulated
time range; `schedule_incidents` places incidents and records their ground truth.
Sinks: OTLP/JSON files (`files`), OTLP/HTTP protobuf (`otlp_http`), or batches.
"""

from bot.simulator.columns import KeyTable, SpanColumns, SpanStatus
from bot.simulator.errors import (
    OtlpExportError,
    ScheduleError,
    SimulationRangeError,
    SimulatorError,
    TopologyError,
)
from bot.simulator.files import (
    write_ground_truth,
    write_otlp_json,
    write_otlp_jsonl,
    write_replay,
)
from bot.simulator.incidents import (
    GroundTruth,
    ground_truth_json,
    intensity,
    load_ground_truth,
    make_incident,
    schedule_incidents,
)
from bot.simulator.metrics import MetricSample, render_exposition
from bot.simulator.otlp_http import (
    ExportResult,
    OtlpHttpEmitter,
    RetryPolicy,
    encode_otlp_protobuf,
    otlp_request,
)
from bot.simulator.otlp_json import otlp_json
from bot.simulator.scenarios import SCENARIOS, Profile, Scenario, ScenarioSpec, Signal
from bot.simulator.simulator import SimChunk, Simulator
from bot.simulator.topology import DEFAULT_TOPOLOGY, Entry, Operation, ServiceProfile, Topology
from bot.simulator.traffic import DAY_NS, HOUR_NS, MINUTE_NS, WEEK_NS, TrafficModel

__all__ = [
    "DAY_NS",
    "DEFAULT_TOPOLOGY",
    "HOUR_NS",
    "MINUTE_NS",
    "SCENARIOS",
    "WEEK_NS",
    "Entry",
    "ExportResult",
    "GroundTruth",
    "KeyTable",
    "MetricSample",
    "Operation",
    "OtlpExportError",
    "OtlpHttpEmitter",
    "Profile",
    "RetryPolicy",
    "Scenario",
    "ScenarioSpec",
    "ScheduleError",
    "ServiceProfile",
    "Signal",
    "SimChunk",
    "SimulationRangeError",
    "Simulator",
    "SimulatorError",
    "SpanColumns",
    "SpanStatus",
    "Topology",
    "TopologyError",
    "TrafficModel",
    "encode_otlp_protobuf",
    "ground_truth_json",
    "intensity",
    "load_ground_truth",
    "make_incident",
    "otlp_json",
    "otlp_request",
    "render_exposition",
    "schedule_incidents",
    "write_ground_truth",
    "write_otlp_json",
    "write_otlp_jsonl",
    "write_replay",
]
