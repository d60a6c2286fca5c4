"""How facts are written in tool summaries: one format per unit, and untrusted text quoted.

Summaries go to a small model and to the answer verifier, so a number must look
the same everywhere ("286.94ms", "92%", "p99 3.10ms"). Span attributes, log
lines, operation names and user text come from outside: they are data, so they
are flattened to one line, truncated and quoted, never pasted in as prose.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime

__all__ = [
    "fmt_ms",
    "fmt_num",
    "fmt_pct",
    "fmt_ratio",
    "fmt_time",
    "iso_time",
    "name",
    "quoted",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")
# What span keys usually look like: "kx-exchange", "pg-pool.connect", "POST /orders/{id}".
_PLAIN_NAME = re.compile(r"[\w.:/\-{}#@*=<>\[\],]+(?: [\w.:/\-{}#@*=<>\[\],]+){0,2}")


def fmt_ms(ms: float | None) -> str:
    """Milliseconds with two decimals: '286.94ms'; 'n/a' for a missing value."""
    if ms is None or not math.isfinite(ms):
        return "n/a"
    return f"{ms:.2f}ms"


def fmt_pct(percent: float | None, digits: int = 0) -> str:
    """A percentage already in percent units: fmt_pct(92.3) == '92%', fmt_pct(0.5, 1) == '0.5%'."""
    if percent is None or not math.isfinite(percent):
        return "n/a"
    return f"{percent:.{digits}f}%"


def fmt_num(value: float | None, unit: str = "", digits: int = 2) -> str:
    """A plain number with a unit glued on: '18.50 req/s' keeps a space for word units."""
    if value is None or not math.isfinite(value):
        return "n/a"
    sep = " " if unit and unit[0].isalpha() and unit not in ("MB", "GB", "KB") else ""
    return f"{value:.{digits}f}{sep}{unit}"


def fmt_ratio(ratio: float | None) -> str:
    """How many times a value exceeds a reference: '132.0x'."""
    if ratio is None or not math.isfinite(ratio):
        return "n/a"
    return f"{ratio:.1f}x"


def iso_time(t_ns: int) -> str:
    """UTC time to the second, ISO 8601: '2024-05-01T12:03:04Z' (for data)."""
    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_time(t_ns: int) -> str:
    """UTC time for a summary: '2024-05-01 12:03:04Z'."""
    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def quoted(text: object, limit: int = 80) -> str:
    """Untrusted text as one JSON string literal of at most `limit` characters inside.

    Quotes, backslashes and line breaks are escaped, so nothing inside can close
    the quote or start a new line that reads like an instruction to the model.
    """
    flat = _one_line(str(text))
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return json.dumps(flat, ensure_ascii=False)


def name(text: object, limit: int = 80) -> str:
    """A service/operation/key name: bare when it looks like a name, else quoted like data."""
    flat = _one_line(str(text))
    if flat and len(flat) <= limit and _PLAIN_NAME.fullmatch(flat):
        return flat
    return quoted(flat, limit)

