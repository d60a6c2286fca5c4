"""llama.cpp in-process behind LangChain's chat-model interface.

Loaded once per (file, adapter, context) and shared; calls go through one queue.
We pass `rope_freq_base=0` (use the GGUF's own value) and a real `n_batch`:
langchain-community's ChatLlamaCpp defaults (10000, 8) silently override the
model's rope base and slow prompt processing. The chat template comes from the
GGUF metadata; a base model without one gets a format guessed from its
architecture (gemma -> "gemma", which drops system messages: we fold them into
the user turn). llama-cpp-python reuses the KV cache for the longest common token
prefix of consecutive prompts, so prompts put their fixed rules first.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from agent.backends._cpu_probe import extra_buffers_usable
from agent.backends._messages import to_openai, usage
from agent.backends.queue import ModelQueue, OnWait

__all__ = ["LlamaCppChatModel", "LlamaRunner", "ModelLoadError", "runner_for"]

_FORMAT_BY_ARCH = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "qwen2": "chatml",
                   "llama": "llama-3", "phi3": "chatml", "mistral": "mistral-instruct"}
_RUNNERS: dict[tuple[str, str, int, int], LlamaRunner] = {}
_RUNNERS_LOCK = threading.Lock()


class ModelLoadError(RuntimeError):
    """The GGUF could not be loaded; the message says which file and what to check."""


class LlamaRunner:
    """One loaded llama.cpp model and the queue its calls go through."""

    def __init__(self, path: Path, lora_path: Path | None = None, n_ctx: int = 4096,
                 n_threads: int = 0, n_batch: int = 512) -> None:
        from llama_cpp import Llama

        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist; run `opsbot model pull` "
                                 "or set OPSBOT_MODEL_PATH to a GGUF file")
        if lora_path is not None and not lora_path.is_file():
            raise ModelLoadError(f"LoRA adapter {lora_path} does not exist; fix "
                                 "OPSBOT_MODEL_LORA_PATH or unset it")
        import os

        threads = n_threads or os.cpu_count() or 1
        self.extra_buffers = extra_buffers_usable(path)
        started = time.perf_counter()
        try:
            with _model_params(self.extra_buffers):
                self.llm = Llama(model_path=str(path),
                                 lora_path=str(lora_path) if lora_path else None,
                                 n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                 n_batch=min(n_batch, n_ctx), rope_freq_base=0.0, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {path}: {exc}") from exc
        self.load_s = time.perf_counter() - started
        self.path = path
        self.chat_format = self._chat_format()
        self.queue = ModelQueue()

    def _chat_format(self) -> str | None:
        """None: the GGUF's own template; otherwise a format named for its architecture."""
        meta = self.llm.metadata or {}
        if meta.get("tokenizer.chat_template"):
            return None
        arch = str(meta.get("general.architecture", "")).lower()
        fmt = _FORMAT_BY_ARCH.get(arch, "chatml")
        self.llm.chat_format = fmt
        self.llm.chat_handler = None
        return fmt

    def complete(self, messages: list[dict[str, str]], **params: Any) -> dict[str, Any]:
        llm: Any = self.llm  # llama_cpp's TypedDict message types: ours are plain role dicts
        return llm.create_chat_completion(messages=messages, **params)  # type: ignore[no-any-return]

    def stream(self, messages: list[dict[str, str]], **params: Any) -> Iterator[dict[str, Any]]:
        llm: Any = self.llm
        return llm.create_chat_completion(messages=messages, stream=True, **params)  # type: ignore[no-any-return]


@contextmanager
def _model_params(extra_buffers: bool) -> Iterator[None]:
    """Llama() takes no `use_extra_bufts`; set it on the default params while it loads.
    Loads happen under _RUNNERS_LOCK, so no other load sees the patched defaults."""
    import llama_cpp.llama as llama_module

    low: Any = llama_module.llama_cpp  # type: ignore[attr-defined]
    original = low.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = extra_buffers
        return p

    if not extra_buffers:
        low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = original


def _close_all() -> None:
    """Free models before interpreter shutdown tears down llama_cpp's module globals
    (otherwise Llama.__del__ raises 'NoneType is not callable' at exit)."""
    with _RUNNERS_LOCK:
        for runner in _RUNNERS.values():
            runner.llm.close()
        _RUNNERS.clear()


atexit.register(_close_all)


def runner_for(path: Path, lora_path: Path | None = None, n_ctx: int = 4096,
               n_threads: int = 0) -> LlamaRunner:
    """The process-wide runner for this model: loaded on first use, then shared."""
    key = (str(path), str(lora_path or ""), n_ctx, n_threads)
    with _RUNNERS_LOCK:
        if key not in _RUNNERS:
            _RUNNERS[key] = LlamaRunner(path, lora_path, n_ctx, n_threads)
        return _RUNNERS[key]


class LlamaCppChatModel(BaseChatModel):
    """Chat model over a shared `LlamaRunner`. Extra call kwargs: max_tokens, temperature,
    response_format ({"type": "json_object", "schema": ...} for grammar-constrained JSON),
    on_wait (told the caller's place in the queue)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    runner: Any = Field(exclude=True)
    max_tokens: int = 384
    temperature: float = 0.0
    seed: int = 7

    @property
    def _llm_type(self) -> str:
        return "opsbot-llamacpp"

    @property
    def queue(self) -> ModelQueue:
        return self.runner.queue  # type: ignore[no-any-return]

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]
                ) -> tuple[list[str] | None, dict[str, Any]]:
        params: dict[str, Any] = {
            "max_tokens": int(kwargs.get("max_tokens", self.max_tokens)),
            "temperature": float(kwargs.get("temperature", self.temperature)),
            "seed": self.seed, "stop": stop}
        if kwargs.get("response_format") is not None:
            params["response_format"] = kwargs["response_format"]
        return stop, params

    def _messages(self, messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
        return to_openai(messages, fold_system=self.runner.chat_format == "gemma")

    def _result(self, raw: dict[str, Any]) -> ChatResult:
        text = raw["choices"][0]["message"].get("content") or ""
        msg = AIMessage(content=text, usage_metadata=usage(raw.get("usage")),
                        response_metadata={"finish_reason": raw["choices"][0].get(
                            "finish_reason"), "model": str(self.runner.path.name)})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any
                  ) -> ChatResult:
        _, params = self._params(stop, kwargs)
        msgs = self._messages(messages)
        return self._result(self.queue.run_sync(lambda: self.runner.complete(msgs, **params)))

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any
                         ) -> ChatResult:
        _, params = self._params(stop, kwargs)
        msgs = self._messages(messages)
        on_wait: OnWait | None = kwargs.get("on_wait")
        raw = await self.queue.run(lambda: self.runner.complete(msgs, **params), on_wait)
        return self._result(raw)
