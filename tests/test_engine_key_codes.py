"""The engine keys OTLP batches by their (names, codes) form, numbering keys as a row pass did."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.detection.engine import DetectionEngine
from bot.spans import Span, SpanBatch
from bot.store import SqliteStore

T0 = 1_700_000_000 * 10**9


def _coded(names: list[str], codes: list[int]) -> SpanBatch:
    """A batch in the decoder's form: distinct names (not in row order) and a code per row."""
    n = len(codes)
    ids = np.arange(16 * n, dtype=np.uint8).reshape(n, 16)
    return SpanBatch.from_codes(names, np.array(codes, np.int64), ids,
                                np.full(n, T0, np.int64), np.full(n, 5_000_000, np.int64),
                                np.zeros(n, np.bool_), lambda i: _span(names[codes[i]], i))


def _span(key: str, i: int) -> Span:
    service, operation = key.split(":")
    return Span(f"{i:032x}", f"{i + 1:016x}", None, service, operation, T0, 5_000_000)


def test_new_keys_numbered_by_first_row(tmp_path: Path) -> None:
    names = ["b:y", "a:x", "c:z", "unused:op"]  # the decoder groups by hash, not by row
    codes = [1, 0, 1, 2, 0]
    coded = DetectionEngine(SqliteStore(tmp_path / "coded.db"))
    rows = DetectionEngine(SqliteStore(tmp_path / "rows.db"))
    coded.feed(_coded(names, codes))
    rows.feed(SpanBatch.from_spans([_span(names[c], i) for i, c in enumerate(codes)]))
    assert coded.key_names == rows.key_names == ["a:x", "b:y", "c:z"]  # no row: not a key
    assert coded.key_index == rows.key_index
    # a second batch: known keys looked up, a new one appended after them
    coded.feed(_coded(["d:w", "a:x"], [1, 0, 0]))
    assert coded.key_names == ["a:x", "b:y", "c:z", "d:w"]
    key, *_ = coded.pending.take()
    assert key.tolist() == [0, 1, 0, 2, 1, 0, 3, 3]
