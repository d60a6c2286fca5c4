"""The model behind the agent: llama.cpp in-process, an OpenAI-compatible server, or none.

`auto` picks llama.cpp on OPSBOT_MODEL_PATH when set, then an OpenAI-compatible
server when OPSBOT_OPENAI_BASE_URL is set, then the packaged Gemma 3 270M test
model when its package is installed, and otherwise no model (the evidence-only analyst).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BackendChoice", "BackendError", "make_model", "resolve_backend"]

BACKENDS = ("auto", "none", "llamacpp", "openai")


class BackendError(ValueError):
    """The backend asked for cannot be used; the message says which setting to fix."""


@dataclass(frozen=True, slots=True)
class BackendChoice:
    name: str  # none | llamacpp | openai
    model_path: Path | None = None
    detail: str = ""


def resolve_backend(settings: Any, backend: str | None = None) -> BackendChoice:
    """Which backend `auto` (or an explicit name) means with these settings."""
    name = (backend or settings.model_backend or "auto").lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown model backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "none":
        return BackendChoice("none", detail="evidence-only analyst")
    if name == "openai" or (name == "auto" and settings.openai_base_url
                            and settings.model_path is None):
        if not settings.openai_base_url:
            raise BackendError("backend 'openai' needs OPSBOT_OPENAI_BASE_URL "
                               "(e.g. http://127.0.0.1:8080 for llama-server)")
        return BackendChoice("openai", detail=f"{settings.openai_base_url} "
                                              f"model={settings.openai_model}")
    path = settings.model_path
    if path is None:
        from agent.backends.packaged import packaged_model_path

        path = packaged_model_path()
        if path is None:
            if name == "llamacpp":
                raise BackendError("backend 'llamacpp' needs OPSBOT_MODEL_PATH (a GGUF file); "
                                   "`opsbot model pull` downloads the fine-tuned one")
            return BackendChoice("none", detail="no model configured: evidence-only analyst")
    return BackendChoice("llamacpp", Path(path), detail=str(path))


def make_model(settings: Any, choice: BackendChoice, max_tokens: int = 384) -> Any:
    """The chat model for `choice`, or None for the evidence-only analyst."""
    if choice.name == "none":
        return None
    if choice.name == "openai":
        from agent.backends.openai_http import OpenAICompatChatModel

        return OpenAICompatChatModel(base_url=settings.openai_base_url,
                                     model=settings.openai_model, api_key=settings.openai_api_key,
                                     timeout_s=settings.model_timeout_s, max_tokens=max_tokens)
    from agent.backends.llamacpp import LlamaCppChatModel, runner_for

    assert choice.model_path is not None
    runner = runner_for(choice.model_path, settings.model_lora_path, settings.model_ctx,
                        settings.model_threads)
    return LlamaCppChatModel(runner=runner, max_tokens=max_tokens)
