"""Span files as a stream of batches: OTLP JSON (a document or JSON Lines), Jaeger JSON,
and the Nezha span CSV. The format is read from the content, not the file name.

CSV and JSON Lines stream in bounded memory; a single JSON document is parsed
whole (JSON has no cheap way to stream), then handed out in chunks. Broken spans,
lines and rows are counted in the `RejectCounter`; only a file whose format is
not one of these raises `UnsupportedFileError`.
"""

from __future__ import annotations

import csv
import enum
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bot.ingest._nezha import NEZHA_COLUMNS, is_nezha_header, nezha_batches
from bot.ingest.otlp import OtlpDecodeError, spans_from_otlp_json
from bot.spans import RejectCounter, RejectReason, Span, SpanBatch
from tools.traces.jaeger_format import is_jaeger_document, spans_from_jaeger

__all__ = [
    "DEFAULT_CHUNK_SPANS",
    "SUPPORTED_FORMATS",
    "FileFormat",
    "UnsupportedFileError",
    "detect_format",
    "load_file",
]

DEFAULT_CHUNK_SPANS = 50_000
_SNIFF_BYTES = 1 << 16
_OTLP_KEYS = ("resourceSpans", "resource_spans", "batches")


class FileFormat(enum.StrEnum):
    OTLP_JSON = "OTLP JSON (an export request or TracesData with resourceSpans)"
    JSON_LINES = ("JSON Lines (one OTLP export request a line, as the collector's file "
                  "exporter writes, or one Jaeger trace a line)")
    JAEGER_JSON = 'Jaeger JSON (the query API\'s {"data": [traces]} or one trace with spans)'
    NEZHA_CSV = "Nezha span CSV (header " + ",".join(NEZHA_COLUMNS) + ")"


SUPPORTED_FORMATS = tuple(f.value for f in FileFormat)


class UnsupportedFileError(ValueError):
    """The file is in none of the formats the loader reads; nothing was loaded from it."""

    def __init__(self, path: Path, found: str) -> None:
        formats = "; ".join(SUPPORTED_FORMATS)
        super().__init__(f"{path}: unsupported span file ({found}). Supported: {formats}. "
                         "Convert the file to one of these, or check that it holds traces.")
        self.path = path


def load_file(path: Path, rejects: RejectCounter,
              chunk_spans: int = DEFAULT_CHUNK_SPANS) -> Iterator[SpanBatch]:
    """Every valid span of `path` in batches of at most `chunk_spans`.

    An unknown format raises `UnsupportedFileError` here, before any batch is read.
    """
    path = Path(path)
    fmt = _sniff(path)
    if fmt is FileFormat.NEZHA_CSV:
        return _nezha_file(path, rejects, chunk_spans)
    if fmt is FileFormat.JSON_LINES:
        return _chunks(_json_lines(path, rejects), chunk_spans)
    obj = _parse_document(path)
    if obj is None:
        rejects.add(RejectReason.MALFORMED, f"{path}: not valid JSON (truncated or corrupt?)")
        return iter(())
    if _kind(obj) is None:
        raise UnsupportedFileError(path, _describe(obj))
    return _chunks(_spans_of(obj, rejects, str(path)), chunk_spans)


def _nezha_file(path: Path, rejects: RejectCounter, chunk_spans: int) -> Iterator[SpanBatch]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        yield from nezha_batches(f, rejects, chunk_spans, path.name)


def detect_format(path: Path) -> FileFormat:
    """The file's format from its first bytes (a single JSON document is parsed to tell)."""
    path = Path(path)
    fmt = _sniff(path)
    if fmt is not None:
        return fmt
    obj = _parse_document(path)
    kind = _kind(obj)
    if kind is None:
        raise UnsupportedFileError(path, "invalid JSON" if obj is None else _describe(obj))
    return kind


def _sniff(path: Path) -> FileFormat | None:
    """CSV by its header, JSON Lines by a complete object on line one; None: one JSON document."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    first_line = text.split("\n", 1)[0].strip()
    start = text.lstrip()[:1]
    if start in ("{", "["):
        if start == "{" and _kind(_loads(first_line)) is not None:
            return FileFormat.JSON_LINES
        return None
    if is_nezha_header(next(csv.reader([first_line]), [])):
        return FileFormat.NEZHA_CSV
    found = "empty file" if not text.strip() else f"first line {first_line[:80]!r}"
    raise UnsupportedFileError(path, found)


def _kind(obj: Any) -> FileFormat | None:
    if isinstance(obj, dict) and (any(k in obj for k in _OTLP_KEYS) or
                                  isinstance(obj.get("trace"), dict)):
        return FileFormat.OTLP_JSON
    if is_jaeger_document(obj):
        return FileFormat.JAEGER_JSON
    return None


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return "a JSON object with keys " + ", ".join(list(obj)[:6])
    if isinstance(obj, list):
        inner = obj[0] if obj else None
        keys = ", ".join(list(inner)[:6]) if isinstance(inner, dict) else type(inner).__name__
        return f"a JSON list of {keys}"
    return f"JSON {type(obj).__name__}"


def _spans_of(obj: Any, rejects: RejectCounter, where: str) -> list[Span]:
    kind = _kind(obj)
    try:
        if kind is FileFormat.OTLP_JSON:
            return spans_from_otlp_json(obj, rejects)
        if kind is FileFormat.JAEGER_JSON:
            return spans_from_jaeger(obj, rejects)
    except OtlpDecodeError as exc:
        rejects.add(exc.reason, f"{where}: {exc}")
        return []
    rejects.add(RejectReason.MALFORMED, f"{where}: not OTLP or Jaeger JSON ({_describe(obj)})")
    return []


def _parse_document(path: Path) -> Any:
    return _parse(path.read_bytes())


def _parse(raw: bytes) -> Any:
    """The parsed JSON, or None when it is not JSON.

    Invalid UTF-8 survives as lone surrogates so the OTLP decoder can count the
    spans it spoils; Jaeger JSON has no such rule, so it is read again with U+FFFD.
    """
    try:
        return _loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        obj = _loads(raw.decode("utf-8", "surrogateescape"))
    if _kind(obj) is FileFormat.JAEGER_JSON:
        return _loads(raw.decode("utf-8", "replace"))
    return obj


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _json_lines(path: Path, rejects: RejectCounter) -> Iterator[Span]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            obj = _parse(raw)
            if obj is None:
                rejects.add(RejectReason.MALFORMED, f"{path}:{number}: line is not valid JSON")
                continue
            yield from _spans_of(obj, rejects, f"{path}:{number}")


def _chunks(spans: Iterable[Span], size: int) -> Iterator[SpanBatch]:
    chunk: list[Span] = []
    for span in spans:
        chunk.append(span)
        if len(chunk) >= size:
            yield SpanBatch.from_spans(chunk)
            chunk = []
    if chunk:
        yield SpanBatch.from_spans(chunk)
