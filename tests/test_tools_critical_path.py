"""Critical path: hand-checked shapes, invariants on random and real Jaeger traces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.spans import RejectCounter, Span
from tests.conftest import shared_path
from tools.traces.critical_path import critical_path, critical_spans, pick_root
from tools.traces.jaeger_format import spans_from_jaeger

MS = 1_000_000
T0 = 1_714_953_600 * 10**9


def span(sid: str, parent: str | None, start_ms: float, dur_ms: float,
         op: str | None = None, service: str = "svc") -> Span:
    return Span("ab" * 16, sid, parent, service, op or sid, T0 + int(start_ms * MS),
                int(dur_ms * MS))


def path(spans: list[Span], root: Span | None = None) -> list[tuple[str, float, float]]:
    return [(s.span_id, (s.start_ns - T0) / MS, (s.end_ns - T0) / MS)
            for s in critical_path(spans, root)]


def test_sequential_children_are_all_on_the_path() -> None:
    spans = [span("root", None, 0, 10), span("a", "root", 1, 3), span("b", "root", 4, 5)]
    assert path(spans) == [("root", 0, 1), ("a", 1, 4), ("b", 4, 9), ("root", 9, 10)]


def test_children_that_touch_end_to_start_are_both_critical() -> None:
    spans = [span("root", None, 0, 10), span("a", "root", 0, 5), span("b", "root", 5, 5)]
    assert path(spans) == [("a", 0, 5), ("b", 5, 10)]


def test_concurrent_child_that_finishes_first_is_off_the_path() -> None:
    # a [0, 8] and b [2, 10] run together; the root waits for b, so a is not critical.
    spans = [span("root", None, 0, 12), span("a", "root", 0, 8), span("b", "root", 2, 8)]
    assert path(spans) == [("root", 0, 2), ("b", 2, 10), ("root", 10, 12)]


def test_child_longer_than_parent_is_clipped_to_the_parent() -> None:
    spans = [span("root", None, 0, 10), span("late", "root", 6, 20),
             span("outside", "root", 15, 3)]
    assert path(spans) == [("root", 0, 6), ("late", 6, 10)]


def test_nested_chain_is_followed_to_the_deepest_span() -> None:
    spans = [span("root", None, 0, 300, "pg-pool.connect"),
             span("wait", "root", 2, 10, "pg-pool.wait"),
             span("tcp", "root", 14, 264, "tcp.connect"),
             span("syn", "tcp", 20, 250, "syn")]
    steps = {c.span.span_id: c for c in critical_spans(spans)}
    assert steps["syn"].self_ns == 250 * MS
    assert steps["tcp"].path_ns == 264 * MS and steps["tcp"].self_ns == 14 * MS
    assert steps["tcp"].depth == 1 and steps["syn"].depth == 2
    assert steps["syn"].parent is not None and steps["syn"].parent.span_id == "tcp"
    assert steps["root"].path_ns == 300 * MS


def test_zero_duration_children_and_repeated_ids_terminate() -> None:
    spans = [span("root", None, 0, 10), span("z", "root", 5, 0), span("z", "root", 5, 0),
             span("c1", "c2", 0, 1), span("c2", "c1", 0, 1)]  # a parent cycle off the tree
    segments = critical_path(spans)
    assert sum(s.duration_ns for s in segments) == 10 * MS


def test_focus_on_a_subtree_ignores_the_rest() -> None:
    spans = [span("root", None, 0, 100), span("a", "root", 0, 50), span("a1", "a", 10, 30),
             span("b", "root", 50, 50)]
    assert path(spans, spans[1]) == [("a", 0, 10), ("a1", 10, 40), ("a", 40, 50)]


def test_pick_root_prefers_the_longest_parentless_span() -> None:
    spans = [span("orphan", "missing", 0, 500), span("root", None, 0, 100)]
    root = pick_root(spans)
    assert root is not None and root.span_id == "orphan"
    assert pick_root([]) is None and critical_path([]) == []


def _assert_covers(spans: list[Span], root: Span) -> None:
    segments = critical_path(spans, root)
    assert segments[0].start_ns == root.start_ns
    assert segments[-1].end_ns == root.end_ns
    for a, b in zip(segments, segments[1:], strict=False):
        assert a.end_ns == b.start_ns  # contiguous: no gap, no overlap
    assert all(s.duration_ns > 0 for s in segments)
    by_id = {s.span_id: s for s in spans}
    for seg in segments:  # a segment lies inside its span (clipping only shrinks a span)
        s = by_id[seg.span_id]
        assert s.start_ns <= seg.start_ns and seg.end_ns <= s.end_ns


@pytest.mark.parametrize("seed", range(20))
def test_random_traces_are_covered_exactly_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spans = [span("s0", None, 0, 1000)]
    for i in range(1, 60):
        parent = spans[int(rng.integers(0, len(spans)))]
        p0 = (parent.start_ns - T0) / MS
        start = p0 + float(rng.uniform(-5, parent.duration_ns / MS))
        spans.append(span(f"s{i}", parent.span_id, start, float(rng.exponential(80))))
    _assert_covers(spans, spans[0])


def test_critical_time_of_real_jaeger_traces_adds_up() -> None:
    folder = shared_path("jaeger", "jaeger-ui")
    names = ["components__TracePage__TraceStatistics__tableValuesTestTrace__spansAmongEachOther",
             "components__TracePage__TraceStatistics__tableValuesTestTrace__spanLongerAsParent",
             "components__TracePage__TraceFlamegraph__testTrace",
             "components__TracePage__TraceGraph__testTrace"]
    checked = 0
    for stem in names:
        spans = spans_from_jaeger(json.loads((folder / f"{stem}.json").read_text()),
                                  RejectCounter())
        for trace_id in {s.trace_id for s in spans}:
            trace = [s for s in spans if s.trace_id == trace_id]
            root = pick_root(trace)
            assert root is not None
            if root.duration_ns == 0:
                continue
            _assert_covers(trace, root)
            steps = critical_spans(trace, root)
            assert sum(c.self_ns for c in steps) == root.duration_ns
            assert steps[0].span.span_id == root.span_id and steps[0].path_ns == root.duration_ns
            checked += 1
    assert checked >= 3
