"""Anomaly lifecycle: open k-of-n, peak updates, quiet-period resolve, cooldown, flaps, resume."""

from __future__ import annotations

import json

import numpy as np

from detectors.config import LifecycleConfig
from detectors.lifecycle import AnomalyEvent, AnomalyTracker
from detectors.severity import Severity, SeverityDecision

M = 60 * 1_000_000_000  # one window
CFG = LifecycleConfig(open_k=3, open_n=5)  # open 3 of 5, sustain 2.0, quiet 10 min, cooldown 30 min


def hit(score: float = 5.0, sev: Severity = Severity.SEV3) -> SeverityDecision:
    return SeverityDecision(sev, score, 5.0, 95.0, "floor", 99.5)


def feed(
    tracker: AnomalyTracker, t_min: int, score: float, sev: Severity | None = None
) -> list[AnomalyEvent]:
    decision = hit(score, sev) if sev is not None else None
    return tracker.observe(t_min * M, score, decision, exemplars=[f"trace{t_min}"])


def test_opens_on_k_of_n_windows_and_keeps_the_trigger() -> None:
    tr = AnomalyTracker("api:get", CFG, 60)
    assert feed(tr, 0, 5.0, Severity.SEV4) == []
    assert feed(tr, 1, 0.5) == []
    assert feed(tr, 2, 6.5, Severity.SEV2) == []
    (ev,) = feed(tr, 3, 5.5, Severity.SEV3)
    a = ev.anomaly
    assert ev.kind == "opened" and a.anomaly_id == f"api:get@{0}" and a.opened_ns == 0
    assert (a.severity, a.peak_score, a.peak_ns) == (Severity.SEV2, 6.5, 2 * M)
    assert a.trigger.threshold == 5.0 and a.trigger.percentile == 95.0
    assert a.exemplars == ("trace3",) and tr.state == "open"


def test_a_decisive_window_opens_at_once_but_not_in_a_cooldown() -> None:
    tr = AnomalyTracker("cpu{host=a}", CFG, 60)
    feed(tr, 0, 5.0, Severity.SEV4)
    (ev,) = tr.observe(1 * M, 3.0, hit(3.0, Severity.SEV3), decisive=True)
    # it opened the anomaly by itself, so it is the start (the SEV4 before it is noise)
    assert ev.kind == "opened" and ev.anomaly.opened_ns == 1 * M
    assert ev.anomaly.severity == Severity.SEV3
    assert tr.observe(2 * M, 0.0, None, decisive=True) == []  # no decision: nothing to open
    tr2 = AnomalyTracker("cpu{host=b}", CFG, 60)
    assert tr2.observe(0, 0.0, None, decisive=True) == []
    (ev,) = tr2.observe(1 * M, 9.0, hit(9.0), decisive=True)
    resolved = tr2.tick(ev.t_ns + int(CFG.quiet_period_s * 1e9))
    assert [e.kind for e in resolved] == ["resolved"] and tr2.state == "cooldown"
    in_cooldown = resolved[0].t_ns + M
    assert tr2.observe(in_cooldown, 9.0, hit(9.0), decisive=True) == []
    tr3 = AnomalyTracker("cpu{host=c}", CFG, 60)  # enough hits anyway: the k-of-n start
    feed(tr3, 0, 5.0, Severity.SEV4)
    feed(tr3, 1, 5.0, Severity.SEV4)
    (ev,) = tr3.observe(2 * M, 9.0, hit(9.0, Severity.SEV2), decisive=True)
    assert ev.anomaly.opened_ns == 0 and ev.anomaly.severity == Severity.SEV2


def test_missing_windows_count_as_quiet() -> None:
    tr = AnomalyTracker("k", CFG, 60)
    feed(tr, 0, 5.0, Severity.SEV3)
    feed(tr, 2, 5.0, Severity.SEV3)
    assert feed(tr, 7, 5.0, Severity.SEV3) == []  # the first two are older than 5 windows
    assert tr.open is None


def test_updates_only_when_the_peak_or_exemplars_change() -> None:
    tr = AnomalyTracker("k", CFG, 60)
    for t in range(3):
        tr.observe(t * M, 5.0, hit(5.0))
    assert tr.observe(3 * M, 5.0, hit(5.0)) == []  # nothing new
    (up,) = tr.observe(4 * M, 9.0, hit(9.0, Severity.SEV1), exemplars=["slow"])
    assert up.kind == "updated" and up.anomaly.severity is Severity.SEV1
    assert (up.anomaly.peak_score, up.anomaly.exemplars) == (9.0, ("slow",))
    (up,) = tr.observe(5 * M, 6.0, hit(6.0, Severity.SEV3), exemplars=["slow", "other"])
    assert up.anomaly.severity is Severity.SEV1 and up.anomaly.exemplars == ("slow", "other")


