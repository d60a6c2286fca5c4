"""Decoding OTLP trace exports (protobuf and JSON) into span batches, counting what is rejected.

Protobuf is the hot path: upb builds request-wide columns (see `_otlp_schema`),
checks run on whole columns, and a full `Span` is built from the span's bytes
only when the pipeline asks for it. A request whose columns have gaps, or that
holds an invalid id, kind or status, is decoded span by span instead, so every
rejection gets its exact reason. Per-span problems are counted in the
`RejectCounter`; only a payload that cannot be read at all raises `OtlpDecodeError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bot.ingest._otlp_columns import (
    Nameless,
    SpanBytes,
    error_rows,
    name_groups,
    trusted_ids,
)
from bot.ingest._otlp_common import UNKNOWN_SERVICE, OtlpDecodeError
from bot.ingest._otlp_json import decode_traces_json, spans_from_otlp_json
from bot.ingest._otlp_repair import repair_invalid_utf8
from bot.ingest._otlp_schema import ColsRequest, RawRequest, SpanCols
from bot.ingest._otlp_span import ScopeInfo, span_from_pb
from bot.spans import (
    MAX_DURATION_NS,
    MAX_NAME_CHARS,
    RejectCounter,
    RejectReason,
    Span,
    SpanBatch,
)

__all__ = ["OtlpDecodeError", "decode_traces_json", "decode_traces_pb", "spans_from_otlp_json"]

_KINDS = range(0, 6)  # SpanKind values
_CODES = range(0, 3)  # Status.StatusCode values
_ERROR = 2
_INT64_MAX = 2**63 - 1


def decode_traces_pb(body: bytes, rejects: RejectCounter) -> SpanBatch:
    """An `ExportTraceServiceRequest` as columns; raises OtlpDecodeError when unreadable."""
    cols, (scopes, counts, raws) = _parse(body, rejects)
    if not raws:
        return SpanBatch.empty()
    spans = SpanBytes.of(raws)
    del raws  # one joined buffer is kept, not a bytes object per span
    rows = _columns(cols.resource_spans.scope_spans.spans, scopes, counts, spans)
    if rows is None:
        rows = _one_by_one(scopes, counts, spans, rejects)
    return rows.batch(rejects)


def _parse(body: bytes, rejects: RejectCounter) -> tuple[Any, _Scopes]:
    try:
        return ColsRequest.FromString(body), _scopes(RawRequest.FromString(body))
    except DecodeError:
        repaired = repair_invalid_utf8(body, rejects)
    try:
        if repaired is not None:
            return ColsRequest.FromString(repaired), _scopes(RawRequest.FromString(repaired))
    except DecodeError:
        pass
    raise OtlpDecodeError(
        RejectReason.MALFORMED,
        "body is not an OTLP ExportTraceServiceRequest in protobuf encoding (corrupt wire "
        "format); send application/json for OTLP/JSON",
    )


_Scopes = tuple[list[ScopeInfo], list[int], list[bytes]]
_CACHE_ENTRIES = 1024  # distinct resources, and (resource, scope) pairs, kept parsed
_services: dict[bytes, str] = {}
_scope_infos: dict[tuple[bytes, bytes], ScopeInfo] = {}


def _scopes(raw: Any) -> _Scopes:
    """Every non-empty ScopeSpans with its service, its span count, and all span bytes.

    Every resource and scope is parsed (raising DecodeError as a full parse would), but
    only the first time its bytes are seen: exporters send the same ones in every request.
    """
    scopes: list[ScopeInfo] = []
    counts: list[int] = []
    raws: list[bytes] = []
    for rs in raw.resource_spans:
        resource_pb = b"".join(rs.resource)
        service = _services.get(resource_pb) or _service_of(resource_pb)
        for ss in rs.scope_spans:
            key = (resource_pb, b"".join(ss.scope))
            scope = _scope_infos.get(key) or _scope_info(service, *key)
            spans = ss.spans
            if count := len(spans):
                scopes.append(scope)
                counts.append(count)
                raws += spans
    return scopes, counts, raws


def _service_of(resource_pb: bytes) -> str:
    if len(_services) >= _CACHE_ENTRIES:
        _services.clear()
    service = _services[resource_pb] = _service_name(Resource.FromString(resource_pb))
    return service


def _scope_info(service: str, resource_pb: bytes, scope_pb: bytes) -> ScopeInfo:
    if len(_scope_infos) >= _CACHE_ENTRIES:
        _scope_infos.clear()
    scope = InstrumentationScope.FromString(scope_pb)
    info = _scope_infos[resource_pb, scope_pb] = ScopeInfo(service, resource_pb, scope.name,
                                                           scope.version)
    return info


def _service_name(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            name = kv.value.string_value
            return name[:MAX_NAME_CHARS] if name else UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


@dataclass(slots=True)
class _Rows:
    """Decoded spans of one request before the time checks."""

    key_names: list[str]
    key_codes: np.ndarray  # row -> index in key_names
    trace_ids: np.ndarray  # (n, 16) uint8
    span_ids: np.ndarray  # (n, 8) uint8
    starts: Any  # sequence of uint64
    ends: Any
    error: np.ndarray
    scopes: list[ScopeInfo]
    scope_of: np.ndarray  # row -> index in scopes
    spans: SpanBytes
    span_of: np.ndarray  # row -> index in spans

    def batch(self, rejects: RejectCounter) -> SpanBatch:
        start = np.array(self.starts, np.uint64).view(np.int64)  # >= 2**63 reads negative
        duration = np.array(self.ends, np.uint64).view(np.int64) - start
        codes, trace_ids, span_ids, error, scope_of, span_of = (
            self.key_codes, self.trace_ids, self.span_ids, self.error, self.scope_of, self.span_of)
        ok, bounds = _check_times(start, duration, rejects)
        if ok is not None:
            start, duration, codes, trace_ids = start[ok], duration[ok], codes[ok], trace_ids[ok]
            span_ids, error, scope_of, span_of = span_ids[ok], error[ok], scope_of[ok], span_of[ok]
        materialize = _Materializer(self.scopes, scope_of, self.spans, span_of, span_ids,
                                    self.key_names, codes)
        return SpanBatch.from_codes(self.key_names, codes, trace_ids, start, duration, error,
                                    materialize, materialize.defer, bounds)


@dataclass(frozen=True, slots=True)
class _Materializer:
    scopes: list[ScopeInfo]
    scope_of: np.ndarray
    spans: SpanBytes
    span_of: np.ndarray
    span_ids: np.ndarray
    key_names: list[str]
    key_codes: np.ndarray

    def __call__(self, row: int) -> Span:
        return self.defer(row)[1]()

    def defer(self, row: int) -> tuple[str, Callable[[], Span]]:
        """The span id, and the span's own bytes bound to `span_from_pb` (a copy, ~400 B)."""
        scope = self.scopes[self.scope_of[row]]
        operation = self.key_names[self.key_codes[row]][len(scope.service) + 1 :]
        raw = self.spans.raw(int(self.span_of[row]))
        return self.span_ids[row].tobytes().hex(), partial(span_from_pb, raw, scope, operation)


