"""`opsbot model pull`: download the fine-tuned GGUF, verify its sha256, say where it went.

Streams to `<dest>.part` with progress and renames only after the checksum matches,
so a broken download never looks like a model. The expected sha256 comes from the
`model_sha256` setting when present, else the hub's `X-Linked-Etag` header (Hugging
Face serves the LFS sha256 there), else a `<url>.sha256` file next to the model.
Offline, it explains how to place the file by hand.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx

from agent.backends.packaged import MODEL_DIR

__all__ = ["PullError", "download", "pull_command"]

_SHA = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class PullError(RuntimeError):
    """The download or its verification failed; the message says what to do."""


def _expected_sha(client: httpx.Client, url: str, resp: httpx.Response,
                  configured: str | None) -> str | None:
    if configured:
        return configured.lower()
    etag = (resp.headers.get("x-linked-etag") or "").strip('"').lower()
    if _SHA.fullmatch(etag):
        return etag
    side = client.get(url + ".sha256")
    if side.status_code == 200:
        m = _SHA.search(side.text.lower())
        if m:
            return m.group(0)
    return None


def download(url: str, dest: Path, sha256: str | None = None, progress: Any = None,
             timeout_s: float = 30.0) -> str:
    """Stream `url` to `dest`, verify, and return the sha256. Raises PullError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client, \
            client.stream("GET", url) as resp:
        if resp.status_code != 200:
            raise PullError(f"{url} answered {resp.status_code}; check the URL")
        expected = _expected_sha(client, url, resp, sha256)
        if expected is None:
            raise PullError(f"no sha256 for {url}: set OPSBOT_MODEL_SHA256 (the hub lists "
                            "it next to the file) so the download can be verified")
        total = int(resp.headers.get("content-length") or 0)
        done = 0
        with part.open("wb") as fh:
            for chunk in resp.iter_bytes(_CHUNK):
                fh.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    got = digest.hexdigest()
    if got != expected:
        part.unlink(missing_ok=True)
        raise PullError(f"sha256 mismatch for {url}: expected {expected}, got {got}; the file "
                        "was deleted, try again or check the URL")
    part.replace(dest)
    return got


def _manual_help(dest: Path) -> str:
    return (f"To install the model by hand: copy the fine-tuned GGUF (Llama-3.2-1B-Instruct with "
            f"the opsbot LoRA merged, or the base GGUF plus the adapter) to {dest}, check it with "
            f"`sha256sum {dest.name}`, then set OPSBOT_MODEL_PATH={dest} (and "
            "OPSBOT_MODEL_LORA_PATH for a separate adapter) in the environment or the config "
            "file.")


def pull_command(*, settings: Any, url: str | None, dest: Path | None, out: Any, err: Any
                 ) -> int:
    url = url or getattr(settings, "model_url", None)
    target = dest or settings.model_path or MODEL_DIR / "opsbot-llama-3.2-1b-q4_k_m.gguf"
    if not url:
        err.print("no model URL: pass --url (or set OPSBOT_MODEL_URL) to the GGUF on its hub.")
        err.print(_manual_help(Path(target)))
        return 2
    last = [-1]

    def progress(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else -1
        if pct != last[0] and (pct % 10 == 0 or pct < 0 and done % (64 * _CHUNK) == 0):
            last[0] = pct
            err.print(f"  {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB ({pct}%)"
                                                  if total else ""))

    try:
        sha = download(url, Path(target), getattr(settings, "model_sha256", None), progress)
    except httpx.TransportError as exc:
        err.print(f"cannot reach {url} ({type(exc).__name__}); no network here?")
        err.print(_manual_help(Path(target)))
        return 2
    except PullError as exc:
        err.print(f"download failed: {exc}")
        return 2
    out.print(f"saved {target} (sha256 {sha}); set OPSBOT_MODEL_PATH={target} to use it")
    return 0