def test_exemplars_are_bounded() -> None:
    tr = AnomalyTracker("k", LifecycleConfig(open_k=3, open_n=5, max_exemplars=2), 60)
    for t in range(10):
        feed(tr, t, 5.0, Severity.SEV3)
    assert tr.open is not None and tr.open.exemplars == ("trace2", "trace3")


def test_hysteresis_and_resolve_after_the_quiet_period() -> None:
    tr = AnomalyTracker("k", CFG, 60)
    for t in range(3):
        feed(tr, t, 5.0, Severity.SEV3)
    for t in range(3, 20):  # below any severity but above sustain_score: stays open
        assert tr.observe(t * M, 2.5, None) == []
    for t in range(20, 29):
        assert tr.observe(t * M, 1.0, None) == []
    (ev,) = tr.observe(29 * M, 1.0, None)  # 10 minutes after the last sustaining window (19)
    assert ev.kind == "resolved" and ev.anomaly.resolved_ns == 29 * M
    assert ev.anomaly.last_anomalous_ns == 19 * M and tr.state == "cooldown"


def test_tick_resolves_a_key_that_went_silent() -> None:
    tr = AnomalyTracker("k", CFG, 60)
    for t in range(3):
        feed(tr, t, 5.0, Severity.SEV3)
    assert tr.tick(11 * M) == []
    (ev,) = tr.tick(500 * M)
    assert ev.anomaly.resolved_ns == 12 * M and ev.t_ns == 500 * M  # deterministic resolve time


def test_no_reopen_within_the_cooldown() -> None:
    tr = AnomalyTracker("k", CFG, 60)
    for t in range(3):
        feed(tr, t, 5.0, Severity.SEV3)
    tr.tick(12 * M)  # resolved at 12, cooling down until 42
    assert all(feed(tr, t, 5.0, Severity.SEV3) == [] for t in range(13, 42))
    (ev,) = feed(tr, 42, 5.0, Severity.SEV3)
    assert ev.kind == "opened" and ev.anomaly.opened_ns == 38 * M


def flapping_opens(config: LifecycleConfig, hours: int = 12) -> int:
    """A key that is anomalous 5 minutes of every 20, for hours."""
    tr = AnomalyTracker("k", config, 60)
    opens = 0
    for t in range(hours * 60):
        bad = t % 20 < 5
        events = feed(tr, t, 6.0 if bad else 0.0, Severity.SEV3 if bad else None)
        opens += sum(e.kind == "opened" for e in events)
    return opens


def test_flapping_is_damped() -> None:
    undamped = flapping_opens(LifecycleConfig(cooldown_s=0, max_cooldown_s=0))
    plain_cooldown = flapping_opens(LifecycleConfig(flap_window_s=0))
    damped = flapping_opens(CFG)
    assert undamped == 36  # every burst re-opens
    assert plain_cooldown == 18  # every other burst: the cooldown alone halves it
    assert damped <= 6  # doubling cooldowns: one open every two hours at most


def events_of(
    tracker_steps: list[tuple[int, float, Severity | None]], restart_every: int
) -> list[dict[str, object]]:
    """Run the steps, restarting from serialized state every `restart_every` steps (0: never)."""
    tr = AnomalyTracker("k", CFG, 60)
    out: list[dict[str, object]] = []
    for i, (t, score, sev) in enumerate(tracker_steps):
        if restart_every and i % restart_every == 0:
            state = json.loads(json.dumps(tr.to_dict()))
            tr = AnomalyTracker.from_dict(state, CFG, 60)
            for j in range(max(0, i - 3), i):  # at-least-once delivery: replay a few windows
                t_old, s_old, sev_old = tracker_steps[j]
                assert feed(tr, t_old, s_old, sev_old) == []
        out += [
            {"kind": e.kind, "t": e.t_ns, **e.anomaly.to_dict()} for e in feed(tr, t, score, sev)
        ]
    return out


def test_resume_from_serialized_state_without_duplicates() -> None:
    rng = np.random.default_rng(0)
    steps: list[tuple[int, float, Severity | None]] = []
    for t in range(2000):
        bad = (t // 90) % 3 == 0 and rng.random() < 0.8
        score = float(rng.uniform(3, 9)) if bad else float(rng.uniform(0, 2.5))
        steps.append((t, score, Severity(int(rng.integers(1, 6))) if bad else None))
    straight = events_of(steps, 0)
    assert sum(e["kind"] == "opened" for e in straight) >= 5
    for every in (1, 7, 50):
        assert events_of(steps, every) == straight
