"""The storage interface callers use, and the records it speaks in.

One real implementation today (`SqliteStore`); a PostgreSQL one can be added by
implementing `Store` without touching callers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.spans import Span
from detectors.aggregate import LatencyAggregate

__all__ = [
    "AggregateRow",
    "ExemplarTrace",
    "SeriesInfo",
    "SeriesKind",
    "Store",
    "StoreError",
    "StoreStats",
    "StoreVersionError",
]

SeriesKind = Literal["span", "metric"]


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to do."""


class StoreVersionError(StoreError):
    """The store file was written by a newer opsbot than this one."""


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    name: str
    kind: SeriesKind
    service: str
    operation: str
    first_seen_ns: int
    last_seen_ns: int


@dataclass(slots=True)
class AggregateRow:
    """A partial aggregate of one series for one UTC day and hour."""

    series_id: int
    day: int
    hour: int
    agg: LatencyAggregate


@dataclass(slots=True)
class ExemplarTrace:
    """A kept trace: why it was kept (its slow span), and its spans."""

    trace_id: str
    series_id: int
    hour_ns: int
    duration_ns: int
    start_ns: int
    pinned: bool = False
    spans: list[Span] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoreStats:
    series: int
    aggregate_rows: int
    exemplar_traces: int
    exemplar_spans: int
    file_bytes: int
    schema_version: int


class Store(Protocol):
    """Async storage used by ingestion, detection, the bot and the agent."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # -- series --
    async def touch_series(
        self, seen: Mapping[str, tuple[int, int]], kind: SeriesKind
    ) -> dict[str, int]:
        """Get-or-create series by name; widen first/last seen. Returns name -> id."""
        ...

    async def get_series(self, name: str) -> SeriesInfo | None: ...
    async def list_series(self, kind: SeriesKind | None = None) -> list[SeriesInfo]: ...

    # -- aggregates --
    async def add_aggregates(self, rows: Sequence[AggregateRow]) -> None:
        """Merge partial aggregates additively into the stored rows."""
        ...

    async def load_aggregates(
        self, series_id: int, first_day: int, last_day: int
    ) -> list[AggregateRow]: ...
    async def prune_aggregates(self, before_day: int) -> int: ...

    # -- exemplars --
    async def save_exemplars(self, traces: Sequence[ExemplarTrace]) -> None: ...
    async def add_exemplar_spans(self, trace_id: str, spans: Sequence[Span]) -> None: ...
    async def exemplar_durations(self, series_id: int, hour_ns: int) -> list[int]: ...
    async def trim_exemplars(self, series_id: int, hour_ns: int, keep: int) -> int: ...
    async def slowest_exemplars(
        self, series_id: int, since_ns: int, until_ns: int, limit: int
    ) -> list[ExemplarTrace]: ...
    async def get_trace(self, trace_id: str) -> list[Span]: ...
    async def pin_traces(self, trace_ids: Sequence[str]) -> None: ...
    async def prune_exemplars(self, unpinned_before_ns: int, pinned_before_ns: int) -> int: ...

    # -- bookkeeping --
    async def add_rejects(self, counts: Mapping[str, int]) -> None: ...
    async def rejects(self) -> dict[str, int]: ...
    async def get_meta(self, key: str) -> str | None: ...
    async def set_meta(self, key: str, value: str) -> None: ...
    async def stats(self) -> StoreStats: ...
