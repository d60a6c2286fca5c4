"""The span model every ingestion path produces, and the reasons a span is rejected.

`Span` is the full record (used by loaders, clients, exemplars, the agent).
`SpanBatch` is the columnar form the hot ingest path works on: numpy columns
for the numbers, one Python list for keys, and a lazy way back to full spans.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_VALUE_CHARS",
    "RejectCounter",
    "RejectReason",
    "Span",
    "SpanBatch",
    "SpanKind",
    "SpanRejected",
    "bound_attributes",
    "span_key",
    "trace_id_hash",
]

# Bounds keep one hostile or buggy span from costing megabytes of memory or store.
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_VALUE_CHARS = 1024
MAX_NAME_CHARS = 256
# A span longer than a day is a clock bug, not latency.
MAX_DURATION_NS = 86_400 * 1_000_000_000


class SpanKind(enum.IntEnum):
    """OTLP span kinds (same integers as the protobuf enum)."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5

    @classmethod
    def parse(cls, value: object) -> SpanKind:
        """Accept ints, OTLP names (`SPAN_KIND_SERVER`) and Jaeger names (`server`)."""
        if isinstance(value, bool):
            raise SpanRejected(RejectReason.BAD_ENUM, f"span kind {value!r}")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise SpanRejected(RejectReason.BAD_ENUM, f"span kind {value}") from None
        if isinstance(value, str):
            name = value.upper().removeprefix("SPAN_KIND_")
            if name in cls.__members__:
                return cls[name]
        raise SpanRejected(RejectReason.BAD_ENUM, f"span kind {value!r}")


class RejectReason(enum.StrEnum):
    """Why a span (or a whole payload) did not make it into the store."""

    MALFORMED = "malformed"  # payload could not be decoded at all
    MISSING_FIELD = "missing_field"
    BAD_ID = "bad_id"
    NEGATIVE_DURATION = "negative_duration"
    NAN_DURATION = "nan_duration"
    TOO_LONG = "duration_too_long"
    BAD_ENUM = "unknown_enum"
    BAD_UTF8 = "invalid_utf8"
    TOO_LARGE = "payload_too_large"
    BAD_TIMESTAMP = "bad_timestamp"
    SERIES_LIMIT = "series_limit"  # a new span key beyond the configured cardinality cap


class SpanRejected(ValueError):
    """Raised by a decoder for one span; the caller counts it and moves on."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class RejectCounter:
    """Counts rejected spans by reason; shared by every ingestion path."""

    def __init__(self) -> None:
        self.counts: Counter[RejectReason] = Counter()
        self.last_detail: dict[RejectReason, str] = {}

    def add(self, reason: RejectReason, detail: str = "", n: int = 1) -> None:
        self.counts[reason] += n
        if detail:
            self.last_detail[reason] = detail[:200]

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {r.value: n for r, n in sorted(self.counts.items())}


def span_key(service: str, operation: str) -> str:
    return f"{service}:{operation}"


def bound_attributes(attrs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Keep at most MAX_ATTRIBUTES attributes, each value truncated to a bounded size."""
    items = attrs.items() if isinstance(attrs, Mapping) else attrs
    out: dict[str, Any] = {}
    for key, value in items:
        if len(out) >= MAX_ATTRIBUTES:
            break
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_VALUE_CHARS:
            value = value[:MAX_ATTRIBUTE_VALUE_CHARS] + "...[truncated]"
        elif isinstance(value, (list, tuple)):
            value = [str(v)[:MAX_ATTRIBUTE_VALUE_CHARS] for v in value[:MAX_ATTRIBUTES]]
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            value = str(value)[:MAX_ATTRIBUTE_VALUE_CHARS]
        out[str(key)[:MAX_NAME_CHARS]] = value
    return out


