"""The terminal channel: alerts rendered like Slack's, feedback and questions typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console

from bot.store import SqliteStore
from bot.terminal import TERMINAL_HELP, TerminalChannel
from tests.slack_app_support import FakeAgent, anomaly_record


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "t.db") as opened:
        yield opened


def _console() -> Console:
    return Console(record=True, width=120, color_system=None)


async def test_alert_panel_and_typed_feedback(store: SqliteStore) -> None:
    console = _console()
    channel = TerminalChannel(console, store, trace_url_template="http://jaeger/trace/{trace_id}")
    record = await anomaly_record(store)
    await channel.on_event("opened", record)
    await channel.handle(f"fp {record.id}")
    await channel.handle("ok 999")
    await channel.handle("bogus")
    out = console.export_text()
    assert "SEV2  checkout:pg-pool.connect" in out
    assert "286.9 ms vs p50 0.4 ms / p99 3.1 ms for Tue 14:00" in out
    assert "http://jaeger/trace/4bf92f3577b34da6a3ce929d0e0e4736" in out
    assert "marked false positive by terminal" in out
    assert "no anomaly '999'" in out and TERMINAL_HELP in out
    [fb] = (await store.feedback_for([record.id]))[record.id]
    assert (fb.verdict, fb.source) == ("false_positive", "cli")


async def test_ask_with_and_without_agent(store: SqliteStore) -> None:
    record = await anomaly_record(store)
    console = _console()
    await TerminalChannel(console, store).handle("ask why?")
    agent = FakeAgent()
    await TerminalChannel(console, store, agent).handle("ask why is it slow?")
    out = console.export_text()
    assert "The agent is not available" in out
    assert "The p99 of pg-pool.connect rose after the deploy." in out
    assert agent.questions == ["why is it slow?"] and list(agent.contexts[0].anomaly_ids) == [
        record.id]


async def test_run_in_terminal_mode_prints_each_event_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """`opsbot run` without Slack: the terminal channel prints the event; no log line too."""
    import bot.server as server
    from bot.detection.events import EngineEvent
    from bot.settings import load_settings

    subscribers: list[int] = []

    async def serve_one_event(service: server.Service, ready: object = None) -> None:
        # Stands in for uvicorn: deliver one event to whoever subscribed, then return.
        record = await anomaly_record(service.store)
        subscribers.append(len(service.engine.subscribers))
        for callback in list(service.engine.subscribers):
            await callback(EngineEvent("anomaly", "opened", record.started_ns, record))

    monkeypatch.setattr(server, "serve", serve_one_event)
    caplog.set_level("INFO", logger="bot.server")
    settings = load_settings(db_path=tmp_path / "run.db", http_host="127.0.0.1", http_port=0)
    await server.run_service(settings)
    printed = capsys.readouterr()
    assert subscribers == [1]
    assert (printed.out + printed.err).count("checkout:pg-pool.connect") == 1
    assert not [r for r in caplog.records if "checkout:pg-pool.connect" in r.getMessage()]
