"""The demo feeds the simulator's resource metrics through the engine's metric path."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bot.demo import DEMO_METRICS, run_demo
from bot.settings import load_settings
from bot.store import SqliteStore


async def test_demo_feeds_resource_metrics_to_the_engine(tmp_path: Path) -> None:
    settings = load_settings(db_path=tmp_path / "d.db", http_port=0, simulator_history_days=0)
    with open(tmp_path / "log", "w") as log:
        summary = await run_demo(settings, Console(file=log), duration_s=1.0,
                                 seconds_per_minute=0.2)
    async with SqliteStore(tmp_path / "d.db") as store:
        series = await store.list_series("metric")
        states = await store.load_metric_states()
    services = {s.service for s in series}
    assert summary["metric_series"] == len(series) == 2 * len(services) >= 8
    assert {s.operation for s in series} == set(DEMO_METRICS)
    assert all(s.name.startswith(f'{s.operation}{{service="{s.service}"}}') for s in series)
    # the live minutes were learnt and saved (restart resumes them)
    assert len(states) == len(series) and all(st.pending for st in states)
