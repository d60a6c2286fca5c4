"""The anomaly lifecycle of one key: open, update, resolve; cooldown and flap damping.

A pure state machine fed with decided windows (`observe`) and the passing of
time (`tick`); it returns events and never does IO. Rules:
- open when `open_k` of the last `open_n` windows carry a severity (missing
  windows count as quiet) and the key is not cooling down, or at once on a
  decisive window (a metric value beyond its series' whole recent range);
- while open, a window with a severity or a score >= `sustain_score`
  (hysteresis) keeps it alive and may raise its peak or add exemplars;
- resolve `quiet_period_s` after the last such window;
- after a resolve the key cannot re-open for `cooldown_s`, doubled for every
  other open within `flap_window_s`, up to `max_cooldown_s`.
State round-trips through `to_dict`/`from_dict`; windows at or before the last
one seen are ignored, so a replay after a restart emits no duplicate events.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from detectors.config import LifecycleConfig
from detectors.severity import Severity, SeverityDecision

__all__ = ["Anomaly", "AnomalyEvent", "AnomalyTracker", "EventKind"]

EventKind = Literal["opened", "updated", "resolved"]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly of one key, as the store keeps it and a message shows it."""

    anomaly_id: str  # f"{key}@{opened_ns}": stable across restarts
    key: str
    opened_ns: int  # start of the first window that counted toward opening
    last_anomalous_ns: int
    peak_score: float
    peak_ns: int
    severity: Severity  # peak severity
    trigger: SeverityDecision  # the decision behind the peak severity: percentile, threshold, score
    exemplars: tuple[str, ...] = ()
    resolved_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = int(self.severity)
        d["trigger"]["severity"] = int(self.trigger.severity)
        d["exemplars"] = list(self.exemplars)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Anomaly:
        trig = dict(d["trigger"])
        trig["severity"] = Severity(trig["severity"])
        return cls(
            **{
                **d,
                "severity": Severity(d["severity"]),
                "trigger": SeverityDecision(**trig),
                "exemplars": tuple(d["exemplars"]),
            }
        )


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    kind: EventKind
    t_ns: int
    anomaly: Anomaly


def _stronger(a: SeverityDecision, b: SeverityDecision) -> SeverityDecision:
    """The decision with the more severe level; the higher score on a tie."""
    return a if (a.severity, -a.score) <= (b.severity, -b.score) else b


@dataclass(slots=True)
class _Recent:
    t_ns: int
    decision: SeverityDecision | None


