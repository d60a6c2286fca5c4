"""The novelty signal of metric series: a value beyond its history's range opens at once.

Pure `MetricSeriesDetection` for the rule, then the real engine over SQLite for the
novelty state: saved with the series, restored on restart, kept when a save has none.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.detection.metric_series import MetricPoint, MetricSeriesDetection, series_name
from bot.store import SqliteStore
from bot.store.metric_records import MetricSeriesSeen, MetricStateRow
from detectors.config import DetectorConfig, NoveltyGateConfig
from detectors.novelty_stream import NoveltyStream
from detectors.transforms import Transform
from tests.test_metrics_persist import _chunks, _run

MIN_NS = 60 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC
LABELS = {"service": "api"}
KEY = series_name("queue_depth", LABELS)
ON = replace(DetectorConfig(), novelty=NoveltyGateConfig(enabled=True))  # off by default


def _series(days: int, spikes: dict[int, float], seed: int = 3) -> list[MetricPoint]:
    """A daily-cycling gauge a minute apart; `spikes` adds a value at given minutes."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    v = 100 + 20 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 3, n)
    for minute, add in spikes.items():
        v[minute] += add
    return [MetricPoint("queue_depth", LABELS, T0 + i * MIN_NS, float(v[i])) for i in range(n)]


def _opened(points: list[MetricPoint], config: DetectorConfig) -> list[tuple[int, str]]:
    det = MetricSeriesDetection(config)
    events = det.observe(points)
    return [((ev.t_ns - T0) // MIN_NS, ev.anomaly.trigger.set_by)
            for ev, _ in events if ev.kind == "opened"]


def test_one_value_beyond_the_history_opens_at_once_and_only_with_the_signal_on() -> None:
    spike = 4 * 1440 + 600  # day 5, 10:00: baselines warm, history four days long
    points = _series(5, {spike: 120.0})
    det = MetricSeriesDetection(ON)
    events = det.observe(points)
    opened = [(e, d) for e, d in events if e.kind == "opened"]
    assert [(e.t_ns - T0) // MIN_NS for e, _ in opened] == [spike]  # one sample opens it
    ((ev, detail),) = opened
    assert detail["novelty"] >= NoveltyGateConfig().threshold
    # the z path's own decision is stronger here (SEV1 by its floor), so it sets the severity
    assert ev.anomaly.trigger.score >= NoveltyGateConfig().min_z
    mild = _series(5, {spike: 55.0})  # beyond the range, with a z of about 4.5 (SEV4)
    assert _opened(mild, ON) == [(spike, "novelty")]
    off = DetectorConfig()  # the default: the gate is off
    assert not off.novelty.enabled
    assert _opened(points, off) == [] and _opened(mild, off) == []  # the z path needs 3 of 5
    assert KEY in det.novelty


def test_a_young_series_stays_quiet_however_new_its_values() -> None:
    # on day 1 every value is new to the series, but its z baseline is still cold
    points = _series(1, {300: 200.0, 900: -90.0})
    assert _opened(points, ON) == []


def test_the_gate_needs_the_hour_of_week_z_too() -> None:
    spike = 4 * 1440 + 600
    points = _series(5, {spike: 120.0})
    strict = replace(DetectorConfig(), novelty=NoveltyGateConfig(enabled=True, min_z=1e6))
    assert (spike, "novelty") not in _opened(points, strict)


@pytest.fixture
def novelty_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float, float]]:
    calls: list[tuple[int, float, float]] = []
    original = NoveltyStream.update

    def update(self: NoveltyStream, t_ns: int, value: float) -> float:
        score = original(self, t_ns, value)
        calls.append((t_ns, value, score))
        return score

    monkeypatch.setattr(NoveltyStream, "update", update)
    return calls


async def test_the_novelty_state_survives_a_restart(
    tmp_path: Path, novelty_calls: list[tuple[int, float, float]]
) -> None:
    points = _series(3, {2 * 1440 + 700: 150.0})
    chunks = list(_chunks(points, 720))
    await _run(tmp_path / "straight.db", chunks, None, ON)
    straight = list(novelty_calls)
    novelty_calls.clear()
    await _run(tmp_path / "restart.db", chunks, 3, ON)  # restarts at day 2, 00:00
    assert novelty_calls == straight  # every score equal, the restored stream's included
    after = points[4 * 720].ts_ns
    assert max(s for t, _, s in straight if t >= after) > 0  # the spike, after the restart
    async with SqliteStore(tmp_path / "restart.db") as store:
        (state,) = await store.load_metric_states()
    assert state.novelty is not None
    fresh = NoveltyStream(MetricSeriesDetection(ON).novelty_config)
    for t, v, _ in straight:
        fresh.update(t, v)
    assert state.novelty == fresh.to_bytes()


async def test_a_save_without_novelty_keeps_the_stored_state(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "k.db") as store:
        ids = await store.touch_metric_series({KEY: MetricSeriesSeen("api", "queue_depth", 1, 2)})
        row = MetricStateRow(ids[KEY], Transform.IDENTITY, 1, None, 2, None, [], None, None,
                             b"state-1")
        await store.save_metric_step([], [row], now_ns=3)
        await store.save_metric_step([], [replace(row, last_sample_ns=4, novelty=None)], 5)
        (got,) = await store.load_metric_states()
        assert (got.last_sample_ns, got.novelty) == (4, b"state-1")
        await store.save_metric_step([], [replace(row, novelty=b"state-2")], 6)
        (got,) = await store.load_metric_states()
        assert got.novelty == b"state-2"
