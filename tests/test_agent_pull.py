"""`opsbot model pull` against a file served over loopback HTTP: progress, sha256, failures."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from rich.console import Console

from agent.model_pull import pull_command
from bot.settings import load_settings

PAYLOAD = b"GGUF" + bytes(range(256)) * 9000  # ~2.3 MB: several chunks


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "hub"
    root.mkdir()
    (root / "model.gguf").write_bytes(PAYLOAD)
    (root / "model.gguf.sha256").write_text(hashlib.sha256(PAYLOAD).hexdigest() + "  model.gguf")
    (root / "bad.gguf").write_bytes(PAYLOAD)
    (root / "bad.gguf.sha256").write_text("0" * 64)
    (root / "nosum.gguf").write_bytes(PAYLOAD)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()


def consoles() -> tuple[Console, Console, io.StringIO, io.StringIO]:
    o, e = io.StringIO(), io.StringIO()
    return Console(file=o, width=200), Console(file=e, width=200), o, e


def test_pull_verifies_and_places_the_file(served: tuple[str, Path]) -> None:
    url, tmp = served
    out, err, o, e = consoles()
    dest = tmp / "models" / "opsbot.gguf"
    code = pull_command(settings=load_settings(), url=f"{url}/model.gguf", dest=dest, out=out,
                        err=err)
    assert code == 0 and dest.read_bytes() == PAYLOAD
    assert f"OPSBOT_MODEL_PATH={dest}" in o.getvalue()
    assert "(100%)" in e.getvalue()
    assert not dest.with_name("opsbot.gguf.part").exists()


def test_checksum_mismatch_deletes_the_download(served: tuple[str, Path]) -> None:
    url, tmp = served
    out, err, _, e = consoles()
    dest = tmp / "bad.gguf"
    assert pull_command(settings=load_settings(), url=f"{url}/bad.gguf", dest=dest, out=out,
                        err=err) == 2
    assert "sha256 mismatch" in e.getvalue() and not dest.exists()
    assert not dest.with_name("bad.gguf.part").exists()


def test_no_checksum_refuses_to_install(served: tuple[str, Path]) -> None:
    url, tmp = served
    out, err, _, e = consoles()
    assert pull_command(settings=load_settings(), url=f"{url}/nosum.gguf", dest=tmp / "n.gguf",
                        out=out, err=err) == 2
    assert "OPSBOT_MODEL_SHA256" in e.getvalue() and not (tmp / "n.gguf").exists()


def test_offline_explains_placing_the_file_by_hand(tmp_path: Path) -> None:
    out, err, _, e = consoles()
    dest = tmp_path / "m.gguf"
    code = pull_command(settings=load_settings(), url="http://127.0.0.1:9/model.gguf", dest=dest,
                        out=out, err=err)
    assert code == 2
    text = e.getvalue()
    assert "cannot reach" in text and f"OPSBOT_MODEL_PATH={dest}" in text


def test_no_url_explains_what_to_do(tmp_path: Path) -> None:
    out, err, _, e = consoles()
    assert pull_command(settings=load_settings(), url=None, dest=tmp_path / "m.gguf", out=out,
                        err=err) == 2
    assert "--url" in e.getvalue() and "by hand" in e.getvalue()
