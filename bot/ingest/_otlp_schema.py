"""Message classes derived from the official OTLP trace descriptors for fast, columnar decoding.

Reading fields one by one from Python costs more than parsing the whole request,
so the hot path lets upb build the columns: in `ColsRequest` every span field we need
is `repeated` and `ScopeSpans.spans` is a *singular* message, and protobuf merges
repeated occurrences of a singular message by appending their repeated fields.
With ResourceSpans and ScopeSpans singular too, one parse yields a list of all
trace ids, all names, all start times... of the request. Fields a span omits
(proto3 defaults) leave gaps, so columns are only trusted when their length
equals the span count, which `RawRequest` gives (it keeps resources, scopes and
each span as opaque bytes: resources and scopes are parsed once per distinct
bytes, spans only when a full span is built).
`LenientRequest` is the full official schema with every `string` turned into `bytes`:
upb rejects a whole message on invalid UTF-8, and this parses it anyway.
Field numbers are read from the official descriptors, so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "LENIENT_STRING_FIELDS",
    "ColsRequest",
    "LenientRequest",
    "LenientSpan",
    "RawRequest",
    "SpanCols",
    "StatusOnly",
]

_F = descriptor_pb2.FieldDescriptorProto
_REPEATED, _OPTIONAL = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
_PACKAGE = "opsbot.otlp_fast"
_SPAN = trace_pb2.Span.DESCRIPTOR.fields_by_name
_SPAN_COLUMNS = (
    ("trace_id", _F.TYPE_BYTES), ("span_id", _F.TYPE_BYTES), ("parent_span_id", _F.TYPE_BYTES),
    ("name", _F.TYPE_STRING), ("kind", _F.TYPE_INT32),  # int32, not the enum: keeps unknown values
    ("start_time_unix_nano", _F.TYPE_FIXED64), ("end_time_unix_nano", _F.TYPE_FIXED64),
)


def _number(descriptor: Descriptor, field: str) -> int:
    return int(descriptor.fields_by_name[field].number)


def _message(file: descriptor_pb2.FileDescriptorProto, name: str,
             *fields: tuple[str, int, int, int, str]) -> None:
    msg = file.message_type.add(name=name)
    for field_name, number, ftype, label, type_name in fields:
        f = msg.field.add(name=field_name, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name


def _add_official(pool: descriptor_pool.DescriptorPool, files: tuple[FileDescriptor, ...]) -> None:
    for fd in files:
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        pool.Add(proto)


def _fast_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="opsbot/otlp_fast.proto", package=_PACKAGE, syntax="proto3",
        dependency=["opentelemetry/proto/common/v1/common.proto",
                    "opentelemetry/proto/resource/v1/resource.proto"],
    )
    status, rs, ss = (trace_pb2.Status.DESCRIPTOR, trace_pb2.ResourceSpans.DESCRIPTOR,
                      trace_pb2.ScopeSpans.DESCRIPTOR)
    request = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR
    p, msg = f".{_PACKAGE}.", _F.TYPE_MESSAGE
    _message(file, "StatusCols", ("code", _number(status, "code"), _F.TYPE_INT32, _REPEATED, ""))
    _message(file, "SpanCols",
             *((n, _SPAN[n].number, t, _REPEATED, "") for n, t in _SPAN_COLUMNS),
             ("status", _SPAN["status"].number, msg, _OPTIONAL, p + "StatusCols"))
    # Spans reduced to their status codes (other fields are skipped), for `error_rows`.
    _message(file, "StatusOnly",
             ("status", _SPAN["status"].number, msg, _OPTIONAL, p + "StatusCols"))
    # Singular all the way down: every span of the request merges into one SpanCols.
    _message(file, "ScopeCols", ("spans", _number(ss, "spans"), msg, _OPTIONAL, p + "SpanCols"))
    _message(file, "ResourceCols",
             ("scope_spans", _number(rs, "scope_spans"), msg, _OPTIONAL, p + "ScopeCols"))
    _message(file, "RequestCols",
             ("resource_spans", _number(request, "resource_spans"), msg, _OPTIONAL,
              p + "ResourceCols"))
    # resource and scope as their bytes (every occurrence: joined, they parse as the merge)
    _message(file, "ScopeRaw", ("scope", _number(ss, "scope"), _F.TYPE_BYTES, _REPEATED, ""),
             ("spans", _number(ss, "spans"), _F.TYPE_BYTES, _REPEATED, ""))
    _message(file, "ResourceRaw",
             ("resource", _number(rs, "resource"), _F.TYPE_BYTES, _REPEATED, ""),
             ("scope_spans", _number(rs, "scope_spans"), msg, _REPEATED, p + "ScopeRaw"))
    _message(file, "RequestRaw", ("resource_spans", _number(request, "resource_spans"), msg,
                                  _REPEATED, p + "ResourceRaw"))
    return file


def _lenient_files(converted: set[str]) -> list[descriptor_pb2.FileDescriptorProto]:
    """The official trace files with `string` fields declared as `bytes` (same wire format)."""
    out = []
    for fd in (common_pb2.DESCRIPTOR, resource_pb2.DESCRIPTOR, trace_pb2.DESCRIPTOR,
               trace_service_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        stack = [(m, f"{proto.package}.{m.name}") for m in proto.message_type]
        while stack:
            msg, full_name = stack.pop()
            for f in msg.field:
                if f.type == _F.TYPE_STRING:
                    f.type = _F.TYPE_BYTES
                    converted.add(f"{full_name}.{f.name}")
            stack.extend((m, f"{full_name}.{m.name}") for m in msg.nested_type)
        out.append(proto)
    return out


def _build() -> tuple[Any, Any, Any, Any, Any, Any, frozenset[str]]:
    fast = descriptor_pool.DescriptorPool()
    _add_official(fast, (common_pb2.DESCRIPTOR, resource_pb2.DESCRIPTOR))
    fast.Add(_fast_file())
    lenient = descriptor_pool.DescriptorPool()
    converted: set[str] = set()
    for proto in _lenient_files(converted):
        lenient.Add(proto)

    def cls(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return (
        cls(fast, f"{_PACKAGE}.RequestCols"),
        cls(fast, f"{_PACKAGE}.RequestRaw"),
        cls(fast, f"{_PACKAGE}.SpanCols"),
        cls(fast, f"{_PACKAGE}.StatusOnly"),
        cls(lenient, "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
        cls(lenient, "opentelemetry.proto.trace.v1.Span"),
        frozenset(converted),
    )


(ColsRequest, RawRequest, SpanCols, StatusOnly, LenientRequest, LenientSpan,
 LENIENT_STRING_FIELDS) = _build()
