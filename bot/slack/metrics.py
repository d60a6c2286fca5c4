"""The Slack bot's own Prometheus counters, on the registry the ASGI app serves at /metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["SlackMetrics"]


@dataclass(frozen=True)
class SlackMetrics:
    events: Counter  # labels: type, outcome (handled | duplicate | ignored)
    alerts: Counter  # labels: action (posted | updated | in_thread | capped | muted | skipped)
    feedback: Counter  # labels: verdict, source
    commands: Counter  # labels: verb, outcome (ok | refused | usage | error)
    questions: Counter  # labels: outcome (answered | unavailable | error)
    charts: Counter  # labels: outcome (uploaded | no_data | error)
    answer_seconds: Histogram

    @classmethod
    def on(cls, registry: CollectorRegistry) -> SlackMetrics:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"opsbot_slack_{name}", doc, labels, registry=registry)

        return cls(
            events=counter("events", "Slack events received", "type", "outcome"),
            alerts=counter("alerts", "alert messages by what happened", "action"),
            feedback=counter("feedback", "feedback recorded from Slack", "verdict", "source"),
            commands=counter("commands", "/opsbot commands", "verb", "outcome"),
            questions=counter("questions", "questions to the agent", "outcome"),
            charts=counter("charts", "alert charts", "outcome"),
            answer_seconds=Histogram("opsbot_slack_answer_seconds",
                                     "question to final answer", registry=registry,
                                     buckets=(0.5, 1, 2, 5, 10, 30, 60, 120)),
        )
