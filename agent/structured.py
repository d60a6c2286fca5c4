"""Grammar-constrained choices: the model picks from a closed set, as JSON, or not at all.

Small models invent tool names and arguments when asked free-form; a JSON schema
with enums (turned into a llama.cpp grammar, or sent as `response_format` to an
OpenAI-compatible server) leaves them nothing to invent. Strings get a `maxLength`
below 1,000: at 1,500 llama.cpp's grammar parser crashes, and without one they run
to max_tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from langchain_core.messages import HumanMessage

__all__ = ["choice_schema", "choose", "tools_schema"]

log = logging.getLogger(__name__)


def choice_schema(field: str, options: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {field: {"type": "string", "enum": options}},
            "required": [field], "additionalProperties": False}


def tools_schema(options: list[str], max_items: int = 4) -> dict[str, Any]:
    return {"type": "object", "properties": {"tools": {
        "type": "array", "items": {"type": "string", "enum": options}, "maxItems": max_items}},
        "required": ["tools"], "additionalProperties": False}


def _json_object(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(text[start: end + 1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def choose(model: Any, prompt: str, schema: dict[str, Any], timeout_s: float,
                 max_tokens: int = 64) -> dict[str, Any] | None:
    """The model's JSON answer, checked against the schema's enums; None on any failure."""
    try:
        msg = await asyncio.wait_for(model.ainvoke(
            [HumanMessage(prompt)], max_tokens=max_tokens, temperature=0.0,
            response_format={"type": "json_object", "schema": schema}), timeout_s)
    except Exception as exc:  # noqa: BLE001 - a failed choice means "rules only"
        log.warning("structured choice failed: %s", exc)
        return None
    value = _json_object(str(msg.content))
    if value is None:
        return None
    for name, spec in schema["properties"].items():
        allowed = spec.get("enum") or spec.get("items", {}).get("enum")
        got = value.get(name)
        if allowed is None:
            continue
        if isinstance(got, list):
            value[name] = [g for g in got if g in allowed][: spec.get("maxItems", len(got))]
        elif got not in allowed:
            return None
    return value