@dataclass(slots=True)
class Span:
    """One span. Times are integer nanoseconds since the Unix epoch."""

    trace_id: str  # lowercase hex, 32 chars
    span_id: str  # lowercase hex, 16 chars
    parent_id: str | None
    service: str
    operation: str
    start_ns: int
    duration_ns: int
    kind: SpanKind = SpanKind.UNSPECIFIED
    error: bool = False
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return span_key(self.service, self.operation)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

    def validate(self) -> Span:
        """Check invariants; raise SpanRejected naming the first broken one."""
        if not self.service or not self.operation:
            raise SpanRejected(RejectReason.MISSING_FIELD, "service and operation are required")
        if not self.trace_id or not self.span_id:
            raise SpanRejected(RejectReason.MISSING_FIELD, "trace id and span id are required")
        dur = self.duration_ns
        if isinstance(dur, float) and math.isnan(dur):
            raise SpanRejected(RejectReason.NAN_DURATION, f"{self.key}")
        if dur < 0:
            raise SpanRejected(RejectReason.NEGATIVE_DURATION, f"{self.key}: {dur} ns")
        if dur > MAX_DURATION_NS:
            raise SpanRejected(RejectReason.TOO_LONG, f"{self.key}: {dur} ns")
        if self.start_ns <= 0:
            raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{self.key}: start {self.start_ns}")
        self.service = self.service[:MAX_NAME_CHARS]
        self.operation = self.operation[:MAX_NAME_CHARS]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "service": self.service,
            "operation": self.operation,
            "start_ns": self.start_ns,
            "duration_ns": self.duration_ns,
            "kind": self.kind.name.lower(),
            "error": self.error,
            "status_message": self.status_message,
            "attributes": self.attributes,
            "resource": self.resource,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Span:
        return cls(
            trace_id=d["trace_id"],
            span_id=d["span_id"],
            parent_id=d.get("parent_id"),
            service=d["service"],
            operation=d["operation"],
            start_ns=int(d["start_ns"]),
            duration_ns=int(d["duration_ns"]),
            kind=SpanKind.parse(d.get("kind", 0)),
            error=bool(d.get("error", False)),
            status_message=d.get("status_message", ""),
            attributes=dict(d.get("attributes", {})),
            resource=dict(d.get("resource", {})),
        )


