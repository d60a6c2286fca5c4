"""PromQL templates per metric the agent asks about, and how a service name is put into one.

A template is PromQL with one placeholder, `{service}`, replaced by the service
name escaped as a PromQL string (it sits inside `"..."`). Braces elsewhere are
PromQL's own label matchers, so `str.format` is never used on a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

__all__ = [
    "DEFAULT_TEMPLATES",
    "METRICS",
    "SIMULATOR_TEMPLATES",
    "UNITS",
    "MetricName",
    "TemplateError",
    "check_templates",
    "escape_label_value",
    "render",
]

MetricName = Literal["cpu_percent", "memory_mb", "error_rate_pct", "request_rate_rps", "p99_ms"]
METRICS: tuple[MetricName, ...] = get_args(MetricName)

UNITS: dict[MetricName, str] = {
    "cpu_percent": "%", "memory_mb": "MB", "error_rate_pct": "%", "request_rate_rps": "req/s",
    "p99_ms": "ms",
}

# OpenTelemetry semantic-convention names as the OTel Collector's Prometheus exporter writes
# them (process_* from client libraries; http_server_request_duration_seconds in seconds).
_HTTP = "http_server_request_duration_seconds"
DEFAULT_TEMPLATES: dict[MetricName, str] = {
    "cpu_percent": 'sum(rate(process_cpu_seconds_total{service="{service}"}[1m]))*100',
    "memory_mb": 'sum(process_resident_memory_bytes{service="{service}"})/1048576',
    "error_rate_pct": (
        f'100*sum(rate({_HTTP}_count{{service="{{service}}",http_response_status_code=~"5.."}}'
        f'[1m]))/sum(rate({_HTTP}_count{{service="{{service}}"}}[1m]))'),
    "request_rate_rps": f'sum(rate({_HTTP}_count{{service="{{service}}"}}[1m]))',
    "p99_ms": (f'1000*histogram_quantile(0.99, sum by (le) (rate({_HTTP}_bucket'
               f'{{service="{{service}}"}}[1m])))'),
}

# The simulator's own gauges (bot.simulator.metrics), for the demo and the tests.
SIMULATOR_TEMPLATES: dict[MetricName, str] = {
    "cpu_percent": 'opsbot_sim_cpu_percent{service="{service}"}',
    "memory_mb": 'opsbot_sim_memory_mb{service="{service}"}',
    "error_rate_pct": '100*opsbot_sim_error_rate{service="{service}"}',
    "request_rate_rps": 'opsbot_sim_request_rate{service="{service}"}',
    "p99_ms": 'opsbot_sim_p99_ms{service="{service}"}',
}


class TemplateError(ValueError):
    """A PromQL template set that cannot work; the message names the metric."""


def escape_label_value(value: str) -> str:
    """A string safe inside PromQL double quotes: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(template: str, service: str) -> str:
    return template.replace("{service}", escape_label_value(service))


def check_templates(templates: Mapping[MetricName, str] | Mapping[str, str]
                    ) -> dict[MetricName, str]:
    """Defaults overlaid with `templates`; unknown metric names and missing placeholders raise."""
    unknown = sorted(set(templates) - set(METRICS))
    if unknown:
        raise TemplateError(f"unknown metric {unknown[0]!r} in the PromQL templates; "
                            f"known: {', '.join(METRICS)}")
    merged = dict(DEFAULT_TEMPLATES)
    for metric, template in templates.items():
        if "{service}" not in template:
            raise TemplateError(f"the PromQL template of {metric} has no {{service}} "
                                f"placeholder: {template!r}")
        merged[metric] = template  # type: ignore[index]
    return merged
