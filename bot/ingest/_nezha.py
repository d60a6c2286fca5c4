"""Nezha span CSVs (OnlineBoutique traces) as columnar batches, built without a `Span` per row.

Columns: `TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,
EndTimeUnixNano,Duration` (Duration in microseconds, `ParentID=root` for roots).
Times are kept to the nanosecond from the start and end columns; the service is
the pod name without its replica-set and pod hashes, and the pod stays a resource
attribute. A full `Span` is built only when the pipeline asks for one.

Speed: a chunk with no quotes and the same field count on every line is split
with `str.split` and checked column-wise; any doubt sends it through the `csv`
module, and a chunk with a bad row is read row by row so each reject has its reason.
"""

from __future__ import annotations

import csv
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import TextIO

import numpy as np

from bot.spans import (
    MAX_DURATION_NS,
    MAX_NAME_CHARS,
    RejectCounter,
    RejectReason,
    Span,
    SpanBatch,
    SpanRejected,
    span_key,
)

__all__ = ["NEZHA_COLUMNS", "POD_ATTRIBUTE", "is_nezha_header", "nezha_batches", "service_of_pod"]

NEZHA_COLUMNS = ("TraceID", "SpanID", "ParentID", "PodName", "OperationName",
                 "StartTimeUnixNano", "EndTimeUnixNano", "Duration")
_REQUIRED = NEZHA_COLUMNS[:7]  # Duration is derived: end - start keeps the nanoseconds
POD_ATTRIBUTE = "k8s.pod.name"
_ROOT = frozenset({"root", "", "0000000000000000"})
_HEX = frozenset("0123456789abcdef")
_BLOCK_CHARS = 1 << 22  # read 4 Mi characters at a time: memory stays bounded
# A Deployment's pod: <name>-<pod-template-hash>-<5 chars>, both from Kubernetes' safe alphabet.
_POD = re.compile(r"(.+?)-[bcdfghjklmnpqrstvwxz2456789]{5,10}-[bcdfghjklmnpqrstvwxz2456789]{5}")
_Row = tuple[str, str, str | None, str, str, int, int]
# A key is a per-service prefix plus the operation, so keys are built by C-level string
# concatenation rather than a Python call per row; if span_key's shape ever changes,
# every row calls it instead.
_PREFIX_KEYS = span_key("s", "o") == span_key("s", "") + "o"


def service_of_pod(pod: str) -> str:
    """`frontend-579b9bff58-t2dbm` -> `frontend`; a name without both hashes is kept whole."""
    match = _POD.fullmatch(pod)
    return match[1] if match else pod


def is_nezha_header(fields: list[str]) -> bool:
    return set(_REQUIRED) <= {f.strip() for f in fields}


@dataclass(slots=True)
class _Columns:
    """One chunk's valid rows, column by column."""

    trace_ids: list[str]
    span_ids: list[str]
    parents: list[str | None]
    pods: list[str]
    services: list[str]
    operations: list[str]
    starts: np.ndarray  # int64 ns
    durations: np.ndarray  # int64 ns

    def span(self, i: int) -> Span:
        return Span(
            trace_id=self.trace_ids[i],
            span_id=self.span_ids[i],
            parent_id=self.parents[i],
            service=self.services[i],
            operation=self.operations[i],
            start_ns=int(self.starts[i]),
            duration_ns=int(self.durations[i]),
            resource={"service.name": self.services[i], POD_ATTRIBUTE: self.pods[i]},
        )

    def keys(self) -> list[str]:
        if not _PREFIX_KEYS:
            return list(map(span_key, self.services, self.operations))
        prefix = {s: span_key(s, "") for s in set(self.services)}
        return list(map(operator.add, map(prefix.__getitem__, self.services), self.operations))

    def batch(self) -> SpanBatch:
        return SpanBatch(
            keys=self.keys(),
            trace_ids=self.trace_ids,
            start_ns=self.starts,
            duration_ns=self.durations,
            error=np.zeros(len(self.trace_ids), dtype=np.bool_),
            materialize=self.span,
        )


def _all_hex(column: Sequence[str], size: int) -> bool:
    """Every id is 2*size lowercase hex digits and none is all zeros (C-speed passes)."""
    if not column:
        return True
    joined = "".join(column)
    if set(map(len, column)) != {2 * size} or joined.lower() != joined:
        return False
    try:
        raw = bytes.fromhex(joined)
    except ValueError:
        return False
    return len(raw) == size * len(column) and "0" * (2 * size) not in column


def _hex(value: str, size: int, what: str) -> str:
    text = value.strip().lower()
    if len(text) != 2 * size or not _HEX.issuperset(text) or text.count("0") == 2 * size:
        raise SpanRejected(RejectReason.BAD_ID, f"{what} {value[:40]!r} is not {size} hex bytes")
    return text


def _nanos(value: str, what: str) -> int:
    text = value.strip()
    if not text.isdecimal() or not 0 < int(text) < 1 << 63:
        raise SpanRejected(RejectReason.BAD_TIMESTAMP, f"{what} {value[:40]!r}")
    return int(text)