class SpanBatch:
    """Columnar spans: what the aggregate and exemplar paths consume.

    Keys may be given as strings per row, or as `key_names` plus an int code per row
    (`from_codes`); trace ids as hex strings per row, or as an (n, 16) uint8 array.
    Each form is derived from the other only when someone asks, so the OTLP
    protobuf path never builds a Python string per span.
    `materialize(i)` returns the full `Span` for row i; decoders that can defer
    building it (OTLP protobuf) do so, since only exemplar candidates need it.
    """

    __slots__ = ("_bounds", "_codes", "_defer", "_hashes", "_id_bytes", "_keys", "_names",
                 "_trace_ids", "duration_ns", "error", "materialize", "start_ns")

    def __init__(self, keys: list[str], trace_ids: list[str], start_ns: np.ndarray,
                 duration_ns: np.ndarray, error: np.ndarray,
                 materialize: Callable[[int], Span]) -> None:
        self._keys: list[str] | None = keys
        self._trace_ids: list[str] | None = trace_ids
        self._names: list[str] | None = None
        self._codes: np.ndarray | None = None
        self._id_bytes: np.ndarray | None = None
        self._hashes: np.ndarray | None = None
        self._defer: Callable[[int], tuple[str, Callable[[], Span]]] | None = None
        self._bounds: tuple[int, int, int, int] | None = None
        self.start_ns = start_ns  # int64
        self.duration_ns = duration_ns  # int64
        self.error = error  # bool
        self.materialize = materialize

    @classmethod
    def from_codes(cls, key_names: list[str], key_codes: np.ndarray, trace_id_bytes: np.ndarray,
                   start_ns: np.ndarray, duration_ns: np.ndarray, error: np.ndarray,
                   materialize: Callable[[int], Span],
                   defer: Callable[[int], tuple[str, Callable[[], Span]]] | None = None,
                   bounds: tuple[int, int, int, int] | None = None) -> SpanBatch:
        """Rows keyed `key_names[key_codes[i]]`, trace ids as raw 16-byte rows.

        `defer(i)` is what `deferred(i)` returns, for decoders that can build a span later
        from a little data of its own (not the whole batch). `bounds`: what `bounds()`
        returns, when the decoder already computed it while checking times.
        """
        batch = cls([], [], start_ns, duration_ns, error, materialize)
        batch._keys = batch._trace_ids = None
        batch._names, batch._codes = key_names, key_codes
        batch._id_bytes = trace_id_bytes
        batch._defer = defer
        batch._bounds = bounds
        return batch

    def __len__(self) -> int:
        return int(self.start_ns.shape[0])

    def bounds(self) -> tuple[int, int, int, int]:
        """(first start, last start, shortest, longest duration) in ns, of a non-empty batch.

        Decoders pass the values they computed for their own checks, so the pipeline's
        checks do not read the columns again.
        """
        if self._bounds is None:
            start, duration = self.start_ns, self.duration_ns
            self._bounds = (int(start.min()), int(start.max()), int(duration.min()),
                            int(duration.max()))
        return self._bounds

    @property
    def keys(self) -> list[str]:
        if self._keys is None:
            names, codes = self.key_codes()
            self._keys = [names[c] for c in codes.tolist()]
        return self._keys

    @property
    def trace_ids(self) -> list[str]:
        if self._trace_ids is None:
            ids = self._id_bytes
            self._trace_ids = (ids.tobytes().hex(" ", 16).split()
                               if ids is not None and len(ids) else [])
        return self._trace_ids

    def trace_id(self, row: int) -> str:
        """One row's trace id (no per-row list is built for it)."""
        if self._trace_ids is None and self._id_bytes is not None:
            return bytes(self._id_bytes[row]).hex()
        return self.trace_ids[row]

    def deferred(self, row: int) -> tuple[str, Callable[[], Span]]:
        """Row's span id, and a way to build its `Span` later that does not keep the batch alive.

        Exemplar spans wait for the flush this way, and the trim decides which get built.
        """
        if self._defer is not None:
            return self._defer(row)
        span = self.materialize(row)
        return span.span_id, lambda: span

    def key_codes(self) -> tuple[list[str], np.ndarray]:
        """(distinct keys, int64 code per row): how the pipeline groups without per-row strings."""
        if self._codes is None or self._names is None:
            index: dict[str, int] = {}
            setdefault = index.setdefault
            keys = self.keys
            codes = np.fromiter((setdefault(k, len(index)) for k in keys), np.int64, len(keys))
            self._names, self._codes = list(index), codes
        return self._names, self._codes

    def trace_id_hashes(self) -> np.ndarray:
        """A uint64 per row, equal for equal trace ids: a cheap pre-filter before comparing ids."""
        if self._hashes is None:
            if self._id_bytes is not None:
                self._hashes = _hash_id_bytes(self._id_bytes)
            else:
                self._hashes = _hash_hex_ids(self.trace_ids)
        return self._hashes

    @classmethod
    def from_spans(cls, spans: Sequence[Span]) -> SpanBatch:
        spans = list(spans)
        return cls(
            keys=[s.key for s in spans],
            trace_ids=[s.trace_id for s in spans],
            start_ns=np.fromiter((s.start_ns for s in spans), np.int64, len(spans)),
            duration_ns=np.fromiter((s.duration_ns for s in spans), np.int64, len(spans)),
            error=np.fromiter((s.error for s in spans), np.bool_, len(spans)),
            materialize=spans.__getitem__,
        )

    @classmethod
    def empty(cls) -> SpanBatch:
        return cls.from_spans([])


_MASK64 = (1 << 64) - 1


def _hash_id_bytes(ids: np.ndarray) -> np.ndarray:
    """XOR of the two little-endian halves of each 16-byte id."""
    halves = np.ascontiguousarray(ids, np.uint8).view("<u8")
    out: np.ndarray = halves[:, 0] ^ halves[:, 1]
    return out


def _hash_hex_ids(ids: list[str]) -> np.ndarray:
    """The same hash as `_hash_id_bytes` for 32-digit hex ids; Python's hash for any other id."""
    n = len(ids)
    if n and all(len(t) == 32 for t in ids):
        try:
            raw = bytes.fromhex("".join(ids))
        except ValueError:
            raw = b""
        if len(raw) == 16 * n:  # fromhex skips spaces: a short result means some id had one
            return _hash_id_bytes(np.frombuffer(raw, np.uint8).reshape(n, 16))
    out = np.empty(n, np.uint64)
    for i, t in enumerate(ids):
        out[i] = trace_id_hash(t)
    return out


def trace_id_hash(trace_id: str) -> int:
    """The hash `SpanBatch.trace_id_hashes` gives a row with this trace id."""
    if len(trace_id) == 32:
        try:
            raw = bytes.fromhex(trace_id)
        except ValueError:
            raw = b""
        if len(raw) == 16:
            return int.from_bytes(raw[:8], "little") ^ int.from_bytes(raw[8:], "little")
    return hash(trace_id) & _MASK64
