"""Numbers as text: how the evidence pack and the checker find and compare them.

One definition for both sides, so the checker accepts exactly what the pack shows:
a number is a run of digits not glued to a letter before it (p99, E2, SEV1 and hex
ids are names, not numbers) and followed by nothing or by a unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Number", "find_numbers", "fmt", "matches_any"]

_UNITS = ("ms", "s", "%", "mb", "gb", "kb", "σ", "sigma", "x", "rps", "req/s", "/s", "min", "h",
          "d", "us", "µs", "ns", "m", "pts", "tok", "tokens")
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:\s?(%|σ|[a-zA-Zµ/]+))?"
)
_URL = re.compile(r"<?https?://[^\s>|]+(\|[^>]*)?>?")
_LIST_MARKER = re.compile(r"^\s*(\d+)[.)]\s", re.MULTILINE)
# Scales under which one quantity may be written in another unit: ns/µs/ms/s, ratio/percent.
_SCALES = (1.0, 1e3, 1e-3, 100.0, 0.01, 1e-6, 1e6)


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    decimals: int
    text: str
    start: int


def find_numbers(text: str, *, skip_list_markers: bool = False) -> list[Number]:
    """Every number in `text` (see module docstring for what counts)."""
    text = _URL.sub(lambda m: " " * len(m.group(0)), text)  # ports and ids in links are not data
    markers = {m.start(1) for m in _LIST_MARKER.finditer(text)} if skip_list_markers else set()
    out: list[Number] = []
    for m in _NUMBER.finditer(text):
        unit = m.group(2)
        if unit is not None and unit not in ("%", "σ") and unit.lower() not in _UNITS:
            continue  # 5xx, 2nd, 3a9f...: part of a word or an id
        if m.start(1) in markers:
            continue
        raw = m.group(1).replace(",", "")
        decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
        out.append(Number(float(raw), decimals, m.group(0), m.start(1)))
    return out


def _close(answer: Number, evidence: float) -> bool:
    tolerance = 0.5 * 10.0 ** (-answer.decimals) + 1e-9 * max(1.0, abs(evidence))
    return bool(abs(answer.value - evidence) <= tolerance)


def matches_any(answer: Number, evidence: Iterable[float]) -> bool:
    """Whether `answer` equals some evidence value within its own rounding, in any unit scale."""
    return bool(any(_close(answer, e * s) for e in evidence for s in _SCALES))


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    """The one way numbers are printed into evidence, so the model can copy them exactly."""
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return f"{text}{unit}"
