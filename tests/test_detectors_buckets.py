"""Bucket ids against the calendar, and the window of partials a baseline reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from detectors.buckets import (
    DAY_NS,
    HOUR_NS,
    BucketType,
    bucket_id,
    bucket_id_of_partial,
    day_index,
    hour_of_day,
    hour_of_week,
    in_window,
    select_window,
)


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000


def test_hour_of_week_matches_the_calendar() -> None:
    monday = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
    assert hour_of_week(ns(monday)) == 0
    assert hour_of_week(ns(monday + timedelta(days=6, hours=23, minutes=59))) == 167
    assert hour_of_week(ns(monday + timedelta(days=7))) == 0
    rng = np.random.default_rng(0)
    for s in rng.integers(0, 2_000_000_000, 500):
        dt = datetime.fromtimestamp(int(s), UTC)
        t = int(s) * 1_000_000_000
        assert hour_of_week(t) == dt.weekday() * 24 + dt.hour
        assert hour_of_day(t) == dt.hour
        assert day_index(t) == (dt.date() - datetime(1970, 1, 1).date()).days


def test_bucket_of_partial_agrees_with_bucket_of_time() -> None:
    rng = np.random.default_rng(1)
    for t in rng.integers(0, 2_000_000_000, 200) * 1_000_000_000:
        day, hour = int(t) // DAY_NS, (int(t) // HOUR_NS) % 24
        for bt in BucketType:
            assert bucket_id_of_partial(bt, day, hour) == bucket_id(bt, int(t))
    assert bucket_id(BucketType.GLOBAL, 123) == 0


def test_window_is_the_whole_hours_before_the_current_one() -> None:
    t = 20_000 * DAY_NS + 10 * HOUR_NS + 30 * 60 * 1_000_000_000  # 10:30
    rows = [(d, h, (d, h)) for d in range(19_990, 20_001) for h in range(24)]
    chosen = select_window(rows, BucketType.GLOBAL, t, window_days=2)
    assert len(chosen) == 48
    assert max(chosen) == (20_000, 9)  # the current hour (10) never scores itself
    assert min(chosen) == (19_998, 10)
    assert not in_window(20_000, 10, BucketType.GLOBAL, t, 2)


def test_window_by_bucket_type() -> None:
    t = 20_000 * DAY_NS + 10 * HOUR_NS
    rows = [(d, h, (d, h)) for d in range(19_960, 20_001) for h in range(24)]
    how = select_window(rows, BucketType.HOUR_OF_WEEK, t, window_days=30)
    assert {bucket_id_of_partial(BucketType.HOUR_OF_WEEK, d, h) for d, h in how} == {
        bucket_id(BucketType.HOUR_OF_WEEK, t)
    }
    assert len(how) == 4  # days 19_972 .. 19_993 of the same weekday (20_000 is the current hour)
    hod = select_window(rows, BucketType.HOUR_OF_DAY, t, window_days=30)
    assert len(hod) == 30 and all(h == 10 for _, h in hod)


def test_anchor_drops_partials_that_start_before_it() -> None:
    t = 20_000 * DAY_NS + 10 * HOUR_NS
    anchor = 20_000 * DAY_NS + 4 * HOUR_NS + 1  # inside hour 4: hour 4 is mixed, so dropped
    rows = [(20_000, h, h) for h in range(24)]
    assert select_window(rows, BucketType.GLOBAL, t, 30, anchor) == [5, 6, 7, 8, 9]
    assert select_window(rows, BucketType.GLOBAL, t, 30, anchor - 1) == [4, 5, 6, 7, 8, 9]
