"""Time buckets of a baseline (hour-of-week, hour-of-day, global) and the window of partials.

Partials are keyed by (UTC day since epoch, hour 0..23), as the store keeps them.
The window for time t is the `window_days x 24` whole hours before the hour that
contains t: the hour being scored never takes part in its own baseline.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeVar

__all__ = [
    "DAY_NS",
    "FALLBACK_ORDER",
    "HOUR_NS",
    "BucketType",
    "bucket_id",
    "bucket_id_of_partial",
    "day_index",
    "hour_index",
    "hour_of_day",
    "hour_of_week",
    "in_window",
    "select_window",
]

HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


class BucketType(enum.StrEnum):
    HOUR_OF_WEEK = "hour_of_week"  # 168 buckets, Monday 00:00 UTC = 0
    HOUR_OF_DAY = "hour_of_day"  # 24 buckets, UTC
    GLOBAL = "global"  # one bucket


# Most specific first: a baseline uses the first bucket type that is warm.
FALLBACK_ORDER: tuple[BucketType, ...] = (
    BucketType.HOUR_OF_WEEK,
    BucketType.HOUR_OF_DAY,
    BucketType.GLOBAL,
)

A = TypeVar("A")


def day_index(t_ns: int) -> int:
    """Whole UTC days since the Unix epoch."""
    return t_ns // DAY_NS


def hour_index(t_ns: int) -> int:
    """Whole hours since the Unix epoch."""
    return t_ns // HOUR_NS


def hour_of_day(t_ns: int) -> int:
    return (t_ns // HOUR_NS) % 24


def hour_of_week(t_ns: int) -> int:
    """0..167 with Monday 00:00 UTC = 0."""
    return ((t_ns // DAY_NS + _EPOCH_WEEKDAY) % 7) * 24 + hour_of_day(t_ns)


def bucket_id_of_partial(bucket_type: BucketType, day: int, hour: int) -> int:
    """Bucket of a stored (day, hour) partial."""
    if bucket_type is BucketType.HOUR_OF_WEEK:
        return ((day + _EPOCH_WEEKDAY) % 7) * 24 + hour
    if bucket_type is BucketType.HOUR_OF_DAY:
        return hour
    return 0


def bucket_id(bucket_type: BucketType, t_ns: int) -> int:
    """Bucket of a timestamp."""
    return bucket_id_of_partial(bucket_type, day_index(t_ns), hour_of_day(t_ns))


def in_window(
    day: int,
    hour: int,
    bucket_type: BucketType,
    t_ns: int,
    window_days: int,
    anchor_ns: int | None = None,
) -> bool:
    """Whether partial (day, hour) belongs to the baseline of `bucket_type` at time t.

    It must be one of the `window_days x 24` whole hours before t's hour, fall in
    t's bucket, and (after a level-shift re-anchor) start at or after `anchor_ns`.
    """
    h = day * 24 + hour
    current = hour_index(t_ns)
    if not current - window_days * 24 <= h < current:
        return False
    if anchor_ns is not None and h * HOUR_NS < anchor_ns:
        return False
    return bucket_id_of_partial(bucket_type, day, hour) == bucket_id(bucket_type, t_ns)


def select_window(
    partials: Iterable[tuple[int, int, A]],
    bucket_type: BucketType,
    t_ns: int,
    window_days: int,
    anchor_ns: int | None = None,
) -> list[A]:
    """The aggregates of the (day, hour, aggregate) partials that make the baseline at t."""
    return [
        agg
        for day, hour, agg in partials
        if in_window(day, hour, bucket_type, t_ns, window_days, anchor_ns)
    ]