def _key_codes(scopes: list[ScopeInfo], counts: list[int],
               names: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct `bot.spans.span_key`s in order of first appearance, and each row's index.

    Per row only C-level calls run: each scope's rows map to the row where their name
    first appears (`dict.setdefault`), then one numpy lookup turns those into key codes.
    """
    index: dict[str, int] = {}
    first_rows: list[int] = []
    first_codes: list[int] = []
    firsts: list[int] = []
    row = 0
    for scope, count in zip(scopes, counts, strict=True):
        seen: dict[str, int] = {}
        firsts += map(seen.setdefault, names[row : row + count], range(row, row + count))
        prefix = scope.service + ":"
        for name, first in seen.items():
            first_rows.append(first)
            first_codes.append(index.setdefault(prefix + name[:MAX_NAME_CHARS], len(index)))
        row += count
    code_of_first = np.zeros(row, np.int64)
    code_of_first[first_rows] = first_codes
    return list(index), code_of_first[np.array(firsts, np.int64)]


def _group_keys(scopes: list[ScopeInfo], scope_of: np.ndarray, rep: np.ndarray,
                firsts: np.ndarray, names: list[bytes]) -> tuple[list[str], np.ndarray]:
    """Keys of (scope, name) groups (see `name_groups`): one string per group, not per row."""
    index: dict[str, int] = {}
    code_of_first = np.empty(rep.shape[0], np.int64)
    code_of_first[firsts] = [
        index.setdefault(f"{scopes[s].service}:{name.decode()[:MAX_NAME_CHARS]}", len(index))
        for s, name in zip(scope_of[firsts].tolist(), names, strict=True)]
    return list(index), code_of_first[rep]


def _columns(cols: Any, scopes: list[ScopeInfo], counts: list[int],
             spans: SpanBytes) -> _Rows | None:
    """The request's rows from its merged columns, or None when they cannot be trusted."""
    ids = trusted_ids(cols, spans)
    if ids is None:
        return None
    n = len(spans)
    scope_of = np.repeat(np.arange(len(scopes), dtype=np.int32), counts)
    try:
        groups = name_groups(spans, scope_of, ids.prefixes)
    except Nameless:
        return None
    parents = len(cols.parent_span_id)
    if (groups is None or parents != groups[3]) and not set(
            map(len, cols.parent_span_id)) <= {8}:
        return None  # some parent id is not 8 bytes: span by span, to count each
    if groups is not None:
        key_names, key_codes = _group_keys(scopes, scope_of, *groups[:3])
    else:
        names = list(cols.name)
        if "" in names:
            return None
        key_names, key_codes = _key_codes(scopes, counts, names)
    error = error_rows(spans, list(cols.status.code).count(_ERROR))
    return _Rows(key_names, key_codes, ids.trace_ids, ids.span_ids, cols.start_time_unix_nano,
                 cols.end_time_unix_nano, error, scopes, scope_of, spans, np.arange(n))


def _one_by_one(scopes: list[ScopeInfo], counts: list[int], spans: SpanBytes,
                rejects: RejectCounter) -> _Rows:
    """Span-by-span decoding: slow, exact about every rejection."""
    names, trace_ids, span_ids, kept, starts, ends, errors, scope_of = ([], [], [], [], [], [],
                                                                        [], [])
    scope_by_row = np.repeat(np.arange(len(scopes)), counts).tolist()
    for i, scope in enumerate(scope_by_row):
        c = SpanCols.FromString(spans.raw(i))
        why = _reject_reason(c)
        if why is not None:
            rejects.add(*why)
            continue
        names.append(c.name[-1])
        trace_ids.append(c.trace_id[-1])
        span_ids.append(c.span_id[-1])
        kept.append(i)
        starts.append(c.start_time_unix_nano[-1] if c.start_time_unix_nano else 0)
        ends.append(c.end_time_unix_nano[-1] if c.end_time_unix_nano else 0)
        errors.append(bool(c.status.code) and c.status.code[-1] == _ERROR)
        scope_of.append(scope)
    rows_per_scope = np.bincount(scope_of, minlength=len(scopes)).tolist()
    key_names, key_codes = _key_codes(scopes, rows_per_scope, names)
    n = len(kept)
    tids = np.frombuffer(b"".join(trace_ids), np.uint8).reshape(n, 16)
    sids = np.frombuffer(b"".join(span_ids), np.uint8).reshape(n, 8)
    return _Rows(key_names, key_codes, tids, sids, starts, ends, np.array(errors, np.bool_),
                 scopes, np.array(scope_of, np.int32), spans, np.array(kept, np.int64))


def _reject_reason(c: Any) -> tuple[RejectReason, str] | None:
    """Why one span (parsed as SpanCols) is rejected; the same rules as the column checks."""
    for column, size, what in ((c.trace_id, 16, "trace id"), (c.span_id, 8, "span id")):
        if not column or not column[-1]:
            return RejectReason.MISSING_FIELD, f"{what} is missing"
        if len(column[-1]) != size or column[-1] == bytes(size):
            return RejectReason.BAD_ID, f"{what} is {len(column[-1])} bytes or all zero"
    if c.parent_span_id and len(c.parent_span_id[-1]) not in (0, 8):
        return RejectReason.BAD_ID, f"parent span id is {len(c.parent_span_id[-1])} bytes"
    if not c.name or not c.name[-1]:
        return RejectReason.MISSING_FIELD, "span name is empty"
    if c.kind and c.kind[-1] not in _KINDS:
        return RejectReason.BAD_ENUM, f"span kind {c.kind[-1]}"
    if c.status.code and c.status.code[-1] not in _CODES:
        return RejectReason.BAD_ENUM, f"status code {c.status.code[-1]}"
    return None  # times are checked for all rows at once


def _check_times(start: np.ndarray, duration: np.ndarray, rejects: RejectCounter,
                 ) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
    """Mask of rows with sane times, None when all are; the others are counted by reason.

    When all are, also the batch's `SpanBatch.bounds`, read in the same passes.
    """
    if start.size:  # the usual case, in four passes: no end is 0 or wraps past 2**63
        first, last = int(start.min()), int(start.max())
        shortest, longest = int(duration.min()), int(duration.max())
        if (first > 0 and shortest >= 0 and longest <= MAX_DURATION_NS
                and last <= _INT64_MAX - longest):
            return None, (first, last, shortest, longest)
    end = start + duration
    checks = (
        ((start == 0) | (end == 0), RejectReason.MISSING_FIELD, "start or end time is 0 (unset)"),
        ((start < 0) | (end < 0), RejectReason.BAD_TIMESTAMP, "time beyond 2262 (>= 2**63 ns)"),
        (duration < 0, RejectReason.NEGATIVE_DURATION, "end time before start time"),
        (duration > MAX_DURATION_NS, RejectReason.TOO_LONG, "span longer than a day"),
    )
    ok: np.ndarray | None = None
    for bad, reason, detail in checks:
        if ok is not None:
            bad &= ok
        n = int(np.count_nonzero(bad))
        if n:
            rejects.add(reason, detail, n)
            ok = ~bad if ok is None else ok & ~bad
    return ok, None
