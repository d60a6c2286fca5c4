"""Simulated spans in columnar form, and the ways back to `SpanBatch` and full `Span`s.

Ids stay integers (uint64) until someone asks for a span: the hot path only
builds the key and trace-id lists a `SpanBatch` needs.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.simulator.topology import Topology
from bot.spans import Span, SpanBatch, SpanKind

__all__ = ["KeyTable", "SpanColumns", "SpanStatus", "hex_ids"]

RESOURCE_NAMESPACE = "kx"
RESOURCE_ENVIRONMENT = "simulation"


class SpanStatus(enum.IntEnum):
    """Why a simulated span is flagged; every value but OK is an error."""

    OK = 0
    ERROR = 1  # the operation, or one it called, failed
    TIMEOUT = 2  # gave up after its timeout
    CANCELLED = 3  # its caller timed out while it was still running

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    SpanStatus.OK: "",
    SpanStatus.ERROR: "operation failed",
    SpanStatus.TIMEOUT: "deadline exceeded",
    SpanStatus.CANCELLED: "cancelled: caller deadline exceeded",
}


@dataclass(frozen=True, slots=True)
class KeyTable:
    """Per span key: name parts, kind and static attributes (built once per topology)."""

    keys: np.ndarray  # object array of str, for fast fancy indexing
    services: tuple[str, ...]
    names: tuple[str, ...]
    kinds: tuple[SpanKind, ...]
    attributes: tuple[dict[str, Any], ...]

    @classmethod
    def from_topology(cls, topology: Topology) -> KeyTable:
        ops = topology.operations
        return cls(np.array([op.key for op in ops], dtype=object),
                   tuple(op.service for op in ops), tuple(op.name for op in ops),
                   tuple(op.kind for op in ops), tuple(dict(op.attributes) for op in ops))

    def resource(self, service: str) -> dict[str, Any]:
        return {"service.name": service, "service.namespace": RESOURCE_NAMESPACE,
                "deployment.environment.name": RESOURCE_ENVIRONMENT}


def hex_ids(*parts: np.ndarray) -> list[str]:
    """Lowercase hex of each row of big-endian uint64 parts (1 part: span id, 2: trace id)."""
    n = len(parts[0])
    buf = np.empty((n, len(parts)), dtype=">u8")
    for j, part in enumerate(parts):
        buf[:, j] = part
    text = buf.tobytes().hex()
    width = 16 * len(parts)
    return [text[i : i + width] for i in range(0, n * width, width)]


@dataclass(slots=True)
class SpanColumns:
    """One chunk of simulated spans. Row order: by minute, request type, then tree node."""

    table: KeyTable
    key_idx: np.ndarray  # int32 per span, into table
    trace_row: np.ndarray  # int64 per span, into trace_hi/trace_lo
    trace_hi: np.ndarray  # uint64 per trace
    trace_lo: np.ndarray  # uint64 per trace
    span_id: np.ndarray  # uint64 per span, never 0
    parent_id: np.ndarray  # uint64 per span, 0 for a root span
    start_ns: np.ndarray  # int64
    duration_ns: np.ndarray  # int64
    status: np.ndarray  # int8, SpanStatus

    def __len__(self) -> int:
        return int(self.key_idx.size)

    @property
    def error(self) -> np.ndarray:
        return np.asarray(self.status != SpanStatus.OK)

    @property
    def trace_count(self) -> int:
        return int(self.trace_hi.size)

    def keys(self) -> list[str]:
        return list(self.table.keys[self.key_idx].tolist())

    def trace_ids(self) -> list[str]:
        per_trace = np.array(hex_ids(self.trace_hi, self.trace_lo), dtype=object)
        return list(per_trace[self.trace_row].tolist()) if len(self) else []

    def to_batch(self) -> SpanBatch:
        """The columnar batch the ingest pipeline consumes; spans are built only on demand."""
        return SpanBatch(keys=self.keys(), trace_ids=self.trace_ids(),
                         start_ns=self.start_ns, duration_ns=self.duration_ns,
                         error=self.error, materialize=self.span)

    def span(self, i: int) -> Span:
        """The full span of row i."""
        k = int(self.key_idx[i])
        t = int(self.trace_row[i])
        parent = int(self.parent_id[i])
        status = SpanStatus(int(self.status[i]))
        service = self.table.services[k]
        return Span(
            trace_id=f"{int(self.trace_hi[t]):016x}{int(self.trace_lo[t]):016x}",
            span_id=f"{int(self.span_id[i]):016x}",
            parent_id=f"{parent:016x}" if parent else None,
            service=service,
            operation=self.table.names[k],
            start_ns=int(self.start_ns[i]),
            duration_ns=int(self.duration_ns[i]),
            kind=self.table.kinds[k],
            error=status is not SpanStatus.OK,
            status_message=status.message,
            attributes=dict(self.table.attributes[k]),
            resource=self.table.resource(service),
        )

    def spans(self) -> list[Span]:
        return [self.span(i) for i in range(len(self))]

    def select(self, rows: np.ndarray) -> SpanColumns:
        """The given rows (indices or a mask); the trace table is kept whole."""
        return SpanColumns(self.table, self.key_idx[rows], self.trace_row[rows], self.trace_hi,
                           self.trace_lo, self.span_id[rows], self.parent_id[rows],
                           self.start_ns[rows], self.duration_ns[rows], self.status[rows])

    @classmethod
    def empty(cls, table: KeyTable) -> SpanColumns:
        i64, u64 = np.zeros(0, np.int64), np.zeros(0, np.uint64)
        return cls(table, np.zeros(0, np.int32), i64, u64, u64, u64, u64, i64, i64,
                   np.zeros(0, np.int8))

    @classmethod
    def concat(cls, table: KeyTable, parts: Sequence[SpanColumns]) -> SpanColumns:
        """One chunk from several, trace rows renumbered."""
        if not parts:
            return cls.empty(table)
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [p.trace_count for p in parts[:-1]])
        return cls(
            table,
            np.concatenate([p.key_idx for p in parts]),
            np.concatenate([p.trace_row + off for p, off in zip(parts, offsets, strict=True)]),
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS),
        )


_COLUMNS = ("trace_hi", "trace_lo", "span_id", "parent_id", "start_ns", "duration_ns", "status")
