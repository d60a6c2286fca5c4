"""The HTTP side of OTLP/HTTP: bounded body reading, gzip, and the response encodings.

Responses follow the OTLP/HTTP spec: the request's own encoding (protobuf or
JSON), `ExportTraceServiceResponse` on success, `google.rpc.Status` on failure.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from enum import Enum

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.responses import Response

__all__ = [
    "BodyError",
    "Encoding",
    "encoding_of",
    "error_response",
    "export_response",
    "inflate",
    "read_body",
]

PROTOBUF_TYPE = "application/x-protobuf"
JSON_TYPE = "application/json"
# google.rpc.Code values
RPC_INVALID_ARGUMENT, RPC_RESOURCE_EXHAUSTED, RPC_UNAVAILABLE = 3, 8, 14


class Encoding(Enum):
    PROTOBUF = PROTOBUF_TYPE
    JSON = JSON_TYPE


class BodyError(Exception):
    """The request body cannot be accepted; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def encoding_of(content_type: str | None) -> Encoding | None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in (PROTOBUF_TYPE, "application/protobuf"):
        return Encoding.PROTOBUF
    if media == JSON_TYPE:
        return Encoding.JSON
    return None


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None,
                    content_encoding: str | None, limit: int) -> bytes:
    """The (decompressed) body, refusing more than `limit` bytes before or after gzip."""
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise BodyError(413, f"body of {content_length} bytes is over the {limit}-byte limit")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body is over the {limit}-byte limit")
        parts.append(chunk)
    body = b"".join(parts)
    coding = (content_encoding or "identity").strip().lower()
    if coding in _WBITS:
        return inflate(body, limit, coding)
    if coding != "identity":
        raise BodyError(415, f"Content-Encoding {coding!r} is not supported; use gzip, "
                        "deflate or none")
    return body


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # HTTP deflate is zlib format


def inflate(data: bytes, limit: int, coding: str = "gzip") -> bytes:
    """Decompress (every gzip member), stopping as soon as the output passes `limit`."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=_WBITS[coding])
        try:
            chunk = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise BodyError(400, f"body is not valid {coding}: {exc}") from None
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise BodyError(413, f"{coding} body inflates past the {limit}-byte limit")
        if not inflater.eof:
            raise BodyError(400, f"{coding} body is truncated")
        out.append(chunk)
        data = inflater.unused_data
    return b"".join(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _status_pb(code: int, message: str) -> bytes:
    """google.rpc.Status{code = 1; message = 2}, encoded by hand: googleapis-common-protos
    is not a runtime dependency, and these two fields are all the receiver sends."""
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def error_response(status: int, message: str, encoding: Encoding | None,
                   headers: dict[str, str] | None = None) -> Response:
    rpc = {413: RPC_RESOURCE_EXHAUSTED, 503: RPC_UNAVAILABLE}.get(status, RPC_INVALID_ARGUMENT)
    if encoding is Encoding.PROTOBUF:
        return Response(_status_pb(rpc, message), status, headers, PROTOBUF_TYPE)
    body = json.dumps({"code": rpc, "message": message})
    return Response(body, status, headers, JSON_TYPE)


def export_response(encoding: Encoding, rejected: int, message: str) -> Response:
    """200 with an ExportTraceServiceResponse; partial_success only when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding is Encoding.PROTOBUF:
        return Response(response.SerializeToString(), 200, media_type=PROTOBUF_TYPE)
    return Response(json_format.MessageToJson(response, indent=None), 200, media_type=JSON_TYPE)
