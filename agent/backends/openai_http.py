"""An OpenAI-compatible chat server (llama-server, Ollama, vLLM) over httpx.

Timeouts on every request; retries with exponential backoff on connection errors,
timeouts, 429 and 5xx; streaming by server-sent events. Grammar-constrained JSON
is sent as `response_format: json_schema`, which llama-server and vLLM honour.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import SecretStr

from agent.backends._messages import to_openai, usage

__all__ = ["ModelServerError", "OpenAICompatChatModel"]

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class ModelServerError(RuntimeError):
    """The model server failed after retries; the message names the URL and the status."""


class OpenAICompatChatModel(BaseChatModel):
    base_url: str
    model: str = "opsbot"
    api_key: SecretStr | None = None
    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 0.5
    max_tokens: int = 384
    temperature: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "opsbot-openai-compatible"

    @property
    def _url(self) -> str:
        base = self.base_url.rstrip("/")
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def _headers(self) -> dict[str, str]:
        key = self.api_key.get_secret_value() if self.api_key else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, messages: list[BaseMessage], stop: list[str] | None, stream: bool,
              kwargs: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model, "messages": to_openai(messages), "stream": stream,
            "max_tokens": int(kwargs.get("max_tokens", self.max_tokens)),
            "temperature": float(kwargs.get("temperature", self.temperature))}
        if stop:
            body["stop"] = stop
        fmt = kwargs.get("response_format")
        if fmt and fmt.get("schema"):
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "choice", "schema": fmt["schema"], "strict": True}}
        elif fmt:
            body["response_format"] = fmt
        return body

    def _result(self, raw: dict[str, Any]) -> ChatResult:
        try:
            choice = raw["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelServerError(f"{self._url} answered without choices[0].message: "
                                   f"{str(raw)[:200]}") from exc
        msg = AIMessage(content=text, usage_metadata=usage(raw.get("usage")),
                        response_metadata={"finish_reason": choice.get("finish_reason"),
                                           "model": raw.get("model", self.model)})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _failure(self, attempt: int, exc: Exception | None, resp: httpx.Response | None) -> bool:
        """Whether to retry; raises ModelServerError when out of attempts or not retryable."""
        if resp is not None and resp.status_code not in _RETRY_STATUS:
            raise ModelServerError(f"{self._url} answered {resp.status_code}: "
                                   f"{resp.text[:200]}")
        if attempt >= self.max_retries:
            what = f"{type(exc).__name__}: {exc}" if exc else f"status {resp.status_code}"  # type: ignore[union-attr]
            raise ModelServerError(f"{self._url} failed after {attempt + 1} attempts ({what}); "
                                   "check OPSBOT_OPENAI_BASE_URL and that the server is up")
        return True

    async def _apost(self, body: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            for attempt in range(self.max_retries + 1):
                try:
                    resp = await client.post(self._url, json=body, headers=self._headers())
                except (httpx.TransportError, httpx.TimeoutException) as exc:
                    self._failure(attempt, exc, None)
                else:
                    if resp.status_code == 200:
                        return resp.json()  # type: ignore[no-any-return]
                    self._failure(attempt, None, resp)
                await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        with httpx.Client(timeout=self.timeout_s) as client:
            for attempt in range(self.max_retries + 1):
                try:
                    resp = client.post(self._url, json=body, headers=self._headers())
                except (httpx.TransportError, httpx.TimeoutException) as exc:
                    self._failure(attempt, exc, None)
                else:
                    if resp.status_code == 200:
                        return resp.json()  # type: ignore[no-any-return]
                    self._failure(attempt, None, resp)
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any
                  ) -> ChatResult:
        return self._result(self._post(self._body(messages, stop, False, kwargs)))

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any
                         ) -> ChatResult:
        return self._result(await self._apost(self._body(messages, stop, False, kwargs)))

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any
                       ) -> AsyncIterator[ChatGenerationChunk]:
        body = self._body(messages, stop, True, kwargs)
        async with httpx.AsyncClient(timeout=self.timeout_s) as client, client.stream(
                "POST", self._url, json=body, headers=self._headers()) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise ModelServerError(f"{self._url} answered {resp.status_code}: "
                                       f"{resp.text[:200]}")
            async for line in resp.aiter_lines():
                delta = _sse_delta(line)
                if delta is None:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    await run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any
                ) -> Iterator[ChatGenerationChunk]:
        body = self._body(messages, stop, True, kwargs)
        with httpx.Client(timeout=self.timeout_s) as client, client.stream(
                "POST", self._url, json=body, headers=self._headers()) as resp:
            if resp.status_code != 200:
                resp.read()
                raise ModelServerError(f"{self._url} answered {resp.status_code}: "
                                       f"{resp.text[:200]}")
            for line in resp.iter_lines():
                delta = _sse_delta(line)
                if delta is not None:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=delta))


def _sse_delta(line: str) -> str | None:
    """The content delta of one `data: {...}` line; None for other lines and [DONE]."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    try:
        choice = json.loads(payload)["choices"][0]
    except (json.JSONDecodeError, KeyError, IndexError):
        return None
    return (choice.get("delta") or {}).get("content") or None
