"""Service call graph from parent/child spans, and grouping of anomalies into incidents.

Anomalies that overlap in time and whose services are at most `max_hops` apart
in the call graph (either direction) share an incident. Its origin is the
deepest anomalous service in the call chain: one with no anomalous service
downstream of it; ties go to the longest chain from an anomalous caller, then
the earliest start, then the highest peak score, then the name. Pure: spans
come in as columns, time as an argument.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.config import GroupingConfig

__all__ = ["CallGraph", "Incident", "IncidentMember", "group_incidents", "pick_origin"]


class CallGraph:
    """Caller service -> callee service edges with call counts, built batch by batch."""

    def __init__(self, config: GroupingConfig) -> None:
        self.config = config
        self.edges: dict[tuple[str, str], int] = {}
        self._recent: dict[str, str] = {}  # span id -> service, oldest first, bounded

    def add_spans(
        self, services: Sequence[str], span_ids: Sequence[str], parent_ids: Sequence[str | None]
    ) -> int:
        """Fold one batch (equal-length columns); returns the number of cross-service calls seen.

        A parent may be in this batch or among the last `recent_spans` span ids seen.
        """
        recent = self._recent
        recent.update(zip(span_ids, services, strict=True))
        calls = 0
        for service, parent in zip(services, parent_ids, strict=True):
            caller = recent.get(parent) if parent else None
            if caller is not None and caller != service:
                self.edges[(caller, service)] = self.edges.get((caller, service), 0) + 1
                calls += 1
        excess = len(recent) - self.config.recent_spans
        if excess > 0:
            for span_id in list(recent)[:excess]:
                del recent[span_id]
        return calls

    def _adjacency(self, directed: bool) -> dict[str, set[str]]:
        adj: dict[str, set[str]] = {}
        for (caller, callee), n in self.edges.items():
            if n < self.config.min_edge_calls:
                continue
            adj.setdefault(caller, set()).add(callee)
            if not directed:
                adj.setdefault(callee, set()).add(caller)
        return adj

    def distances(
        self, source: str, directed: bool = False, max_hops: int | None = None
    ) -> dict[str, int]:
        """Hop counts from `source` (callers to callees only when directed), BFS."""
        adj = self._adjacency(directed)
        dist = {source: 0}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if max_hops is not None and dist[node] >= max_hops:
                continue
            for nxt in sorted(adj.get(node, ())):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        return dist

    def to_dict(self) -> dict[str, Any]:
        return {"edges": [[a, b, n] for (a, b), n in sorted(self.edges.items())]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], config: GroupingConfig) -> CallGraph:
        graph = cls(config)
        graph.edges = {(a, b): int(n) for a, b, n in d["edges"]}
        return graph


@dataclass(frozen=True, slots=True)
class IncidentMember:
    """An anomaly as grouping sees it; `end_ns` None while it is open."""

    anomaly_id: str
    service: str
    start_ns: int
    end_ns: int | None
    peak_score: float


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str  # anomaly id of the earliest member: stable while the incident grows
    members: tuple[IncidentMember, ...]
    origin: IncidentMember
    chain: tuple[str, ...]  # services from the most upstream anomalous caller down to the origin
    start_ns: int
    end_ns: int | None  # None while any member is open


def _overlap(a: IncidentMember, b: IncidentMember, now_ns: int, slack_ns: float) -> bool:
    a_end = now_ns if a.end_ns is None else a.end_ns
    b_end = now_ns if b.end_ns is None else b.end_ns
    return a.start_ns <= b_end + slack_ns and b.start_ns <= a_end + slack_ns


def _components(
    members: Sequence[IncidentMember], graph: CallGraph, now_ns: int
) -> list[list[int]]:
    cfg = graph.config
    parent = list(range(len(members)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    near = {s: graph.distances(s, max_hops=cfg.max_hops) for s in {m.service for m in members}}
    for i, a in enumerate(members):
        for j in range(i + 1, len(members)):
            b = members[j]
            if b.service in near[a.service] and _overlap(a, b, now_ns, cfg.overlap_slack_s * 1e9):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(members)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def pick_origin(
    members: Sequence[IncidentMember], graph: CallGraph
) -> tuple[IncidentMember, tuple[str, ...]]:
    """The deepest anomalous member and the chain of services leading to it."""
    services = {m.service for m in members}
    down = {s: graph.distances(s, directed=True) for s in services}
    sinks = {s for s in services if not (set(down[s]) & services) - {s}}
    candidates = [m for m in members if m.service in (sinks or services)]

    def depth(s: str) -> int:
        return max(down[u].get(s, 0) for u in services)

    origin = min(
        candidates,
        key=lambda m: (-depth(m.service), m.start_ns, -m.peak_score, m.service, m.anomaly_id),
    )
    top = max(sorted(services), key=lambda u: down[u].get(origin.service, -1))
    return origin, _path(graph, top, origin.service)


def _path(graph: CallGraph, source: str, target: str) -> tuple[str, ...]:
    adj = graph._adjacency(directed=True)
    prev: dict[str, str | None] = {source: None}
    queue = deque([source])
    while queue and target not in prev:
        node = queue.popleft()
        for nxt in sorted(adj.get(node, ())):
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    if target not in prev:
        return (target,)
    path = [target]
    while (p := prev[path[-1]]) is not None:
        path.append(p)
    return tuple(reversed(path))


def group_incidents(
    members: Sequence[IncidentMember], graph: CallGraph, now_ns: int
) -> list[Incident]:
    """Incidents from current and recent anomalies, ordered by start; deterministic."""
    incidents = []
    for idx in _components(members, graph, now_ns):
        group = sorted((members[i] for i in idx), key=lambda m: (m.start_ns, m.anomaly_id))
        origin, chain = pick_origin(group, graph)
        ends = [m.end_ns for m in group]
        end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        incidents.append(
            Incident(group[0].anomaly_id, tuple(group), origin, chain, group[0].start_ns, end)
        )
    return sorted(incidents, key=lambda inc: (inc.start_ns, inc.incident_id))