class AnomalyTracker:
    """Lifecycle of one key. `window_s` is the scoring window length (for 'last n windows')."""

    def __init__(self, key: str, config: LifecycleConfig, window_s: int) -> None:
        self.key = key
        self.config = config
        self.window_ns = window_s * 1_000_000_000
        self.open: Anomaly | None = None
        self.recent: list[_Recent] = []
        self.opens_ns: list[int] = []  # open times within the flap window
        self.cooldown_until_ns = 0
        self.last_ns: int | None = None

    @property
    def state(self) -> Literal["idle", "open", "cooldown"]:
        if self.open is not None:
            return "open"
        return (
            "cooldown"
            if self.last_ns is not None and self.last_ns < self.cooldown_until_ns
            else "idle"
        )

    def observe(
        self,
        t_ns: int,
        score: float,
        decision: SeverityDecision | None,
        exemplars: Sequence[str] = (),
        decisive: bool = False,
    ) -> list[AnomalyEvent]:
        """One decided window starting at t: its badness, its severity decision (or None).

        A `decisive` window with a decision opens the anomaly by itself (outside a cooldown).
        """
        if self.last_ns is not None and t_ns <= self.last_ns:
            return []
        events = self.tick(t_ns)
        self.last_ns = t_ns
        if self.open is not None:
            if decision is not None or score >= self.config.sustain_score:
                events += self._sustain(t_ns, decision, exemplars)
            return events
        self.recent = [
            r for r in self.recent if r.t_ns > t_ns - self.config.open_n * self.window_ns
        ]
        self.recent = (self.recent + [_Recent(t_ns, decision)])[-self.config.open_n :]
        hits = [(r.t_ns, r.decision) for r in self.recent if r.decision is not None]
        if t_ns < self.cooldown_until_ns:
            return events
        if len(hits) >= self.config.open_k:
            events.append(self._open(t_ns, hits, exemplars))
        elif decisive and decision is not None:  # it alone opened it: it is the start
            events.append(self._open(t_ns, [(t_ns, decision)], exemplars))
        return events

    def tick(self, now_ns: int) -> list[AnomalyEvent]:
        """Let time pass: resolve an open anomaly whose quiet period has ended."""
        a = self.open
        if a is None or now_ns - a.last_anomalous_ns < self.config.quiet_period_s * 1e9:
            return []
        resolved_ns = a.last_anomalous_ns + int(self.config.quiet_period_s * 1e9)
        flap_start = resolved_ns - self.config.flap_window_s * 1e9
        self.opens_ns = [o for o in self.opens_ns if o >= flap_start]
        factor = 2 ** max(len(self.opens_ns) - 1, 0)
        cooldown = min(self.config.cooldown_s * factor, self.config.max_cooldown_s)
        self.cooldown_until_ns = resolved_ns + int(cooldown * 1e9)
        self.open, self.recent = None, []
        done = replace(a, resolved_ns=resolved_ns)
        return [AnomalyEvent("resolved", max(now_ns, resolved_ns), done)]

    def _open(
        self, t_ns: int, hits: list[tuple[int, SeverityDecision]], exemplars: Sequence[str]
    ) -> AnomalyEvent:
        trigger = functools.reduce(_stronger, (d for _, d in hits))
        peak_ns, peak = max(hits, key=lambda h: h[1].score)
        opened = hits[0][0]
        self.open = Anomaly(
            anomaly_id=f"{self.key}@{opened}",
            key=self.key,
            opened_ns=opened,
            last_anomalous_ns=t_ns,
            peak_score=peak.score,
            peak_ns=peak_ns,
            severity=trigger.severity,
            trigger=trigger,
            exemplars=tuple(dict.fromkeys(exemplars))[: self.config.max_exemplars],
        )
        self.opens_ns.append(opened)
        self.recent = []
        return AnomalyEvent("opened", t_ns, self.open)

    def _sustain(
        self, t_ns: int, decision: SeverityDecision | None, exemplars: Sequence[str]
    ) -> list[AnomalyEvent]:
        a = self.open
        assert a is not None
        new = replace(a, last_anomalous_ns=t_ns)
        if decision is not None:
            trigger = _stronger(a.trigger, decision)
            new = replace(new, trigger=trigger, severity=trigger.severity)
            if decision.score > a.peak_score:
                new = replace(new, peak_score=decision.score, peak_ns=t_ns)
        room = self.config.max_exemplars - len(a.exemplars)
        added = [e for e in dict.fromkeys(exemplars) if e not in a.exemplars][: max(room, 0)]
        new = replace(new, exemplars=a.exemplars + tuple(added))
        self.open = new
        changed = (new.severity, new.peak_score, new.exemplars) != (
            a.severity,
            a.peak_score,
            a.exemplars,
        )
        return [AnomalyEvent("updated", t_ns, new)] if changed else []

    # -- persistence --

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "open": None if self.open is None else self.open.to_dict(),
            "recent": [
                [r.t_ns, None if r.decision is None else _decision_dict(r.decision)]
                for r in self.recent
            ],
            "opens_ns": list(self.opens_ns),
            "cooldown_until_ns": self.cooldown_until_ns,
            "last_ns": self.last_ns,
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], config: LifecycleConfig, window_s: int
    ) -> AnomalyTracker:
        t = cls(state["key"], config, window_s)
        t.open = None if state["open"] is None else Anomaly.from_dict(state["open"])
        t.recent = [
            _Recent(ts, None if d is None else _decision_from(d)) for ts, d in state["recent"]
        ]
        t.opens_ns = list(state["opens_ns"])
        t.cooldown_until_ns = int(state["cooldown_until_ns"])
        t.last_ns = state["last_ns"]
        return t


def _decision_dict(d: SeverityDecision) -> dict[str, Any]:
    out = asdict(d)
    out["severity"] = int(d.severity)
    return out


def _decision_from(d: Mapping[str, Any]) -> SeverityDecision:
    return SeverityDecision(**{**d, "severity": Severity(d["severity"])})
