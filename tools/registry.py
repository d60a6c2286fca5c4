"""Every tool the agent may call, by name: the one list the planner chooses from."""

from __future__ import annotations

from typing import Any

from tools.base import Tool
from tools.detection.baseline import BaselineTool
from tools.detection.recalculate import RecalculateTool
from tools.metrics.standin import MetricStandIn
from tools.metrics.tool import MetricsTool, templates_from_settings
from tools.records.anomalies import AnomaliesTool
from tools.records.feedback import RecordFeedbackTool
from tools.records.incident import IncidentTool
from tools.records.service_graph import ServiceGraphTool
from tools.records.similar import SimilarIncidentsTool
from tools.traces.breakdown import TraceBreakdownTool
from tools.traces.slow_traces import SlowTracesTool

__all__ = ["TOOL_NAMES", "default_tools"]

TOOL_NAMES = ("slow_traces", "trace_breakdown", "baseline", "metrics", "anomalies", "incident",
              "service_graph", "similar_incidents", "record_feedback", "recalculate")


def default_tools(settings: Any, *, metric_standin: MetricStandIn | None = None
                  ) -> dict[str, Tool]:
    """A fresh instance of every tool, configured from `settings` (PromQL templates, ...).

    `metric_standin`: the simulator whose metrics stand in when no Prometheus is configured
    (default: the demo's, from the settings); the eval passes the incident's own simulator.
    """
    tools: list[Tool] = [
        SlowTracesTool(), TraceBreakdownTool(), BaselineTool(),
        MetricsTool(templates_from_settings(settings), metric_standin), AnomaliesTool(),
        IncidentTool(),
        ServiceGraphTool(), SimilarIncidentsTool(), RecordFeedbackTool(), RecalculateTool(),
    ]
    by_name = {t.name: t for t in tools}
    assert tuple(by_name) == TOOL_NAMES, "registry and TOOL_NAMES disagree"
    return by_name
