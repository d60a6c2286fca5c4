"""Simulated spans as an OTLP/JSON `ExportTraceServiceRequest` (one resource per service).

Follows the OTLP/JSON rules: trace and span ids are lowercase hex, 64-bit
integers (times, intValue) are decimal strings, `kind` and status `code` are
enum integers, and fields at their default value are left out.
"""

from __future__ import annotations

from typing import Any

from bot.simulator.columns import SpanColumns, SpanStatus, hex_ids

__all__ = ["SCOPE_NAME", "SCOPE_VERSION", "STATUS_CODE_ERROR", "any_value", "otlp_json"]

SCOPE_NAME = "opsbot.simulator"
SCOPE_VERSION = "1"
STATUS_CODE_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


def any_value(value: object) -> dict[str, Any]:
    """An OTLP/JSON AnyValue; bool before int since bool is an int in Python."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


def otlp_json(spans: SpanColumns) -> dict[str, Any]:
    """The request as a JSON-ready dict; spans grouped into one resource per service."""
    table = spans.table
    trace_hex = hex_ids(spans.trace_hi, spans.trace_lo)
    span_hex = hex_ids(spans.span_id)
    parent_hex = hex_ids(spans.parent_id)
    static = [_attributes(a) for a in table.attributes]
    by_service: dict[str, list[dict[str, Any]]] = {}
    keys, rows = spans.key_idx.tolist(), spans.trace_row.tolist()
    starts, durs = spans.start_ns.tolist(), spans.duration_ns.tolist()
    statuses, parents = spans.status.tolist(), spans.parent_id.tolist()
    for i, k in enumerate(keys):
        span: dict[str, Any] = {
            "traceId": trace_hex[rows[i]],
            "spanId": span_hex[i],
            "name": table.names[k],
            "kind": int(table.kinds[k]),
            "startTimeUnixNano": str(starts[i]),
            "endTimeUnixNano": str(starts[i] + durs[i]),
        }
        if parents[i]:
            span["parentSpanId"] = parent_hex[i]
        if static[k]:
            span["attributes"] = static[k]
        if statuses[i]:
            span["status"] = {"code": STATUS_CODE_ERROR,
                              "message": SpanStatus(statuses[i]).message}
        by_service.setdefault(table.services[k], []).append(span)
    return {"resourceSpans": [
        {"resource": {"attributes": _attributes(table.resource(service))},
         "scopeSpans": [{"scope": {"name": SCOPE_NAME, "version": SCOPE_VERSION},
                         "spans": service_spans}]}
        for service, service_spans in by_service.items()
    ]}
