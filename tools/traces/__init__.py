"""Trace backends the agent may query (Jaeger, Tempo), their errors, and Jaeger JSON."""

from tools.traces._backend import (
    InvalidQueryError,
    TraceBackendError,
    TraceBackendTimeout,
    TraceBackendUnavailable,
    TraceFormatError,
    TraceNotFoundError,
)

__all__ = [
    "InvalidQueryError",
    "TraceBackendError",
    "TraceBackendTimeout",
    "TraceBackendUnavailable",
    "TraceFormatError",
    "TraceNotFoundError",
]
