"""The whole service: demo traffic over real HTTP into the receiver and store.

Also health and metrics.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from rich.console import Console

from bot.demo import run_demo
from bot.server import Service, serve
from bot.settings import load_settings


async def test_demo_streams_simulated_otlp_into_the_store(tmp_path: Path) -> None:
    settings = load_settings(db_path=tmp_path / "o.db", http_port=0, simulator_history_days=0)
    with open(tmp_path / "log", "w") as log:
        summary = await run_demo(settings, Console(file=log), duration_s=1.5,
                                 seconds_per_minute=0.2)
    assert summary["spans"] > 100
    assert 10 <= summary["keys"] <= 30
    assert summary["exemplar_traces"] > 0


async def test_healthz_and_metrics(tmp_path: Path) -> None:
    settings = load_settings(db_path=tmp_path / "o.db", http_port=0)
    async with Service.running(settings) as service:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(service, ready))
        await asyncio.wait_for(ready.wait(), 10)
        base = f"http://127.0.0.1:{service.port}"
        async with httpx.AsyncClient() as client:
            bad = await client.post(f"{base}/v1/traces", content=b"\x00garbage",
                                    headers={"Content-Type": "application/x-protobuf"})
            health = (await client.get(f"{base}/healthz")).json()
            metrics = (await client.get(f"{base}/metrics")).text
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert bad.status_code == 400
    assert health["status"] == "ok"
    assert "opsbot_span_keys" in metrics


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        settings = load_settings(db_path=tmp_path / "o.db", http_port=port)
        async with Service.running(settings) as service:
            try:
                await asyncio.wait_for(serve(service), 10)
            except OSError as exc:
                assert "OPSBOT_HTTP_PORT" in str(exc)
            else:
                raise AssertionError("serve() should fail on a busy port")
