"""Adaptive severity for metric series: score histograms, per-series thresholds, recalc.

Two series through the real engine and SQLite files for four days, 30 minutes per
step so the nightly recalculation runs at 03:00-03:30: `queue_depth` (worker) has
bursts twice a day, and on day 1 three taller ones, so its history makes z of 8-15
common; `cpu_percent` (db) is plain noise. The same run with `min_history` out of
reach keeps the floors and is the control.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.detection.engine import DetectionEngine
from bot.detection.metric_series import MetricDetector, MetricPoint, series_name
from bot.detection.score_hist import (
    N_SCORE_BINS,
    HourScores,
    score_bin,
    score_histogram,
    scores_from_hist,
)
from bot.slack.engine_port import engine_recalculator
from bot.store import SqliteStore
from bot.store.records import AnomalyRecord
from detectors.buckets import HOUR_NS
from detectors.config import DetectorConfig
from detectors.severity import SeverityThresholds, compute_thresholds, deviation_ok

MIN_NS = 60 * 10**9
DAY_MIN = 1440
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC
DAYS = 4
NOISY = series_name("queue_depth", {"service": "worker"})
QUIET = series_name("cpu_percent", {"service": "db"})
BURSTS = (5 * 60 + 10, 17 * 60 + 40)  # minute of the day of the twice-daily bursts
INCIDENT = 3 * DAY_MIN + 9 * 60 + 20  # minute: queue_depth +200 for 15 minutes
QUIET_INCIDENT = 3 * DAY_MIN + 14 * 60  # minute: cpu_percent +14 for 10 minutes
LEARNED_FROM = 2 * DAY_MIN + 4 * 60  # the day-2 recalculation has run by 04:00
FLOORS = DetectorConfig()
CONTROL = replace(FLOORS, severity=replace(FLOORS.severity, min_history=10**9))

runner = CliRunner()


@cache
def _stream() -> tuple[MetricPoint, ...]:
    rng = np.random.default_rng(11)
    n = DAYS * DAY_MIN
    noisy = 100 + rng.normal(0, 3, n)
    for day in range(DAYS):
        for m in BURSTS:
            noisy[day * DAY_MIN + m : day * DAY_MIN + m + 4] += 45 + 5 * rng.random(4)
    for m in (2 * 60 + 20, 9 * 60 + 50, 20 * 60 + 10):
        noisy[DAY_MIN + m : DAY_MIN + m + 3] += 70 + 5 * rng.random(3)
    noisy[INCIDENT : INCIDENT + 15] += 200
    quiet = 40 + rng.normal(0, 1.5, n)
    quiet[QUIET_INCIDENT : QUIET_INCIDENT + 10] += 14
    out = []
    for i in range(n):
        t = T0 + i * MIN_NS
        out += [MetricPoint("queue_depth", {"service": "worker"}, t, float(noisy[i])),
                MetricPoint("cpu_percent", {"service": "db"}, t + 5 * 10**9, float(quiet[i]))]
    return tuple(out)


def _chunks(points: tuple[MetricPoint, ...], size: int = 60) -> Iterator[list[MetricPoint]]:
    for i in range(0, len(points), size):
        yield list(points[i : i + size])


@dataclass
class Run:
    thresholds: dict[str, SeverityThresholds]  # the engine's at the end
    loaded: dict[str, SeverityThresholds] | None = None  # right after the restart's start


async def _run(db: Path, config: DetectorConfig, restart_after: int | None = None,
               points: tuple[MetricPoint, ...] | None = None) -> Run:
    chunks = list(_chunks(points or _stream()))
    store = SqliteStore(db)
    await store.open()
    engine = DetectionEngine(store, config)
    await engine.start()
    run = Run({})
    for i, chunk in enumerate(chunks):
        engine.feed_metrics(chunk)
        await engine.advance()
        if i == restart_after:
            before = dict(engine.metrics.thresholds)
            await engine.close()
            await store.close()
            store = SqliteStore(db)
            await store.open()
            engine = DetectionEngine(store, config)
            await engine.start()
            run.loaded = dict(engine.metrics.thresholds)
            assert _json(run.loaded) == _json(before)
    await engine.advance(chunks[-1][-1].ts_ns + 4 * HOUR_NS)  # past the last 03:00
    run.thresholds = dict(engine.metrics.thresholds)
    await engine.close()
    await store.close()
    return run


async def _anomalies(db: Path) -> list[AnomalyRecord]:
    async with SqliteStore(db) as store:
        return sorted(await store.list_anomalies(), key=lambda a: (a.started_ns, a.key))


def _json(thresholds: dict[str, SeverityThresholds]) -> dict[str, str]:
    """Comparable form (a level without history holds NaN, which is unequal to itself)."""
    return {k: json.dumps(th.to_dict()) for k, th in thresholds.items()}


def _minute(a: AnomalyRecord) -> int:
    return (a.started_ns - T0) // MIN_NS


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The learned run and the control, once for the module (tests copy before writing)."""
    root = tmp_path_factory.mktemp("metric_severity")
    learned = asyncio.run(_run(root / "learned.db", FLOORS))
    control = asyncio.run(_run(root / "control.db", CONTROL))
    return {"learned": root / "learned.db", "control": root / "control.db",
            "learned_run": learned, "control_run": control}


