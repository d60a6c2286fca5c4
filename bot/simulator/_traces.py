"""Vectorised trace generation: all requests of one type in one minute, node by node.

Each request is one trace. Draws are made for every (node, request) pair at once;
durations are summed bottom-up, start times laid out top-down, then timeouts
cancel what their callers abandoned and failures propagate to the callers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.simulator.columns import SpanStatus
from bot.simulator.incidents import GroundTruth, intensity
from bot.simulator.scenarios import OpEffect
from bot.simulator.topology import CallTree, Topology

__all__ = ["ActiveEffect", "TreePlan", "TreeSpans", "generate_tree"]

_STALL_SIGMA = 0.3
_MIN_SELF_NS = 1_000
_NO_TIMEOUT = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class TreePlan:
    """Per-node parameters of one call tree as arrays (built once per simulator)."""

    tree: CallTree
    log_median: np.ndarray  # ln(median self time in ms)
    sigma: np.ndarray
    presence: np.ndarray
    error_prob: np.ndarray
    timeout_ns: np.ndarray  # _NO_TIMEOUT where none

    @classmethod
    def build(cls, topology: Topology, tree: CallTree) -> TreePlan:
        ops = [topology.operations[i] for i in tree.ops]
        timeouts = [int(op.timeout_ms * 1e6) if op.timeout_ms else _NO_TIMEOUT for op in ops]
        return cls(tree, np.log([op.median_ms for op in ops]), np.array([op.sigma for op in ops]),
                   np.array([op.presence for op in ops]), np.array([op.error_prob for op in ops]),
                   np.array(timeouts, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class ActiveEffect:
    """An op effect of an incident, resolved to a node of one tree."""

    node: int
    effect: OpEffect
    incident: GroundTruth


@dataclass(slots=True)
class TreeSpans:
    """Node-major (nodes x requests) arrays of one tree; `present` says which spans exist."""

    present: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    status: np.ndarray


@dataclass(slots=True)
class _Draws:
    self_ns: np.ndarray  # nodes x requests, int64
    stall_ns: dict[int, np.ndarray]
    present: np.ndarray  # bool
    status: np.ndarray  # int8


def generate_tree(plan: TreePlan, starts: np.ndarray, log_shift: np.ndarray,
                  rng: np.random.Generator, effects: list[ActiveEffect],
                  effect_rng: np.random.Generator | None) -> TreeSpans:
    """Spans of len(starts) requests of `plan`'s tree, roots starting at `starts`.

    `log_shift` (per request) is added to every ln(median): the load drift. Incident
    effects draw only from `effect_rng`, so requests they do not touch come out
    exactly as they would without the incident.
    """
    draws = _base_draws(plan, starts.size, log_shift, rng)
    if effects:
        if effect_rng is None:
            raise ValueError("active effects need an effect_rng")
        for active in effects:
            _apply(active, plan, starts, draws, effect_rng)
    _presence(plan, draws.present)
    duration, timed_out = _durations(plan, draws)
    start = _layout(plan, starts, draws, duration)
    if timed_out:
        _cancel_abandoned(plan, start, duration, draws)
    _propagate_failures(plan, draws)
    return TreeSpans(draws.present, start, duration, draws.status)


def _base_draws(plan: TreePlan, n: int, log_shift: np.ndarray,
                rng: np.random.Generator) -> _Draws:
    m = len(plan.tree.ops)
    z = rng.standard_normal((m, n))
    self_ms = np.exp(plan.log_median[:, None] + log_shift[None, :] + plan.sigma[:, None] * z)
    self_ns = np.maximum((self_ms * 1e6).astype(np.int64), _MIN_SELF_NS)
    status = np.where(rng.random((m, n)) < plan.error_prob[:, None],
                      np.int8(SpanStatus.ERROR), np.int8(SpanStatus.OK)).astype(np.int8)
    present = rng.random((m, n)) < plan.presence[:, None]
    return _Draws(self_ns, {}, present, status)


def _apply(active: ActiveEffect, plan: TreePlan, starts: np.ndarray, draws: _Draws,
           rng: np.random.Generator) -> None:
    """Change one node's draws by an incident effect, scaled by its intensity per request."""
    e, node, mag = active.effect, active.node, active.incident.magnitude
    level = intensity(active.incident, starts)
    n = starts.size
    if e.latency_factor != 1.0 or e.jitter_sigma:
        factor = np.maximum(1.0 + (e.latency_factor - 1.0) * level * mag, 0.05)
        jitter = np.exp(e.jitter_sigma * level * mag * rng.standard_normal(n))
        scaled = draws.self_ns[node] * factor * jitter
        draws.self_ns[node] = np.maximum(scaled.astype(np.int64), _MIN_SELF_NS)
    if e.stall_prob and e.stall_ms:
        stalls = rng.random(n) < np.minimum(e.stall_prob * level, 1.0)
        size = e.stall_ms * 1e6 * mag * np.exp(_STALL_SIGMA * rng.standard_normal(n))
        extra = np.where(stalls, size, 0.0).astype(np.int64)
        draws.stall_ns[node] = draws.stall_ns.get(node, 0) + extra
    if e.error_prob:
        fails = rng.random(n) < np.minimum(e.error_prob * level * mag, 1.0)
        draws.status[node] = np.where(fails, np.int8(SpanStatus.ERROR), draws.status[node])
    if e.presence is not None:
        base = plan.presence[node]
        redrawn = rng.random(n) < base + (e.presence - base) * level
        draws.present[node] = np.where(level > 0, redrawn, draws.present[node])