class _Reader:
    """Row rules for one file: column positions and the pod -> service cache."""

    def __init__(self, header: list[str]) -> None:
        index = {f.strip(): i for i, f in enumerate(header)}
        self.positions = [index[c] for c in _REQUIRED]
        self.fields = len(header)
        self._services: dict[str, str] = {}

    def services(self, pods: list[str]) -> list[str]:
        cache = self._services
        for pod in set(pods).difference(cache):
            cache[pod] = service_of_pod(pod)[:MAX_NAME_CHARS]
        return list(map(cache.__getitem__, pods))

    def split(self, lines: list[str]) -> list[list[str]] | None:
        """The required columns by `str.split`, when no line needs the CSV quoting rules."""
        text = ",".join(lines)
        if '"' in text or set(map(methodcaller("count", ","), lines)) != {self.fields - 1}:
            return None
        flat = text.split(",")
        return [flat[i::self.fields] for i in self.positions]

    def parse(self, rows: list[list[str]]) -> list[list[str]] | None:
        """The required columns of rows the `csv` module read."""
        if not rows or min(map(len, rows)) < max(self.positions) + 1:
            return None
        columns = list(zip(*rows, strict=False))  # rows may carry extra fields
        return [list(columns[i]) for i in self.positions]

    def checked(self, columns: list[list[str]]) -> _Columns | None:
        """The chunk as columns when every row is valid (the usual case), else None."""
        trace, span, parent, pod, op, start, end = columns
        parents = [None if p in _ROOT else p for p in parent]
        pods, ops = set(pod), set(op)
        if ("" in pods or "" in ops or max(map(len, ops)) > MAX_NAME_CHARS
                or not (_all_hex(trace, 16) and _all_hex(span, 8)
                        and _all_hex([p for p in parents if p is not None], 8))):
            return None
        try:
            starts = np.array(list(map(int, start)), dtype=np.int64)
            durations = np.array(list(map(int, end)), dtype=np.int64) - starts
        except (ValueError, OverflowError):
            return None
        if (starts <= 0).any() or (durations < 0).any() or (durations > MAX_DURATION_NS).any():
            return None
        return _Columns(trace, span, parents, pod, self.services(pod), op,
                        starts, durations)

    def by_row(self, rows: list[list[str]], rejects: RejectCounter, where: str,
               first: int) -> _Columns:
        """Row by row, so each bad row is counted with its own reason."""
        good: list[_Row] = []
        for number, row in enumerate(rows, first):
            if not row:
                continue  # a blank line is not a span
            try:
                good.append(self._row(row))
            except SpanRejected as exc:
                rejects.add(exc.reason, f"{where} row {number}: {exc.detail}")
        columns = [list(c) for c in zip(*good, strict=True)] if good else [[] for _ in range(7)]
        trace, span, parent, pod, op, start, dur = columns
        return _Columns(trace, span, parent, pod, self.services(pod), op,
                        np.array(start, dtype=np.int64), np.array(dur, dtype=np.int64))

    def _row(self, row: list[str]) -> _Row:
        if len(row) < max(self.positions) + 1:
            raise SpanRejected(RejectReason.MALFORMED, f"{len(row)} fields, expected {self.fields}")
        trace, span, parent, pod, op, start, end = (row[i] for i in self.positions)
        if not pod.strip() or not op.strip():
            raise SpanRejected(RejectReason.MISSING_FIELD, "PodName and OperationName are required")
        ids = (_hex(trace, 16, "TraceID"), _hex(span, 8, "SpanID"),
               None if parent.strip().lower() in _ROOT else _hex(parent, 8, "ParentID"))
        start_ns, end_ns = _nanos(start, "StartTimeUnixNano"), _nanos(end, "EndTimeUnixNano")
        if end_ns < start_ns:
            raise SpanRejected(RejectReason.NEGATIVE_DURATION, f"ends {start_ns - end_ns} ns early")
        if end_ns - start_ns > MAX_DURATION_NS:
            raise SpanRejected(RejectReason.TOO_LONG, f"{end_ns - start_ns} ns")
        return (*ids, pod.strip(), op.strip()[:MAX_NAME_CHARS], start_ns, end_ns - start_ns)


def _line_chunks(f: TextIO, size: int) -> Iterator[list[str]]:
    """Lines without their ends, at most `size` at a time, reading bounded blocks.

    A quoted field holding a line break would be split here; Nezha files have none,
    and the csv module still reads such a row, minus the break.
    """
    rest = ""
    while block := f.read(_BLOCK_CHARS):
        text = (rest + block).replace("\r\n", "\n")
        cut = text.rfind("\n")
        if cut < 0:
            rest = text
            continue
        rest = text[cut + 1:]
        lines = text[:cut].split("\n")
        for i in range(0, len(lines), size):
            yield lines[i:i + size]
    if rest:
        yield [rest]


def nezha_batches(f: TextIO, rejects: RejectCounter, chunk_spans: int,
                  name: str = "") -> Iterator[SpanBatch]:
    """Valid rows of an open Nezha CSV (header first) as batches of at most `chunk_spans`."""
    reader = _Reader(next(csv.reader([f.readline()]), []))
    first = 1
    for lines in _line_chunks(f, chunk_spans):
        filled = [line for line in lines if line]
        columns = reader.split(filled) if filled else None
        rows: list[list[str]] | None = None
        if columns is None and filled:
            rows = list(csv.reader(lines))
            columns = reader.parse([r for r in rows if r])
        cols = reader.checked(columns) if columns is not None else None
        if cols is None:
            cols = reader.by_row(rows or list(csv.reader(lines)), rejects, name, first)
        first += len(lines)
        if cols.trace_ids:
            yield cols.batch()
