"""LangChain messages to OpenAI-style role/content dicts, shared by both backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage

__all__ = ["to_openai", "usage"]


def to_openai(messages: Sequence[BaseMessage], *, fold_system: bool = False
              ) -> list[dict[str, str]]:
    """Role dicts; with `fold_system`, system text is prepended to the next user turn
    (Gemma's template silently drops system messages)."""
    out: list[dict[str, str]] = []
    pending = ""
    for m in messages:
        role = ("system" if isinstance(m, SystemMessage) else
                "assistant" if isinstance(m, AIMessage) else "user")
        text = m.content if isinstance(m.content, str) else str(m.content)
        if role == "system" and fold_system:
            pending += text + "\n\n"
            continue
        if role == "user" and pending:
            text, pending = pending + text, ""
        out.append({"role": role, "content": text})
    if pending:
        out.append({"role": "user", "content": pending.strip()})
    return out


def usage(raw: dict[str, Any] | None) -> dict[str, int]:
    raw = raw or {}
    i, o = int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