@dataclass
class History:
    values: np.ndarray  # every scored sample's badness, as the store's bins give it back
    eligible: np.ndarray  # ... of those that passed the minimum deviation
    stored: list[SeverityThresholds]  # the series' stored thresholds (none or one)


async def _stored_history(db: Path, name: str) -> History:
    async with SqliteStore(db) as store:
        sid = {s.name: s.id for s in await store.list_series("metric")}[name]
        rows = await store.load_score_hist(0, 10**6, [sid])
        stored = await store.load_thresholds()
    zero = np.zeros(N_SCORE_BINS, np.int64)
    return History(scores_from_hist(sum((r.hist for r in rows), zero)),
                   scores_from_hist(sum((r.eligible for r in rows), zero)),
                   [SeverityThresholds.from_dict(d) for k, (d, _) in stored.items() if k == sid])


async def test_noisy_series_learns_thresholds_above_the_floors_quiet_one_keeps_them(
    stores: dict[str, Any],
) -> None:
    run: Run = stores["learned_run"]
    cfg = FLOORS
    floors = compute_thresholds([], cfg.severity, "both", cfg.scoring.max_z)
    noisy, quiet = run.thresholds[NOISY], run.thresholds[QUIET]
    # the history is the store's: the last nightly recalculation saw all of it
    history = await _stored_history(stores["learned"], NOISY)
    want = compute_thresholds(history.values, cfg.severity, "up", cfg.scoring.max_z)
    assert _json({NOISY: noisy}) == _json({NOISY: want}) == _json({NOISY: history.stored[0]})
    assert noisy.history_count == 3 * DAY_MIN  # days 1-3 scored, day 0 warmed the baseline
    assert noisy.levels[0].set_by == "percentile" and noisy.levels[0].threshold > 8.0
    assert noisy.levels[1].set_by == "percentile" and noisy.levels[1].threshold > 6.0
    # a quiet history: its percentiles sit below the floors, so the floors stay
    assert quiet.history_count == 3 * DAY_MIN >= cfg.severity.min_history
    assert [lv.threshold for lv in quiet.levels] == [lv.threshold for lv in floors.levels]
    assert {lv.set_by for lv in quiet.levels} == {"floor"}
    # the control never has enough history: floors for both
    control: Run = stores["control_run"]
    assert {lv.set_by for th in control.thresholds.values() for lv in th.levels} == {"floor"}


async def test_learned_thresholds_stop_sev1_for_bursts_the_history_makes_common(
    stores: dict[str, Any],
) -> None:
    learned = await _anomalies(stores["learned"])
    control = await _anomalies(stores["control"])

    def bursts(rows: list[AnomalyRecord]) -> list[tuple[int, int]]:
        return [(_minute(a), a.peak_severity) for a in rows if a.key == NOISY
                and _minute(a) >= LEARNED_FROM and abs(_minute(a) - INCIDENT) > 30]

    # on floors the bursts after the day-2 recalculation are SEV1; learned, SEV2: bursts
    # this tall are in the top 1 % of the series' history, not its top 0.1 %. (The last,
    # after the incident has widened the baseline, scores lower: SEV4 in both.)
    assert [s for _, s in bursts(control)] == [1, 1, 1, 4]
    assert [m for m, _ in bursts(learned)] == [m for m, _ in bursts(control)]
    assert [s for _, s in bursts(learned)] == [2, 2, 2, 4]
    # before the history existed, the same bursts alerted the same way in both runs
    early = [(_minute(a), a.peak_severity) for a in learned if _minute(a) < LEARNED_FROM]
    assert early == [(_minute(a), a.peak_severity) for a in control
                     if _minute(a) < LEARNED_FROM]
    # a real incident, far beyond the history, is still SEV1, and says why
    inc = next(a for a in learned if a.key == NOISY and abs(_minute(a) - INCIDENT) <= 5)
    assert inc.peak_severity == 1 and inc.percentile == 99.9
    assert inc.details["set_by"] == "percentile"
    assert 8.0 < inc.details["threshold"] <= inc.details["trigger_score"] <= inc.peak_score
    assert inc.details["signal"] == "metric" and inc.baseline["bucket"] == "global"
    floor_inc = next(a for a in control if a.key == NOISY and abs(_minute(a) - INCIDENT) <= 5)
    assert (floor_inc.percentile, floor_inc.details["set_by"]) == (99.9, "floor")
    assert floor_inc.details["threshold"] == 8.0
    # the quiet series keeps its floors: its anomalies are the control's
    def quiet(rows: list[AnomalyRecord]) -> list[tuple[Any, ...]]:
        return [(a.uid, a.started_ns, a.ended_ns, a.peak_severity, a.percentile,
                 a.details["set_by"], a.details["threshold"]) for a in rows if a.key == QUIET]

    assert quiet(learned) == quiet(control)
    assert [x[3:] for x in quiet(learned) if x[1] >= T0 + QUIET_INCIDENT * MIN_NS] == [
        (1, 99.9, "floor", 8.0)]


