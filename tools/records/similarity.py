"""Similarity of anomalies, as plain numpy over a few features; pure, no IO.

An anomaly is described by its key, service, the child span that dominated its
exemplar trace (the scenario-like signature: "tcp.connect took 92%"), its
severity, its hour of day, and how far it was above its baseline p99. A
free-text question is matched by token overlap with each anomaly's words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["WEIGHTS", "Features", "feature_similarity", "text_similarity", "tokens"]

WEIGHTS = {"key": 0.35, "signature": 0.30, "severity": 0.15, "hour": 0.10, "magnitude": 0.10}
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset((
    "a", "an", "and", "are", "at", "be", "by", "did", "do", "does", "for", "from", "has", "have",
    "how", "in", "is", "it", "its", "of", "on", "or", "slow", "the", "this", "to", "was", "what",
    "when", "where", "which", "who", "why", "with"))


@dataclass(frozen=True, slots=True)
class Features:
    key: str
    service: str
    dominant: str | None  # key of the child span that dominated the exemplar, if one did
    severity: int  # 1..5
    hour: float  # UTC hour of day, 0..24
    log_ratio: float  # ln(observed / baseline p99); NaN when unknown
    words: frozenset[str] = field(default_factory=frozenset)


def tokens(text: str) -> frozenset[str]:
    """Lowercase words of 2+ characters without stop words; 'pg-pool.connect' -> pg, pool, ..."""
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOP)


def _operation(key: str | None) -> str | None:
    return key.partition(":")[2] if key else None


def feature_similarity(query: Features, candidates: Sequence[Features]) -> np.ndarray:
    """Scores in [0, 1], one per candidate: the weighted sum of per-feature matches."""
    if not candidates:
        return np.zeros(0)
    key = np.array([1.0 if c.key == query.key else 0.5 if c.service == query.service else 0.0
                    for c in candidates])
    sig = np.array([0.0 if query.dominant is None or c.dominant is None else
                    1.0 if c.dominant == query.dominant else
                    0.5 if _operation(c.dominant) == _operation(query.dominant) else 0.0
                    for c in candidates])
    sev = 1.0 - np.abs(np.array([c.severity for c in candidates], float) - query.severity) / 4.0
    hours = np.array([c.hour for c in candidates])
    hour = 0.5 * (1.0 + np.cos(2 * math.pi * (hours - query.hour) / 24.0))
    ratios = np.array([c.log_ratio for c in candidates])
    mag = np.exp(-np.abs(ratios - query.log_ratio))
    mag = np.where(np.isfinite(mag), mag, 0.5)  # unknown magnitude: neither like nor unlike
    w = WEIGHTS
    total: np.ndarray = (w["key"] * key + w["signature"] * sig + w["severity"] * sev
                         + w["hour"] * hour + w["magnitude"] * mag)
    return total


def text_similarity(query: frozenset[str], candidates: Sequence[Features]) -> np.ndarray:
    """Share of the query's words that each candidate's words contain, in [0, 1]."""
    if not candidates or not query:
        return np.zeros(len(candidates))
    return np.array([len(query & c.words) / len(query) for c in candidates])
