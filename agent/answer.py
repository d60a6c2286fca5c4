"""The answer's shape (SUMMARY / CAUSES / RECOMMENDATIONS / CONFIDENCE): parse and print.

Small models do not always follow the sections; the parser then keeps the whole
text as the summary rather than failing, and says so (`structured=False`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Answer", "parse_answer"]

_SECTIONS = ("summary", "causes", "recommendations", "confidence")
_HEADING = re.compile(
    r"^[\s#>*_-]*(summary|causes?|root causes?|recommendations?|next steps|confidence)"
    r"[\s*_]*[:\-—]?[\s*_]*", re.I | re.M)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@dataclass(slots=True)
class Answer:
    summary: str
    causes: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    confidence: str = ""
    evidence_ids: list[str] = field(default_factory=list)
    structured: bool = True

    def text(self) -> str:
        """Slack mrkdwn-friendly plain text."""
        lines = [f"*SUMMARY:* {self.summary}"]
        if self.causes:
            lines += ["*CAUSES:*"] + [f"{i}. {c}" for i, c in enumerate(self.causes, 1)]
        if self.recommendations:
            lines += ["*RECOMMENDATIONS:*"] + [f"- {r}" for r in self.recommendations]
        if self.confidence:
            lines.append(f"*CONFIDENCE:* {self.confidence}")
        if self.evidence_ids:
            lines.append(f"_Evidence: {', '.join(self.evidence_ids)}_")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _canonical(heading: str) -> str:
    h = heading.lower()
    if "cause" in h:
        return "causes"
    if h.startswith(("recommend", "next")):
        return "recommendations"
    return "summary" if h.startswith("summary") else "confidence"


def _items(body: str) -> list[str]:
    lines = [_BULLET.sub("", ln).strip() for ln in body.splitlines()]
    return [ln for ln in lines if ln]


def parse_answer(text: str) -> Answer:
    """Sections by heading, bullets into lists; free-form text becomes the summary."""
    ids = sorted(set(re.findall(r"\bE\d{1,2}\b", text)), key=lambda e: int(e[1:]))
    text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("_Evidence"))
    found = list(_HEADING.finditer(text))
    if not found:
        return Answer(summary=" ".join(text.split()), evidence_ids=ids, structured=False)
    parts: dict[str, str] = {}
    for m, nxt in zip(found, [*found[1:], None], strict=True):
        body = text[m.end(): nxt.start() if nxt else len(text)]
        key = _canonical(m.group(1))
        parts[key] = (parts.get(key, "") + "\n" + body).strip()
    preamble = text[: found[0].start()].strip()
    summary = " ".join((parts.get("summary") or preamble).split())
    return Answer(summary=summary, causes=_items(parts.get("causes", "")),
                  recommendations=_items(parts.get("recommendations", "")),
                  confidence=" ".join(parts.get("confidence", "").split()),
                  evidence_ids=ids, structured="summary" in parts or "causes" in parts)
