"""Model backends over real edges: an OpenAI-compatible server on loopback (JSON, SSE
streaming, retries, timeouts, json_schema) and backend selection from settings."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from langchain_core.messages import HumanMessage, SystemMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent.backends import resolve_backend
from agent.backends._messages import to_openai
from agent.backends.openai_http import ModelServerError, OpenAICompatChatModel
from agent.backends.queue import ModelQueue
from agent.structured import choice_schema, choose
from bot.settings import load_settings


class ChatServer:
    """Speaks /v1/chat/completions; `script` says how to answer each request in turn."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        step = self.script.pop(0) if self.script else "ok"
        if step == "503":
            return JSONResponse({"error": "loading model"}, status_code=503)
        if step == "400":
            return JSONResponse({"error": "bad request"}, status_code=400)
        if step == "slow":
            await asyncio.sleep(2.0)
        text = step[5:] if step.startswith("text:") else "SUMMARY: fine"
        if body.get("stream"):
            return StreamingResponse(_sse(text), media_type="text/event-stream")
        return JSONResponse({"model": body["model"], "choices": [
            {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3}})


async def _sse(text: str) -> Any:
    for word in text.split(" "):
        chunk = {"choices": [{"delta": {"content": word + " "}, "index": 0}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ChatServer, str]]:
    chat = ChatServer()
    app = Starlette(routes=[Route("/v1/chat/completions", chat.completions, methods=["POST"])])
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    yield chat, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


@pytest.fixture()
def chat(server: tuple[ChatServer, str]) -> tuple[ChatServer, OpenAICompatChatModel]:
    srv, url = server
    srv.script.clear()
    srv.bodies.clear()
    return srv, OpenAICompatChatModel(base_url=url, model="m1", timeout_s=1.0, backoff_s=0.01,
                                      api_key="sk-test")  # type: ignore[arg-type]


async def test_completion_with_usage_and_auth(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    srv.script = ["text:SUMMARY: pool exhausted"]
    msg = await model.ainvoke([HumanMessage("why?")], max_tokens=50)
    assert msg.content == "SUMMARY: pool exhausted"
    assert msg.usage_metadata["output_tokens"] == 3
    assert srv.bodies[0]["max_tokens"] == 50 and srv.bodies[0]["model"] == "m1"
    assert srv.headers[0]["authorization"] == "Bearer sk-test"


async def test_streaming_yields_deltas(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    srv.script = ["text:one two three"]
    parts = [c.content async for c in model.astream([HumanMessage("go")]) if c.content]
    assert "".join(parts).split() == ["one", "two", "three"] and len(parts) == 3
    assert srv.bodies[0]["stream"] is True


def test_sync_call_and_sync_stream(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    srv.script = ["text:a b", "text:c d"]
    assert model.invoke("x").content == "a b"
    assert "".join(c.content for c in model.stream("y")).split() == ["c", "d"]


async def test_retries_on_503_then_succeeds(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    srv.script = ["503", "503", "text:ok now"]
    assert (await model.ainvoke("q")).content == "ok now"
    assert len(srv.bodies) == 3


async def test_gives_up_after_retries_and_on_client_errors(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    srv.script = ["503", "503", "503"]
    with pytest.raises(ModelServerError, match="after 3 attempts"):
        await model.ainvoke("q")
    srv.script = ["400"]
    with pytest.raises(ModelServerError, match="answered 400"):
        await model.ainvoke("q")
    assert len(srv.bodies) == 4  # a 400 is not retried


async def test_timeout_is_retried_then_reported(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    model.max_retries = 1
    srv.script = ["slow", "slow"]
    with pytest.raises(ModelServerError, match="ReadTimeout"):
        await model.ainvoke("q")


async def test_structured_choice_sends_json_schema(chat: tuple[ChatServer, Any]) -> None:
    srv, model = chat
    srv.script = ['text:{"key": "a:b"}', 'text:{"key": "c:d"}']
    schema = choice_schema("key", ["a:b", "none"])
    assert await choose(model, "pick", schema, 2.0) == {"key": "a:b"}
    sent = srv.bodies[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
    assert await choose(model, "pick", schema, 2.0) is None  # outside the closed set


def test_gemma_folds_system_text_into_the_user_turn() -> None:
    msgs = [SystemMessage("rules"), HumanMessage("question")]
    assert to_openai(msgs, fold_system=True) == [{"role": "user", "content": "rules\n\nquestion"}]
    assert to_openai(msgs)[0] == {"role": "system", "content": "rules"}


async def test_queue_serialises_and_tells_waiting_callers_their_place() -> None:
    queue, told, active, peak = ModelQueue(), [], [0], [0]

    def work() -> int:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        active[0] -= 1
        return 1

    async def on_wait(ahead: int) -> None:
        told.append(ahead)

    results = await asyncio.gather(*(queue.run(work, on_wait) for _ in range(3)))
    assert results == [1, 1, 1] and peak[0] == 1
    assert sorted(told) == [1, 2]


def test_auto_backend_resolution(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    assert resolve_backend(load_settings(model_backend="none")).name == "none"
    assert resolve_backend(load_settings(model_path=gguf)).name == "llamacpp"
    assert resolve_backend(load_settings(openai_base_url="http://x")).name == "openai"
    assert resolve_backend(load_settings(model_path=gguf), "none").name == "none"
