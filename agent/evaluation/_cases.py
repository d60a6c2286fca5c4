"""Eval cases: YAML files of questions, evidence (simulated or recorded) and expected facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CASES_DIR", "Case", "CaseError", "load_cases"]

CASES_DIR = Path(__file__).resolve().parent.parent / "eval_cases"


class CaseError(ValueError):
    """A case file is malformed; the message names the file and the case."""


@dataclass(slots=True)
class Expect:
    root_service: str | None = None
    root_operation: str | None = None
    family: list[str] = field(default_factory=list)
    numbers: list[float] = field(default_factory=list)
    must_include: list[str] = field(default_factory=list)
    must_not: list[str] = field(default_factory=list)
    tools_called: list[str] = field(default_factory=list)
    tools_not_called: list[str] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Case:
    id: str
    question: str
    thread: dict[str, Any]
    simulator: dict[str, Any] | None
    tools: dict[str, dict[str, Any]]
    expect: Expect
    keys: list[str]
    previous: list[str]  # earlier questions in the same thread (memory)
    source: str


def _case(raw: dict[str, Any], source: str) -> Case:
    try:
        expect = Expect(**(raw.get("expect") or {}))
        if isinstance(expect.family, str):
            expect.family = [expect.family]
        return Case(id=str(raw["id"]), question=str(raw["question"]),
                    thread=dict(raw.get("thread") or {}), simulator=raw.get("simulator"),
                    tools=dict(raw.get("tools") or {}), expect=expect,
                    keys=list(raw.get("keys") or []), previous=list(raw.get("previous") or []),
                    source=source)
    except (KeyError, TypeError) as exc:
        raise CaseError(f"{source}: case {raw.get('id', '?')}: {exc}") from None


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or []
        if not isinstance(data, list):
            raise CaseError(f"{path}: expected a list of cases")
        cases += [_case(c, path.name) for c in data]
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise CaseError(f"duplicate case ids: {', '.join(sorted(dupes))}")
    return cases
