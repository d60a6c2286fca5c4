"""Metric series baselines in the store: a restart resumes with the same scores and anomalies."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.detection.engine import DetectionEngine
from bot.detection.metric_series import MetricDetector, MetricPoint, series_name
from bot.store import SqliteStore
from detectors.baseline import build_baseline
from detectors.buckets import HOUR_NS
from detectors.config import BaselineConfig, DetectorConfig
from detectors.metric_aggregate import MetricAggregate

MIN_NS = 60 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC
DAYS = 3
INCIDENT = (T0 + 2 * 86400 * 10**9 + 14 * HOUR_NS + 7 * MIN_NS, 40)  # start, minutes


def _stream() -> list[MetricPoint]:
    """Three series a minute apart for three days; one CPU series jumps for 40 minutes."""
    rng = np.random.default_rng(7)
    minutes = DAYS * 1440
    t = T0 + np.arange(minutes, dtype=np.int64) * MIN_NS
    day = np.sin(2 * np.pi * np.arange(minutes) / 1440)
    cpu_a = 40 + 8 * day + rng.normal(0, 1.5, minutes)
    start, length = INCIDENT
    hit = (t >= start) & (t < start + length * MIN_NS)
    cpu_a[hit] += 35
    cpu_b = 25 + 5 * day + rng.normal(0, 1.0, minutes)
    mem_a = 512 + rng.normal(0, 4, minutes)
    out = []
    for i in range(minutes):
        out += [MetricPoint("cpu_percent", {"service": "api", "pod": "api-1"}, int(t[i]),
                            float(cpu_a[i])),
                MetricPoint("cpu_percent", {"service": "db"}, int(t[i]) + 5 * 10**9,
                            float(cpu_b[i])),
                MetricPoint("memory_bytes", {"service": "api"}, int(t[i]) + 9 * 10**9,
                            float(mem_a[i]) * 2**20)]
    return out


def _chunks(points: list[MetricPoint], size: int = 600) -> Iterator[list[MetricPoint]]:
    for i in range(0, len(points), size):
        yield points[i : i + size]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float, float]]:
    """Every (t, value, z) a metric detector scores, in call order."""
    calls: list[tuple[int, float, float]] = []
    original = MetricDetector.score_one

    def score_one(self: MetricDetector, t_ns: int, value: float) -> float:
        z = original(self, t_ns, value)
        calls.append((t_ns, value, z))
        return z

    monkeypatch.setattr(MetricDetector, "score_one", score_one)
    return calls


async def _run(db: Path, chunks: list[list[MetricPoint]], restart_after: int | None,
               config: DetectorConfig | None = None) -> None:
    assert restart_after is None or restart_after < len(chunks) - 1
    store = SqliteStore(db)
    await store.open()
    engine = DetectionEngine(store, config)
    await engine.start()
    for i, chunk in enumerate(chunks):
        engine.feed_metrics(chunk)
        await engine.advance()
        if restart_after is not None and i == restart_after:
            await engine.close()
            await store.close()
            store = SqliteStore(db)
            await store.open()
            engine = DetectionEngine(store, config)
            await engine.start()
    await engine.advance(chunks[-1][-1].ts_ns + 4 * HOUR_NS)  # past the nightly step (03:00)
    await engine.close()
    await store.close()


async def _anomalies(db: Path) -> list[tuple[Any, ...]]:
    async with SqliteStore(db) as store:
        return [(a.uid, a.key, a.service, a.operation, a.started_ns, a.ended_ns, a.peak_score,
                 a.peak_severity) for a in await store.list_anomalies()]


def _same(a: list[tuple[int, float, float]], b: list[tuple[int, float, float]]) -> bool:
    return len(a) == len(b) and all(
        x[:2] == y[:2] and (x[2] == y[2] or (math.isnan(x[2]) and math.isnan(y[2])))
        for x, y in zip(a, b, strict=True))


async def test_restart_gives_the_scores_of_an_uninterrupted_run(
    tmp_path: Path, recorded: list[tuple[int, float, float]]
) -> None:
    chunks = list(_chunks(_stream()))
    await _run(tmp_path / "straight.db", chunks, None)
    straight = list(recorded)
    recorded.clear()
    # chunk 9 ends 20 minutes into hour 33: folded hours, the hour's unfolded values and a
    # warm global baseline all have to survive the restart
    assert (chunks[9][-1].ts_ns - T0) // MIN_NS == 33 * 60 + 19
    await _run(tmp_path / "restart.db", chunks, restart_after=9)
    once = list(recorded)
    assert len(straight) == 3 * DAYS * 1440
    scored = [z for _, _, z in straight if not math.isnan(z)]
    assert len(scored) > 3 * 1440  # day 2 on is scored: the restart resumed warm
    assert _same(straight, once)
    a, b = await _anomalies(tmp_path / "straight.db"), await _anomalies(tmp_path / "restart.db")
    assert a == b
    api = series_name("cpu_percent", {"service": "api", "pod": "api-1"})
    hits = [x for x in a if x[1] == api]
    assert hits and hits[0][2:4] == ("api", "cpu_percent")
    assert INCIDENT[0] <= hits[0][4] <= INCIDENT[0] + 5 * MIN_NS


async def test_restart_inside_an_open_anomaly_does_not_duplicate_it(
    tmp_path: Path, recorded: list[tuple[int, float, float]]
) -> None:
    chunks = list(_chunks(_stream(), 60))  # one simulated hour of 3 series per ~20 minutes
    start = INCIDENT[0]
    inside = next(i for i, c in enumerate(chunks) if c[-1].ts_ns > start + 10 * MIN_NS)
    await _run(tmp_path / "straight.db", chunks, None)
    recorded.clear()
    await _run(tmp_path / "restart.db", chunks, restart_after=inside)
    a, b = await _anomalies(tmp_path / "straight.db"), await _anomalies(tmp_path / "restart.db")
    assert a == b
    assert any(x[4] <= start + 10 * MIN_NS <= (x[5] or 0) for x in a)


async def test_store_rows_are_the_detector_partials(tmp_path: Path) -> None:
    points = _stream()[: 3 * 1440 + 3 * 200]  # a day and 200 minutes
    async with SqliteStore(tmp_path / "s.db") as store:
        engine = DetectionEngine(store)
        await engine.start()
        for chunk in _chunks(points):
            engine.feed_metrics(chunk)
            await engine.advance()
        await engine.close()
        series = {s.name: s for s in await store.list_series("metric")}
        key = series_name("memory_bytes", {"service": "api"})
        assert set(series) == {series_name("cpu_percent", {"service": "api", "pod": "api-1"}),
                               series_name("cpu_percent", {"service": "db"}), key}
        info = series[key]
        assert (info.kind, info.service, info.operation) == ("metric", "api", "memory_bytes")
        rows = await store.load_metric_aggregates(0, 10**6, [info.id])
        det = engine.metrics.detectors[key]
        mem = det.folded(0)
        assert [(r.day * 24 + r.hour) for r in rows] == [h for h, _ in mem]
        for r, (_, agg) in zip(rows, mem, strict=True):
            assert (r.agg.transform, r.agg.count, r.agg.mean, r.agg.m2, r.agg.min,
                    r.agg.max) == (agg.transform, agg.count, agg.mean, agg.m2, agg.min, agg.max)
            assert np.array_equal(r.agg.hist, agg.hist)
        # the detector's baseline is build_baseline over the stored rows (the span keys' path)
        now = points[-1].ts_ns
        partials = [(r.day, r.hour, r.agg) for r in rows]
        empty = MetricAggregate(det.transform)
        want = build_baseline(partials, empty, now, det.first_seen_ns, engine.config.baseline)
        got = det.baseline(now)
        assert got.warm and want.warm and got.bucket_type == want.bucket_type
        assert got.count == want.count == (24 + 3) * 60  # folded hours; the 4th is pending
        assert got.center == pytest.approx(want.center, rel=1e-12)
        assert got.scale == pytest.approx(want.scale, rel=1e-9)
        assert got.p99 == pytest.approx(want.p99, rel=1e-12)
        # one row per series and hour, not per sample
        (n,) = await store._one("SELECT count(*) FROM metric_aggregates")
        assert n == 3 * (24 + 3)


async def test_source_cursor_is_saved_with_the_baselines(tmp_path: Path) -> None:
    points = _stream()[:300]
    async with SqliteStore(tmp_path / "c.db") as store:
        engine = DetectionEngine(store)
        await engine.start()
        engine.feed_metrics(points[:150])
        engine.metrics.cursors["prometheus"] = points[149].ts_ns
        # nothing saved yet: a crash here would re-feed from the old cursor, consistently
        assert await store.get_meta("metrics_cursor:prometheus") is None
        await engine.advance(points[149].ts_ns + 2 * MIN_NS)
        assert await store.get_meta("metrics_cursor:prometheus") == str(points[149].ts_ns)
    async with SqliteStore(tmp_path / "c.db") as store:
        engine = DetectionEngine(store)
        await engine.start()
        assert engine.metrics.cursors == {"prometheus": points[149].ts_ns}
        key = series_name("cpu_percent", {"service": "db"})
        assert engine.metrics.last_sample_ns[key] == points[148].ts_ns
        assert engine.metrics.detectors[key].pending_values() == [
            p.value for p in points[:150] if p.labels == {"service": "db"}]


def test_series_name_is_prometheus_text_form() -> None:
    assert series_name("up", {"job": "a", "instance": 'x"y'}) == 'up{instance="x\\"y",job="a"}'
    assert series_name("up", {"a": "1,b=2"}) != series_name("up", {"a": "1", "b": "2"})


async def test_window_slides_past_a_restart_and_old_partials_are_pruned(
    tmp_path: Path, recorded: list[tuple[int, float, float]]
) -> None:
    """A one-day window: the restored totals are rebuilt, not slid, so scores agree to
    rounding (merge vs subtract order), and the nightly step prunes expired rows."""
    config = replace(DetectorConfig(), baseline=replace(BaselineConfig(), window_days=1,
                                                        global_min_span_s=6 * 3600.0))
    chunks = list(_chunks(_stream()))
    await _run(tmp_path / "straight.db", chunks, None, config)
    straight = list(recorded)
    recorded.clear()
    await _run(tmp_path / "restart.db", chunks, 12, config)  # hour 43: the window has slid
    once = list(recorded)
    assert [x[:2] for x in straight] == [x[:2] for x in once]
    a = np.array([z for *_, z in straight])
    b = np.array([z for *_, z in once])
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-9, atol=1e-9)
    x, y = await _anomalies(tmp_path / "straight.db"), await _anomalies(tmp_path / "restart.db")
    assert x and [r[:6] + r[7:] for r in x] == [r[:6] + r[7:] for r in y]
    assert [r[6] for r in x] == pytest.approx([r[6] for r in y], rel=1e-9)
    async with SqliteStore(tmp_path / "restart.db") as store:
        (low, high) = await store._one("SELECT min(day), max(day) FROM metric_aggregates")
    last_day = (T0 // HOUR_NS + DAYS * 24) // 24  # the data ends just before this day
    # the 03:00 step of last_day kept day - window (1) - 1 on; the data began a day earlier
    first_day = T0 // HOUR_NS // 24
    assert first_day == last_day - 3
    assert (low, high) == (last_day - 2, last_day - 1)
