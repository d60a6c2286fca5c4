"""Prometheus for tests: a scripted `/api/v1/query_range` stand-in, and a real server.

`QueryRangeStandIn` answers with recorded envelopes (filtered to the asked range,
as Prometheus would) or scripted failures, over real HTTP on 127.0.0.1.
`real_prometheus` starts Debian's `prometheus` binary on loopback with a temp
config that scrapes an exposition endpoint of ours every second.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

__all__ = ["ExpositionServer", "QueryRangeStandIn", "free_port", "real_prometheus",
           "wrap_matrix"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrap_matrix(result: list[Any], status: str = "success", **extra: Any) -> dict[str, Any]:
    """A bare `data.result` list (prometheus-api-client's files) as a full API envelope."""
    return {"status": status, "data": {"resultType": "matrix", "result": result}, **extra}


class _Server:
    """A ThreadingHTTPServer on a free loopback port, in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class _Script:
    body: Any = None  # an envelope (dict) or raw text
    status: int = 200
    delay_s: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)


class _QueryHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, params: dict[str, str]) -> None:
        owner: QueryRangeStandIn = self.server.owner  # type: ignore[attr-defined]
        script = owner.script
        script.requests.append(params)
        if script.delay_s:
            time.sleep(script.delay_s)
        body = script.body
        if isinstance(body, dict):
            body = json.dumps(_in_range(body, params))
        data = str(body).encode()
        self.send_response(script.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer({k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        self._answer({k: v[0] for k, v in form.items()})


def _in_range(body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """Keep only samples inside [start, end], like Prometheus does for a range query."""
    data = body.get("data")
    if not isinstance(data, dict) or "start" not in params:
        return body
    lo, hi = float(params["start"]), float(params["end"])
    result = [{**s, "values": [v for v in s.get("values", []) if lo <= float(v[0]) <= hi]}
              for s in data.get("result", [])]
    return {**body, "data": {**data, "result": [s for s in result if s["values"]]}}


class QueryRangeStandIn(_Server):
    """Answers every query with `script.body`; records the form/query parameters."""

    def __init__(self) -> None:
        super().__init__(_QueryHandler)
        self.script = _Script()


class _ExpositionHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        owner: ExpositionServer = self.server.owner  # type: ignore[attr-defined]
        data = owner.render().encode()
        owner.scrapes += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ExpositionServer(_Server):
    """Serves `render()` (Prometheus text format) at any path, counting scrapes."""

    def __init__(self, render: Callable[[], str]) -> None:
        super().__init__(_ExpositionHandler)
        self.render = render
        self.scrapes = 0


@contextmanager
def real_prometheus(target: str, folder: Path) -> Iterator[str]:
    """A real Prometheus scraping `target` (host:port) every second; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (apt-get install -y prometheus)")
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: opsbot-sim\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['{target}']\n")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-500:] if proc.stderr else ""
            raise RuntimeError(f"prometheus exited with {proc.returncode}: {err}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("prometheus did not become ready within 20 s")
