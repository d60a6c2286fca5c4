"""Persistence: the `Store` interface and its SQLite implementation."""

from bot.store.base import (
    AggregateRow,
    ExemplarTrace,
    SeriesInfo,
    Store,
    StoreError,
    StoreStats,
    StoreVersionError,
)
from bot.store.records import (
    AnomalyRecord,
    FeedbackRecord,
    IncidentRecord,
    MuteRecord,
    Verdict,
)
from bot.store.sqlite import SqliteStore

__all__ = [
    "AggregateRow",
    "AnomalyRecord",
    "FeedbackRecord",
    "IncidentRecord",
    "MuteRecord",
    "Verdict",
    "ExemplarTrace",
    "SeriesInfo",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreStats",
    "StoreVersionError",
]
