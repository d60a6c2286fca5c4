"""`opsbot ingest FILE` then `opsbot anomalies` and `opsbot recalc` through typer's CliRunner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.detection.commands import parse_since
from bot.detection.score_hist import score_histogram
from bot.simulator import HOUR_NS, Simulator, TrafficModel, make_incident
from bot.simulator.files import write_otlp_json
from bot.store import SqliteStore
from bot.store.detection_state import ScoreHistRow
from detectors.config import DetectorConfig
from detectors.severity import compute_thresholds
from tests.detection_support import FAST, T0

runner = CliRunner()
CONTRACT = {"id", "uid", "key", "service", "operation", "start", "end", "state", "peak_severity",
            "peak_score", "percentile", "incident_id", "origin_service", "feedback"}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPSBOT_DB_PATH", "OPSBOT_SHARED_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPSBOT_DB_PATH", str(tmp_path / "store.db"))
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps tables and messages to the terminal


def _json(text: str) -> object:
    return json.loads(text)


def test_ingested_files_are_replayed_on_their_own_clock_and_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file holds 6 hours, so the test uses the 4-hour global warm-up (FAST).
    monkeypatch.setattr("bot.detection.tap.config_from_settings", lambda s: FAST)
    slow = make_incident("slow_downstream_dependency", T0 + 5 * HOUR_NS)
    sim = Simulator(7, traffic=TrafficModel(sampled_per_minute=30), incidents=[slow])
    files = []
    for part in range(2):  # two files: the second continues the first's clock
        path = tmp_path / f"spans{part}.json"
        write_otlp_json(path, sim.generate(T0 + part * 3 * HOUR_NS, 3 * HOUR_NS))
        files.append(str(path))
    res = runner.invoke(app, ["ingest", *files, "--json"])
    assert res.exit_code == 0, res.output
    assert _json(res.stdout)["anomalies_opened"] >= 1, res.stdout  # type: ignore[index]

    res = runner.invoke(app, ["anomalies", "--json"])
    assert res.exit_code == 0, res.output
    rows = _json(res.stdout)
    assert isinstance(rows, list) and rows
    assert all(set(r) >= CONTRACT for r in rows)
    root = [r for r in rows if r["key"] == "kx-wallet:POST /reserve"]
    assert root and root[0]["origin_service"] == "kx-wallet"
    assert root[0]["peak_severity"] in {"SEV1", "SEV2", "SEV3"}
    assert root[0]["start"].startswith("2024-01-01T11:0")  # the spans' time, not today's

    # "now" is the newest span time: 10m back from 12:00 excludes the ones resolved ~11:30
    recent = _json(runner.invoke(app, ["anomalies", "--json", "--since", "10m"]).stdout)
    assert isinstance(recent, list) and len(recent) < len(rows)
    table = runner.invoke(app, ["anomalies"])
    assert table.exit_code == 0 and "kx-wallet:POST /reserve" in table.stdout


def test_anomalies_bad_input_says_what_to_do(tmp_path: Path) -> None:
    res = runner.invoke(app, ["anomalies"])
    assert res.exit_code == 2 and "ingest spans first" in res.output
    asyncio.run(_open(tmp_path / "store.db"))
    res = runner.invoke(app, ["anomalies", "--since", "yesterday-ish"])
    assert res.exit_code == 2 and "duration (30m, 2h, 7d)" in res.output
    res = runner.invoke(app, ["anomalies", "--state", "closed"])
    assert res.exit_code == 2 and "open or resolved" in res.output


def test_parse_since() -> None:
    now = 10**18
    assert parse_since("2h", now) == now - 7200 * 10**9
    assert parse_since("7d", now) == now - 7 * 86400 * 10**9
    assert parse_since("2024-01-01T00:00:00", now) == 19_723 * 86400 * 10**9
    assert parse_since("2024-01-01T01:00:00+01:00", now) == 19_723 * 86400 * 10**9


async def _open(db: Path) -> None:
    async with SqliteStore(db):
        pass


async def _history(db: Path, scores: np.ndarray, recent_hour_ns: int) -> None:
    """Two span keys; 'a' gets a heavy-tailed score history ending in `recent_hour_ns`."""
    async with SqliteStore(db) as store:
        ids = await store.touch_series({"svc:a": (T0, recent_hour_ns),
                                        "svc:b": (T0, recent_hour_ns)}, "span")
        hour = recent_hour_ns // HOUR_NS
        hist = score_histogram(scores)
        row = ScoreHistRow(ids["svc:a"], hour // 24, hour % 24, scores.size, hist, hist)
        await store.save_detection_step([row], "engine", {}, None, 0)


def test_recalc_dry_run_shows_the_alert_diff_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 3000), rng.uniform(5.5, 7.5, 60)])
    now_hour = T0 + 5 * HOUR_NS
    asyncio.run(_history(db, scores, now_hour))

    res = runner.invoke(app, ["recalc", "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    out = _json(res.stdout)
    assert isinstance(out, dict) and out["keys"] == 2 and out["dry_run"] is True
    # Expected: replay the same (binned) history through floors vs the new thresholds.
    cfg = DetectorConfig()
    from bot.detection.score_hist import scores_from_hist

    values = scores_from_hist(score_histogram(scores))
    new = compute_thresholds(values, cfg.severity, "up", cfg.scoring.max_z)
    old = compute_thresholds([], cfg.severity, "up", cfg.scoring.max_z)

    def sev(th: object, v: float) -> int | None:
        d = th.classify(v)  # type: ignore[attr-defined]
        return None if d is None else int(d.severity)

    expect = {f"SEV{s}": {"no_longer": 0, "newly": 0} for s in range(1, 6)}
    for v in values.tolist():
        a, b = sev(old, v), sev(new, v)
        if a != b:
            if a is not None:
                expect[f"SEV{a}"]["no_longer"] += 1
            if b is not None:
                expect[f"SEV{b}"]["newly"] += 1
    assert out["changes"] == expect
    assert sum(c["no_longer"] for c in expect.values()) > 0  # the history moved thresholds up

    table = runner.invoke(app, ["recalc", "svc", "--dry-run"])
    assert table.exit_code == 0 and "no longer fire" in table.stdout and "dry run" in table.stdout
    again = _json(runner.invoke(app, ["recalc", "--dry-run", "--json"]).stdout)
    assert again == out  # nothing was saved

    applied = runner.invoke(app, ["recalc", "svc:a", "--json"])
    assert applied.exit_code == 0
    after = _json(runner.invoke(app, ["recalc", "--dry-run", "--json"]).stdout)
    assert isinstance(after, dict)
    assert all(c == {"no_longer": 0, "newly": 0} for c in after["changes"].values())


def test_recalc_unknown_scope_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    asyncio.run(_history(tmp_path / "store.db", np.zeros(10), T0))
    res = runner.invoke(app, ["recalc", "nosuch"])
    assert res.exit_code == 2 and "Known services: svc" in res.output
