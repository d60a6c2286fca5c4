"""The evidence pack: tool results with ids (E1, E2, ...), bounded to about 1,500 tokens.

The pack is the only thing the model reads about the system, and the only source of
numbers the checker accepts. Tool text is quoted as data; it is never spliced into
instructions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.numbers import find_numbers

__all__ = ["MAX_PACK_TOKENS", "EvidenceItem", "EvidencePack", "estimate_tokens"]

MAX_PACK_TOKENS = 1500
_CHARS_PER_TOKEN = 3.5  # conservative for English with numbers and ids (measured ~3.8 on gemma)
_MAX_ITEM_CHARS = 1200
_NOTE = " ...[cut]"


def estimate_tokens(text: str) -> int:
    return int(len(text) / _CHARS_PER_TOKEN) + 1


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One tool call's outcome as the model sees it (`text`) and as rules see it (`data`)."""

    id: str
    tool: str
    args: dict[str, Any]
    status: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    elapsed_s: float = 0.0

    def line(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.args.items() if v is not None)
        src = f" source={self.source}" if self.source else ""
        return f"[{self.id}] {self.tool}({args}) status={self.status}{src}: {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvidenceItem:
        return cls(**d)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line per item: no line of span text can pose as a heading
    return text if len(text) <= limit else text[: max(0, limit - len(_NOTE))] + _NOTE


@dataclass(slots=True)
class EvidencePack:
    """Items in the order they were gathered; `render` is what goes into the prompt."""

    items: list[EvidenceItem] = field(default_factory=list)
    max_tokens: int = MAX_PACK_TOKENS

    def add(self, tool: str, args: dict[str, Any], status: str, text: str,
            data: dict[str, Any] | None = None, source: str = "", elapsed_s: float = 0.0
            ) -> EvidenceItem:
        item = EvidenceItem(f"E{len(self.items) + 1}", tool, dict(args), status,
                            _clip(text, _MAX_ITEM_CHARS), dict(data or {}), source, elapsed_s)
        self.items.append(item)
        return item

    def render(self) -> str:
        """Every item on one line; long items are cut evenly so the pack fits its budget."""
        lines = [i.line() for i in self.items]
        budget = int(self.max_tokens * _CHARS_PER_TOKEN)
        floor = 80 + len(_NOTE)
        while sum(len(x) + 1 for x in lines) > budget:
            longest = max(range(len(lines)), key=lambda k: len(lines[k]))
            if len(lines[longest]) <= floor:
                break  # every item is at its floor: ids and statuses stay visible
            excess = sum(len(x) + 1 for x in lines) - budget
            lines[longest] = _clip(lines[longest], max(floor - len(_NOTE),
                                                       len(lines[longest]) - excess))
        return "\n".join(lines) if lines else "(no evidence was gathered)"

    def numbers(self) -> list[float]:
        """Every number a reader of the rendered pack was shown: the checker's reference."""
        return [n.value for n in find_numbers(self.render())]

    def by_tool(self, *names: str) -> list[EvidenceItem]:
        return [i for i in self.items if i.tool in names and i.status in ("ok", "empty")]

    def ids(self) -> list[str]:
        return [i.id for i in self.items]

    def to_list(self) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.items]

    @classmethod
    def from_list(cls, items: Iterable[dict[str, Any]]) -> EvidencePack:
        return cls([EvidenceItem.from_dict(d) for d in items])
