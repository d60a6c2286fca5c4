"""Argument types shared by the tools: closed sets and patterns a grammar can enforce.

Times are "now", "now-<n><m|h|d>" or ISO 8601 UTC; windows come from a fixed list.
Every string has a `maxLength` well under 1000 (llama.cpp's grammar parser has
crashed on 1500) so constrained generation always terminates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field

__all__ = [
    "WINDOWS",
    "KeyArg",
    "ServiceArg",
    "TimeArg",
    "TimeError",
    "TraceIdArg",
    "Window",
    "resolve_time",
    "window_ns",
]

Window = Literal["5m", "15m", "30m", "1h", "3h", "6h", "12h", "24h", "7d"]
WINDOWS: tuple[str, ...] = ("5m", "15m", "30m", "1h", "3h", "6h", "12h", "24h", "7d")

_UNIT_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_TIME_PATTERN = (
    r"^(now|now-[0-9]{1,4}[mhd]|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?Z?)$"
)

KeyArg = Annotated[str, Field(
    min_length=3, max_length=300, pattern=r"^[^:\n]{1,120}:[^\n]{1,170}$",
    description="span key 'service:operation', e.g. 'kx-exchange:pg-pool.connect'")]
ServiceArg = Annotated[str, Field(
    min_length=1, max_length=120, pattern=r"^[^:\n]{1,120}$",
    description="service name, e.g. 'kx-exchange'")]
TraceIdArg = Annotated[str, Field(
    min_length=1, max_length=32, pattern=r"^[0-9a-fA-F]{1,32}$",
    description="trace id, 1-32 hex digits")]
TimeArg = Annotated[str, Field(
    max_length=25, pattern=_TIME_PATTERN,
    description="'now', 'now-2h' (m, h or d), or UTC time '2024-05-01T12:03:00Z'")]


class TimeError(ValueError):
    """A time argument that passed the pattern but is not a real time (month 13)."""


def window_ns(window: str) -> int:
    """'15m' -> nanoseconds."""
    return int(window[:-1]) * _UNIT_NS[window[-1]]


def resolve_time(value: str, now_ns: int) -> int:
    """A `TimeArg` as nanoseconds since the epoch, relative times against `now_ns`."""
    if value == "now":
        return now_ns
    if value.startswith("now-"):
        return now_ns - window_ns(value[4:])
    text = value.replace(" ", "T").removesuffix("Z")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(f"{value!r} is not a valid UTC time; write it as 2024-05-01T12:03:00Z"
                        ) from None
    return int(parsed.replace(tzinfo=UTC).timestamp()) * 10**9

