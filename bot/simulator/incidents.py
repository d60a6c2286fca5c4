"""Injected incidents and their ground truth: what broke, where, and when.

A `GroundTruth` both drives the simulator and is the answer key benchmarks
score detection and diagnosis against; `schedule_incidents` places them at
seeded, non-overlapping times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.simulator.errors import ScheduleError
from bot.simulator.scenarios import SCENARIOS, Profile, Scenario, ScenarioSpec
from bot.simulator.topology import DEFAULT_TOPOLOGY, Topology
from bot.simulator.traffic import MINUTE_NS

__all__ = [
    "GroundTruth",
    "ground_truth_json",
    "intensity",
    "load_ground_truth",
    "make_incident",
    "schedule_incidents",
]

_DECAY_RATE = 4.0  # a decaying incident keeps ~2% of its strength at the end of its window


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """One injected incident. `magnitude` scales its effects (1 = as specified)."""

    scenario: Scenario
    root_service: str
    root_operation: str  # span key, e.g. "kx-exchange:pg-pool.connect"
    start_ns: int
    end_ns: int
    magnitude: float
    affected_keys: tuple[str, ...]

    @property
    def spec(self) -> ScenarioSpec:
        return SCENARIOS[self.scenario]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.value,
            "root_service": self.root_service,
            "root_operation": self.root_operation,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "magnitude": self.magnitude,
            "affected_keys": list(self.affected_keys),
            "signals": [s.value for s in self.spec.signals],
            "description": self.spec.description,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroundTruth:
        return cls(Scenario(d["scenario"]), str(d["root_service"]), str(d["root_operation"]),
                   int(d["start_ns"]), int(d["end_ns"]), float(d["magnitude"]),
                   tuple(d["affected_keys"]))


def make_incident(scenario: Scenario | str, start_ns: int, duration_ns: int | None = None,
                  magnitude: float = 1.0, topology: Topology = DEFAULT_TOPOLOGY) -> GroundTruth:
    """An incident of `scenario` over [start_ns, start_ns + duration_ns)."""
    try:
        spec = SCENARIOS[Scenario(scenario)]
    except ValueError:
        known = ", ".join(s.value for s in Scenario)
        raise ScheduleError(f"unknown scenario {scenario!r}; choose one of: {known}") from None
    if duration_ns is None:
        duration_ns = int(spec.default_minutes * MINUTE_NS)
    if duration_ns <= 0 or magnitude <= 0:
        raise ScheduleError(f"{spec.scenario}: duration and magnitude must be positive")
    return GroundTruth(spec.scenario, spec.root_service, spec.root_key, int(start_ns),
                       int(start_ns) + int(duration_ns), float(magnitude),
                       _affected(spec, topology))


def _affected(spec: ScenarioSpec, topology: Topology) -> tuple[str, ...]:
    keys = {spec.root_key} | {e.key for e in spec.effects}
    for key in list(keys):
        keys.update(topology.ancestors(key))
    return tuple(k for k in topology.keys if k in keys)


def intensity(incident: GroundTruth, t_ns: np.ndarray) -> np.ndarray:
    """Strength in [0, 1] of the incident at each time; zero outside its window."""
    t = np.asarray(t_ns, dtype=np.int64)
    span = float(incident.end_ns - incident.start_ns)
    frac = (t - incident.start_ns) / span
    inside = (t >= incident.start_ns) & (t < incident.end_ns)
    profile = incident.spec.profile
    if profile is Profile.RAMP:
        level = np.clip(frac, 0.0, 1.0)
    elif profile is Profile.DECAY:
        level = np.exp(-_DECAY_RATE * np.clip(frac, 0.0, 1.0))
    else:
        level = np.ones(t.shape)
    return np.where(inside, level, 0.0)


def schedule_incidents(seed: int, start_ns: int, duration_ns: int, count: int,
                       families: Sequence[Scenario | str] | None = None, *,
                       min_gap_ns: int = 30 * MINUTE_NS,
                       magnitude_range: tuple[float, float] = (0.8, 1.5),
                       topology: Topology = DEFAULT_TOPOLOGY) -> list[GroundTruth]:
    """Place `count` incidents in [start, start + duration), apart by at least `min_gap_ns`.

    Families are used in turn (shuffled), so `count >= len(families)` covers each.
    A persistent family (deploy regression) is placed last and lasts to the end.
    `count=0` is the clean mode: no incidents.
    """
    if count <= 0:
        return []
    rng = np.random.default_rng([seed, 0x5C4ED])
    pool = [Scenario(f) for f in (families or list(Scenario))]
    kinds = [pool[i % len(pool)] for i in range(count)]
    kinds = [kinds[i] for i in rng.permutation(count)]
    persistent = [k for k in kinds if SCENARIOS[k].persistent]
    if len(persistent) > 1:
        raise ScheduleError(f"{len(persistent)} persistent incidents ({persistent[0]}) cannot "
                            "share one horizon; lower count or drop that family")
    kinds = [k for k in kinds if not SCENARIOS[k].persistent] + persistent
    lengths = [int(SCENARIOS[k].default_minutes * MINUTE_NS * rng.uniform(0.75, 1.5)) // MINUTE_NS
               * MINUTE_NS for k in kinds]
    starts = _place(rng, start_ns, duration_ns, lengths, min_gap_ns)
    low, high = magnitude_range
    out = []
    for kind, begin, length in zip(kinds, starts, lengths, strict=True):
        if SCENARIOS[kind].persistent:
            length = start_ns + duration_ns - begin
        out.append(make_incident(kind, begin, length, round(float(rng.uniform(low, high)), 3),
                                 topology))
    return out


def _place(rng: np.random.Generator, start_ns: int, duration_ns: int, lengths: list[int],
           min_gap_ns: int) -> list[int]:
    """Start of each window, in order, with random slack shared among the gaps."""
    slack = duration_ns - sum(lengths) - (len(lengths) + 1) * min_gap_ns
    if slack < 0:
        need = (duration_ns - slack) / MINUTE_NS
        raise ScheduleError(f"{len(lengths)} incidents need {need:.0f} minutes with gaps but the "
                            f"horizon is {duration_ns / MINUTE_NS:.0f}; lengthen it or lower count")
    cuts = np.sort(rng.uniform(0.0, 1.0, len(lengths)))
    shares = np.diff(np.concatenate([[0.0], cuts]))
    extra = (shares * slack).astype(np.int64) // MINUTE_NS * MINUTE_NS
    starts, cursor = [], start_ns + min_gap_ns
    for length, pad in zip(lengths, extra, strict=True):
        cursor += int(pad)
        starts.append(cursor)
        cursor += length + min_gap_ns
    return starts


def ground_truth_json(incidents: Iterable[GroundTruth]) -> str:
    """The answer key benchmarks load: a JSON list of incidents, in time order."""
    ordered = sorted(incidents, key=lambda g: (g.start_ns, g.scenario.value))
    return json.dumps([g.to_dict() for g in ordered], indent=2)


def load_ground_truth(text: str) -> list[GroundTruth]:
    return [GroundTruth.from_dict(d) for d in json.loads(text)]