async def test_restart_loads_the_thresholds_and_alerts_as_without_it(
    stores: dict[str, Any], tmp_path: Path
) -> None:
    chunk = (3 * DAY_MIN + 6 * 60) // 30  # day 3 06:00: after its recalculation
    run = await _run(tmp_path / "restart.db", FLOORS, restart_after=chunk)
    assert run.loaded is not None and run.loaded[NOISY].levels[0].set_by == "percentile"
    assert _json(run.thresholds) == _json(stores["learned_run"].thresholds)

    def rows(xs: list[AnomalyRecord]) -> list[tuple[Any, ...]]:
        return [(a.uid, a.key, a.started_ns, a.ended_ns, a.peak_severity, a.percentile,
                 a.details["threshold"]) for a in xs]

    assert rows(await _anomalies(tmp_path / "restart.db")) == rows(
        await _anomalies(stores["learned"]))


async def test_score_histograms_are_the_scored_samples_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every scored sample's |z| (metric direction 'both') is in its hour's row, once, also
    when a save fails and is retried with the next step."""
    scored: list[tuple[int, float, float, float]] = []  # t, value, z, baseline p50
    original = MetricDetector.score_one

    def score_one(self: MetricDetector, t_ns: int, value: float) -> float:
        z = original(self, t_ns, value)
        scored.append((t_ns, value, z, self.baseline(t_ns).p50))  # cached: no side effect
        return z

    monkeypatch.setattr(MetricDetector, "score_one", score_one)
    points = tuple(p for p in _stream() if p.name == "queue_depth")[: 2 * DAY_MIN]
    db = tmp_path / "s.db"
    async with SqliteStore(db) as store:
        engine = DetectionEngine(store)
        await engine.start()
        real, failures = store.save_metric_step, [0]

        async def flaky(*args: Any, **kwargs: Any) -> None:
            has_scores = kwargs.get("scores") or (len(args) > 4 and args[4])
            if has_scores and failures[0] == 0:
                failures[0] += 1
                raise OSError("disk full")
            await real(*args, **kwargs)

        monkeypatch.setattr(store, "save_metric_step", flaky)
        for i, chunk in enumerate(_chunks(points, 30)):
            engine.feed_metrics(chunk)
            try:
                await engine.advance()
            except OSError:
                assert i >= DAY_MIN // 30  # the first step with scores
        await engine.close()
        assert failures == [1]
        sid = (await store.list_series("metric"))[0].id
        rows = {(r.day * 24 + r.hour): r for r in await store.load_score_hist(0, 10**6, [sid])}
    t, v, z, p50 = (np.array(col) for col in zip(*scored, strict=True))
    hours = t // HOUR_NS
    ok = np.isfinite(z)
    sev = engine.config.severity
    # eligible: |value - baseline p50| >= the absolute and the relative minimum deviation
    passed = deviation_ok(v, p50, sev.metric_min_abs_deviation, sev.metric_min_rel_deviation)
    assert ok.sum() == engine.metrics.samples_scored == DAY_MIN  # day 1: all of it
    assert sorted(rows) == sorted(set(hours[ok].tolist()))
    for h, row in rows.items():
        sel = ok & (hours == h)
        assert row.windows == sel.sum()
        np.testing.assert_array_equal(row.hist, score_histogram(np.abs(z[sel])))
        np.testing.assert_array_equal(row.eligible, score_histogram(np.abs(z[sel & passed])))
    # the bursts of day 1 (2 x 4 and 3 x 3 samples) pass; noise within 10 % of 100 does not
    assert 17 <= (ok & passed).sum() < 30


def test_score_bin_is_the_histogram_bin() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 6, 2000), rng.uniform(-30, 30, 2000),
                             np.round(rng.uniform(-25, 25, 500), 2) + 0.05])
    acc = HourScores.empty(7)
    for v in values.tolist():
        acc.add(v, v > 0)
    np.testing.assert_array_equal(acc.hist, score_histogram(values))
    np.testing.assert_array_equal(acc.eligible, score_histogram(values[values > 0]))
    assert acc.windows == values.size and score_bin(1e9) == N_SCORE_BINS - 1


@pytest.fixture
def cli_store(stores: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the control store (floors stored) as the CLI's store."""
    db = tmp_path / "store.db"
    shutil.copy(stores["control"], db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPSBOT_SHARED_DATA", raising=False)
    monkeypatch.setenv("OPSBOT_DB_PATH", str(db))
    monkeypatch.setenv("COLUMNS", "250")
    return db


def _cli(*args: str) -> Any:
    res = runner.invoke(app, ["recalc", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) if "--json" in args else res.stdout


def test_recalc_dry_run_counts_metric_alerts_and_scope_selects_series(cli_store: Path) -> None:
    out = _cli("--dry-run", "--json")
    assert (out["keys"], out["metric_series"], out["dry_run"]) == (0, 2, True)
    # expected: the noisy series' stored history replayed through floors and new thresholds
    cfg = FLOORS
    history = asyncio.run(_stored_history(cli_store, NOISY))
    new = compute_thresholds(history.values, cfg.severity, "up", cfg.scoring.max_z)
    old = compute_thresholds([], cfg.severity, "up", cfg.scoring.max_z)
    expect = {f"SEV{s}": {"no_longer": 0, "newly": 0} for s in range(1, 6)}
    for v in history.eligible.tolist():  # the whole history is within the last 7 days
        a, b = old.classify(v), new.classify(v)
        if (a and a.severity) != (b and b.severity):
            if a is not None:
                expect[a.severity.name]["no_longer"] += 1
            if b is not None:
                expect[b.severity.name]["newly"] += 1
    assert out["changes"] == out["changes_by_kind"]["metric"] == expect
    assert expect["SEV1"]["no_longer"] > 0 and expect["SEV2"]["newly"] > 0
    assert all(c == {"no_longer": 0, "newly": 0} for c in out["changes_by_kind"]["span"].values())
    assert out["thresholds"][NOISY] == [lv.threshold for lv in new.levels]
    assert out["thresholds"][QUIET] == [lv.threshold for lv in old.levels]

    # a service selects its metric series (by their `service` label); a series by its name
    by_service = _cli("worker", "--dry-run", "--json")
    assert (by_service["metric_series"], list(by_service["thresholds"])) == (1, [NOISY])
    assert by_service["changes"] == out["changes"]  # the quiet series changes nothing
    table = " ".join(_cli("--dry-run").split())  # rich wraps the title
    assert "(0 keys, 2 metric series," in table and "of which metric series" in table

    applied = _cli(NOISY, "--json")
    assert applied["metric_series"] == 1 and applied["dry_run"] is False
    stored = asyncio.run(_stored_history(cli_store, NOISY)).stored
    assert _json({NOISY: stored[0]}) == _json({NOISY: new}) and len(stored) == 1
    after = _cli("--dry-run", "--json")
    assert all(c == {"no_longer": 0, "newly": 0} for c in after["changes"].values())

    res = runner.invoke(app, ["recalc", "nosuch"])
    assert res.exit_code == 2 and "Known services: db, worker" in res.output


async def test_slack_recalc_installs_metric_thresholds_in_the_live_engine(
    stores: dict[str, Any], tmp_path: Path
) -> None:
    db = tmp_path / "live.db"
    shutil.copy(stores["control"], db)
    async with SqliteStore(db) as store:
        engine = DetectionEngine(store)
        await engine.start()
        # the store holds floors for both series; they are what the engine loads
        assert engine.metrics.thresholds[NOISY].levels[0].set_by == "floor"
        notes: list[str] = []

        async def progress(text: str) -> None:
            notes.append(text)

        recalc = engine_recalculator(engine)
        dry = await recalc("worker", True, progress)
        assert "0 keys, 1 metric series" in dry and "(metric series:" in dry
        assert engine.metrics.thresholds[NOISY].levels[0].set_by == "floor"
        text = await recalc(None, False, progress)
        assert "0 keys, 2 metric series" in text
        assert engine.metrics.thresholds[NOISY].levels[0].set_by == "percentile"
        assert engine.metrics.thresholds[QUIET].levels[0].set_by == "floor"
        await engine.close()
    saved = (await _stored_history(db, NOISY)).stored
    assert _json({NOISY: saved[0]}) == _json({NOISY: engine.metrics.thresholds[NOISY]})
