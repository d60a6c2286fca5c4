"""The critical path of a trace: which span was running, on the path to the root's end, when.

Walk back from the end of a span: the child that finished last (at or before
the cursor) is what the span was waiting for; before that child started, the
next child that finished by then; where no child covers the time, the span's
own work is critical. Concurrent children that finish earlier than the one
being waited on are off the path. Children are clipped to their parent's
window first (clock skew, async work that outlives its parent), as Jaeger UI
does. Pure: spans in, segments out; an explicit stack, so deep traces cannot
overflow recursion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.spans import Span

__all__ = ["CriticalSpan", "PathSegment", "critical_path", "critical_spans", "pick_root"]


@dataclass(frozen=True, slots=True)
class PathSegment:
    """[start_ns, end_ns) during which `span_id`'s own work was on the critical path."""

    span_id: str
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class CriticalSpan:
    """A span on the critical path: its own critical time and that of its critical subtree."""

    span: Span
    depth: int  # 0 for the root of the breakdown
    self_ns: int  # time its own work was critical
    path_ns: int  # self_ns plus the critical time of its descendants
    parent: Span | None


@dataclass(slots=True)
class _Window:
    start: int
    end: int


def pick_root(spans: Sequence[Span]) -> Span | None:
    """The span to break down when none is named: the longest span without a parent here."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id or s.parent_id not in ids]
    pool = roots or list(spans)
    return max(pool, key=lambda s: (s.duration_ns, -s.start_ns, s.span_id), default=None)


def _clipped_tree(spans: Sequence[Span], root: Span) -> tuple[dict[str, list[Span]],
                                                                 dict[str, _Window]]:
    """Children lists and windows clipped to each parent's window; spans outside are dropped."""
    children: dict[str, list[Span]] = {}
    for s in spans:
        if s.parent_id and s.span_id != root.span_id:
            children.setdefault(s.parent_id, []).append(s)
    windows = {root.span_id: _Window(root.start_ns, root.start_ns + root.duration_ns)}
    kept: dict[str, list[Span]] = {}
    queue = [root.span_id]
    while queue:
        pid = queue.pop()
        parent = windows[pid]
        for child in children.get(pid, ()):
            if child.span_id in windows:  # a repeated id or a cycle: keep the first
                continue
            start = max(child.start_ns, parent.start)
            end = min(child.start_ns + child.duration_ns, parent.end)
            if start > end:  # wholly outside its parent
                continue
            windows[child.span_id] = _Window(start, end)
            kept.setdefault(pid, []).append(child)
            queue.append(child.span_id)
    return kept, windows


def critical_path(spans: Sequence[Span], root: Span | None = None) -> list[PathSegment]:
    """Segments in time order; together they cover the root's span exactly once.

    `root` defaults to `pick_root(spans)`; spans outside its subtree are ignored.
    """
    root = root or pick_root(spans)
    if root is None:
        return []
    kids, win = _clipped_tree(spans, root)
    # Latest end first; ties: the longer child first, then by id, so the output is stable.
    ordered = {pid: sorted(cs, key=lambda c: (-win[c.span_id].end, win[c.span_id].start,
                                              c.span_id))
               for pid, cs in kids.items()}
    segments: list[PathSegment] = []
    # Frame: [span id, cursor (walking back from here), index into ordered children]
    stack: list[list[object]] = [[root.span_id, win[root.span_id].end, 0]]
    while stack:
        frame = stack[-1]
        sid, cursor, i = str(frame[0]), int(frame[1]), int(frame[2])  # type: ignore[call-overload]
        children = ordered.get(sid, [])
        while i < len(children) and win[children[i].span_id].end > cursor:
            i += 1  # finished after the cursor: overlaps what we already attributed
        if i < len(children):
            child = children[i]
            cw = win[child.span_id]
            if cw.end < cursor:
                segments.append(PathSegment(sid, cw.end, cursor))
            frame[1], frame[2] = cw.start, i + 1
            stack.append([child.span_id, cw.end, 0])
            continue
        if win[sid].start < cursor:
            segments.append(PathSegment(sid, win[sid].start, cursor))
        stack.pop()
    segments.reverse()
    return segments


def critical_spans(spans: Sequence[Span], root: Span | None = None) -> list[CriticalSpan]:
    """Every span with critical time, in path order (first critical moment), with depths."""
    root = root or pick_root(spans)
    if root is None:
        return []
    segments = critical_path(spans, root)
    by_id = {s.span_id: s for s in spans}
    self_ns: dict[str, int] = {}
    path_ns: dict[str, int] = {}
    first: dict[str, int] = {}
    for seg in segments:
        self_ns[seg.span_id] = self_ns.get(seg.span_id, 0) + seg.duration_ns
        first.setdefault(seg.span_id, seg.start_ns)
        node: str | None = seg.span_id
        while node is not None and node in by_id:
            path_ns[node] = path_ns.get(node, 0) + seg.duration_ns
            first[node] = min(first.get(node, seg.start_ns), seg.start_ns)
            node = None if node == root.span_id else by_id[node].parent_id
    out = []
    for sid in sorted(path_ns, key=lambda s: (first[s], -path_ns[s], s)):
        span = by_id[sid]
        parent = by_id.get(span.parent_id or "") if sid != root.span_id else None
        out.append(CriticalSpan(span, _depth(span, root, by_id), self_ns.get(sid, 0),
                                path_ns[sid], parent))
    return out


def _depth(span: Span, root: Span, by_id: dict[str, Span]) -> int:
    depth, node = 0, span
    while node.span_id != root.span_id and node.parent_id in by_id:
        node = by_id[node.parent_id]
        depth += 1
    return depth
