"""Call graph from parent/child spans, and anomalies grouped into incidents with an origin."""

from __future__ import annotations

from detectors.config import GroupingConfig
from detectors.grouping import CallGraph, IncidentMember, group_incidents

M = 60 * 1_000_000_000
CFG = GroupingConfig()


def graph_of(calls: list[tuple[str, str]], config: GroupingConfig = CFG) -> CallGraph:
    """One trace per call: a caller span and its child in the callee service."""
    services, ids, parents = [], [], []
    for i, (caller, callee) in enumerate(calls):
        services += [caller, callee]
        ids += [f"p{i}", f"c{i}"]
        parents += [None, f"p{i}"]
    graph = CallGraph(config)
    graph.add_spans(services, ids, parents)
    return graph


SHOP = [("frontend", "checkout"), ("checkout", "payments"), ("payments", "postgres")] * 3 + [
    ("frontend", "search"),
    ("search", "elastic"),
]


def member(
    aid: str, service: str, start_min: int, end_min: int | None = None, peak: float = 5.0
) -> IncidentMember:
    return IncidentMember(
        aid, service, start_min * M, None if end_min is None else end_min * M, peak
    )


def test_edges_count_cross_service_calls_across_batches() -> None:
    graph = CallGraph(CFG)
    graph.add_spans(["api", "api"], ["a", "b"], [None, "a"])  # same service: not an edge
    assert graph.edges == {}
    calls = graph.add_spans(["db", "db"], ["c", "d"], ["b", "zzz"])  # parent from an earlier batch
    assert calls == 1 and graph.edges == {("api", "db"): 1}
    assert CallGraph.from_dict(graph.to_dict(), CFG).edges == graph.edges


def test_recent_span_memory_is_bounded() -> None:
    graph = CallGraph(GroupingConfig(recent_spans=2))
    graph.add_spans(["a", "a", "a"], ["1", "2", "3"], [None, None, None])
    assert graph.add_spans(["b"], ["4"], ["1"]) == 0  # "1" was forgotten
    assert graph.add_spans(["c"], ["6"], ["4"]) == 1  # "4" is remembered


def test_distances() -> None:
    graph = graph_of(SHOP)
    assert graph.distances("payments") == {
        "payments": 0,
        "checkout": 1,
        "postgres": 1,
        "frontend": 2,
        "search": 3,
        "elastic": 4,
    }
    assert graph.distances("payments", directed=True) == {"payments": 0, "postgres": 1}
    assert set(graph.distances("frontend", max_hops=1)) == {"frontend", "checkout", "search"}


def test_cascade_across_three_services_is_one_incident_with_the_deepest_origin() -> None:
    graph = graph_of(SHOP)
    anomalies = [
        member("frontend@3", "frontend", 3),
        member("checkout@2", "checkout", 2),
        member("postgres@1", "postgres", 1, peak=4.0),
        member("checkout2@4", "checkout", 4),
    ]
    (incident,) = group_incidents(anomalies, graph, now_ns=10 * M)
    assert len(incident.members) == 4 and incident.incident_id == "postgres@1"
    assert incident.origin.service == "postgres"
    assert incident.chain == ("frontend", "checkout", "payments", "postgres")
    assert incident.end_ns is None


def test_origin_is_deepest_even_when_it_started_last() -> None:
    graph = graph_of(SHOP)
    anomalies = [
        member("f", "frontend", 1),
        member("c", "checkout", 2),
        member("pg", "postgres", 3),
    ]
    (incident,) = group_incidents(anomalies, graph, now_ns=10 * M)
    assert incident.origin.anomaly_id == "pg" and incident.incident_id == "f"


def test_unconnected_or_non_overlapping_anomalies_are_separate() -> None:
    graph = graph_of(SHOP + [("batch", "warehouse")])
    anomalies = [
        member("pg", "postgres", 0, 10),
        member("wh", "warehouse", 2, 12),  # concurrent but unconnected
        member("pg-later", "payments", 60, 70),  # connected but an hour later
    ]
    incidents = group_incidents(anomalies, graph, now_ns=80 * M)
    assert [[m.anomaly_id for m in i.members] for i in incidents] == [["pg"], ["wh"], ["pg-later"]]
    assert incidents[0].end_ns == 10 * M


def test_hop_limit_and_overlap_slack() -> None:
    graph = graph_of(SHOP)
    far = [member("pg", "postgres", 0), member("el", "elastic", 0)]  # 5 hops apart
    assert len(group_incidents(far, graph, now_ns=5 * M)) == 2
    near_in_time = [member("pg", "postgres", 0, 10), member("pay", "payments", 14, 20)]
    assert len(group_incidents(near_in_time, graph, now_ns=30 * M)) == 1  # 4 min < 5 min slack
    strict = CallGraph.from_dict(graph.to_dict(), GroupingConfig(overlap_slack_s=0))
    assert len(group_incidents(near_in_time, strict, now_ns=30 * M)) == 2


def test_ties_break_deterministically() -> None:
    graph = graph_of([("gw", "a"), ("gw", "b")])
    anomalies = [member("b1", "b", 5), member("a1", "a", 5), member("gw", "gw", 4)]
    first = group_incidents(anomalies, graph, now_ns=10 * M)
    again = group_incidents(list(reversed(anomalies)), graph, now_ns=10 * M)
    assert first == again and first[0].origin.anomaly_id == "a1"  # same depth, same start: by name