def _presence(plan: TreePlan, present: np.ndarray) -> None:
    """A span exists only if its parent does; the root always does."""
    present[0] = True
    for node, up in enumerate(plan.tree.parent):
        if up >= 0:
            present[node] &= present[up]


def _durations(plan: TreePlan, draws: _Draws) -> tuple[np.ndarray, bool]:
    """Self time + stall + children, bottom-up; a span past its timeout is cut and flagged."""
    duration = draws.self_ns.copy()
    for node, stall in draws.stall_ns.items():
        duration[node] += stall
    timed_out = False
    for node in range(len(plan.tree.ops) - 1, -1, -1):
        for child in plan.tree.children[node]:
            duration[node] += np.where(draws.present[child], duration[child], 0)
        limit = plan.timeout_ns[node]
        if limit != _NO_TIMEOUT:
            over = duration[node] > limit
            if over.any():
                timed_out = True
                duration[node] = np.where(over, limit, duration[node])
                draws.status[node] = np.where(over, np.int8(SpanStatus.TIMEOUT), draws.status[node])
    return duration, timed_out


def _layout(plan: TreePlan, starts: np.ndarray, draws: _Draws, duration: np.ndarray) -> np.ndarray:
    """Children run one after another; self time is spread evenly around them (stall first)."""
    start = np.empty_like(duration)
    start[0] = starts
    for node, kids in enumerate(plan.tree.children):
        if not kids:
            continue
        gap = draws.self_ns[node] // (len(kids) + 1)
        cursor = start[node] + gap + draws.stall_ns.get(node, 0)
        for child in kids:
            start[child] = cursor
            cursor = cursor + np.where(draws.present[child], duration[child], 0) + gap
    return start


def _cancel_abandoned(plan: TreePlan, start: np.ndarray, duration: np.ndarray,
                      draws: _Draws) -> None:
    """Cut every span at its parent's end; ones that had not begun never happen."""
    for node, up in enumerate(plan.tree.parent):
        if up < 0:
            continue
        limit = start[up] + duration[up]
        draws.present[node] &= start[node] < limit
        over = draws.present[node] & (start[node] + duration[node] > limit)
        duration[node] = np.where(over, limit - start[node], duration[node])
        draws.status[node] = np.where(over, np.int8(SpanStatus.CANCELLED), draws.status[node])


def _propagate_failures(plan: TreePlan, draws: _Draws) -> None:
    ok = np.int8(SpanStatus.OK)
    for node in range(len(plan.tree.ops) - 1, 0, -1):
        up = plan.tree.parent[node]
        failed = draws.present[node] & (draws.status[node] != ok) & (draws.status[up] == ok)
        draws.status[up] = np.where(failed, np.int8(SpanStatus.ERROR), draws.status[up])
