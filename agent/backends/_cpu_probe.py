"""Whether llama.cpp's extra CPU buffer types (AMX, repacked weights) can run on this machine.

A llama.cpp built with GGML_NATIVE on a CPU that advertises AMX uses AMX tiles for
quantised matmuls; some VMs and sandboxes advertise AMX (and even grant it through
arch_prctl) yet fault on the first tile instruction, killing the process with SIGILL.
We probe once per machine and llama.cpp build in a child process and cache the verdict.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["extra_buffers_usable"]

_CACHE = Path.home() / ".cache" / "opsbot" / "llamacpp-cpu-probe.json"
_PROBE = (
    "import sys\nfrom llama_cpp import Llama\n"
    "llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)\n"
    "llm.create_completion('Hello', max_tokens=2, temperature=0)\n"
)


def _machine_key() -> str:
    import llama_cpp

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{llama_cpp.__version__}|{model}"


def extra_buffers_usable(model_path: Path) -> bool:
    """True unless a child process running one generation dies of SIGILL."""
    key = _machine_key()
    try:
        cached = json.loads(_CACHE.read_text())
        if key in cached:
            return bool(cached[key])
    except (OSError, ValueError):
        cached = {}
    try:
        rc = subprocess.run([sys.executable, "-c", _PROBE, str(model_path)], timeout=300,
                            capture_output=True, check=False).returncode
    except subprocess.TimeoutExpired:
        return True  # slow, not broken: keep the fast path
    usable = rc != -signal.SIGILL
    _CACHE.parent.mkdir(parents=True, exist_ok=True)
    _CACHE.write_text(json.dumps({**cached, key: usable}))
    return usable
