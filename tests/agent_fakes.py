"""Fakes for the agent tests: a scripted chat model (LangGraph's own tests use this pattern)
and helpers that wire the real graph to replay tools over recorded outputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult

from agent.evaluation._cases import load_cases
from agent.evaluation._replay import replay_tools
from agent.graph import build_graph
from agent.state import AgentDeps
from tools.base import ToolContext

KEYS = ["kx-exchange:pg-pool.connect", "kx-exchange:tcp.connect", "kx-exchange:pg-pool.wait",
        "kx-exchange:pg.query", "kx-wallet:pg.query", "order-matcher:match"]
NOW_NS = 1_717_409_700 * 10**9


class ScriptedChatModel(GenericFakeChatModel):
    """Answers from a script, in order, and keeps every prompt it was given."""

    prompts: list[str] = []
    kwargs_seen: list[dict[str, Any]] = []

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        self.kwargs_seen.append({k: v for k, v in kwargs.items() if k != "on_wait"})
        return super()._generate(messages, stop, run_manager, **kwargs)


def scripted(*answers: str) -> ScriptedChatModel:
    it: Iterator[AIMessage | str] = iter([AIMessage(content=a) for a in answers])
    return ScriptedChatModel(messages=it, prompts=[], kwargs_seen=[])


class BrokenChatModel(GenericFakeChatModel):
    """A model whose every call fails, like a crashed llama-server."""

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError("model server went away")


def training_tools() -> dict[str, dict[str, Any]]:
    """The recorded tool outputs of the anomaly the fine-tuned model was trained on."""
    case = next(c for c in load_cases() if c.id == "rec-training-anomaly-tcp-connect")
    return {k: dict(v) for k, v in case.tools.items()}


def make_graph(model: Any = None, recorded: dict[str, dict[str, Any]] | None = None,
               log: list[dict[str, Any]] | None = None, saver: Any = None,
               keys: list[str] | None = None, model_timeout_s: float = 5.0,
               max_tokens: int = 384) -> Any:
    tools = replay_tools(training_tools() if recorded is None else recorded,
                         log if log is not None else [])

    async def known() -> list[str]:
        return KEYS if keys is None else keys

    def context(ask: Any, now_ns: int) -> ToolContext:
        return ToolContext(store=None, settings=None, now_ns=now_ns, user_id=ask.get("user_id"),
                           is_admin=bool(ask.get("is_admin")))

    return build_graph(AgentDeps(tools=tools, context=context, known_keys=known, model=model,
                                 model_timeout_s=model_timeout_s, max_tokens=max_tokens),
                       saver)
