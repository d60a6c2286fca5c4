"""The simulated platform compiled for generation: spans block by block, load minute by minute.

A block (an hour by default) draws from its own generator (seed, block), and
incident effects from a second one, so traffic an incident does not touch is the
same as in a clean run. Retries of a retry storm are extra requests, drawn apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.simulator._traces import ActiveEffect, TreePlan, TreeSpans, generate_tree
from bot.simulator.columns import KeyTable, SpanColumns
from bot.simulator.incidents import GroundTruth, intensity
from bot.simulator.metrics import ServiceLoad
from bot.simulator.topology import Topology
from bot.simulator.traffic import MINUTE_NS, TrafficModel
from bot.spans import SpanKind

__all__ = ["Block", "Platform"]

_EFFECT_STREAM = 1


@dataclass(slots=True)
class Block:
    """Spans of requests starting in one block; rows grouped by trace, traces by start time."""

    first_minute: int
    spans: SpanColumns
    trace_start: np.ndarray  # int64 per trace, ascending

    def minutes(self, lo: int, hi: int) -> SpanColumns:
        """Spans of the requests that start in minutes [lo, hi) (absolute minute numbers)."""
        t_lo, t_hi = np.searchsorted(self.trace_start, [lo * MINUTE_NS, hi * MINUTE_NS])
        s_lo, s_hi = np.searchsorted(self.spans.trace_row, [t_lo, t_hi])
        c = self.spans
        rows = slice(int(s_lo), int(s_hi))
        return SpanColumns(c.table, c.key_idx[rows], c.trace_row[rows] - t_lo,
                           c.trace_hi[t_lo:t_hi], c.trace_lo[t_lo:t_hi], c.span_id[rows],
                           c.parent_id[rows], c.start_ns[rows], c.duration_ns[rows],
                           c.status[rows])


class Platform:
    """Topology, traffic and incidents, resolved once into arrays."""

    def __init__(self, seed: int, topology: Topology, traffic: TrafficModel,
                 incidents: Sequence[GroundTruth], block_minutes: int) -> None:
        self.seed = seed
        self.topology = topology
        self.traffic = traffic
        self.incidents = tuple(incidents)
        self.block_minutes = block_minutes
        self.table = KeyTable.from_topology(topology)
        self.plans = [TreePlan.build(topology, tree) for tree in topology.trees]
        shares = np.array([e.share for e in topology.entries])
        self.shares = shares / shares.sum()
        self.services = topology.services
        self._svc_index = {s.name: i for i, s in enumerate(self.services)}
        self.calls = np.array([[topology.expected_server_spans(t).get(s.name, 0.0)
                                for s in self.services] for t in topology.trees])
        self.server_service = np.array(
            [self._svc_index[op.service] if op.kind in (SpanKind.SERVER, SpanKind.CONSUMER)
             else -1 for op in topology.operations], dtype=np.int64)
        self._effects = [self._resolve(inc) for inc in self.incidents]

    def _resolve(self, incident: GroundTruth) -> list[list[ActiveEffect]]:
        """Per tree, the incident's effects on that tree's nodes."""
        out: list[list[ActiveEffect]] = []
        for plan in self.plans:
            found = []
            for effect in incident.spec.effects:
                target = self.topology.index(effect.key)
                found += [ActiveEffect(node, effect, incident)
                          for node, op in enumerate(plan.tree.ops) if op == target]
            out.append(found)
        return out

    def active(self, t0: int, t1: int) -> list[int]:
        """Incidents whose window overlaps [t0, t1)."""
        return [i for i, inc in enumerate(self.incidents) if inc.start_ns < t1 and inc.end_ns > t0]

    def rate_factors(self, active: list[int], t_ns: np.ndarray) -> np.ndarray:
        """Traffic multiplier per (time, tree) from retry-storm-like incidents."""
        factors = np.ones((t_ns.size, len(self.plans)))
        for i in active:
            inc = self.incidents[i]
            if inc.spec.rate_factor == 1.0:
                continue
            level = intensity(inc, t_ns) * inc.magnitude
            root = self.topology.index(inc.spec.root_key)
            for tree_i, plan in enumerate(self.plans):
                if root in plan.tree.ops:
                    factors[:, tree_i] *= 1.0 + (inc.spec.rate_factor - 1.0) * level
        return factors

    def service_load(self, minute: int) -> ServiceLoad:
        """True request rate and incident CPU/memory of each service in `minute`."""
        t0 = minute * MINUTE_NS
        mid = np.array([t0 + MINUTE_NS // 2])
        active = self.active(t0, t0 + MINUTE_NS)
        load = float(self.traffic.load(mid)[0])
        factors = self.rate_factors(active, mid)[0]
        rps = self.traffic.base_rps * load * (self.shares * factors) @ self.calls
        cpu = np.zeros(len(self.services))
        memory = np.zeros(len(self.services))
        for i in active:
            inc = self.incidents[i]
            level = float(intensity(inc, mid)[0]) * inc.magnitude
            for m in inc.spec.metrics:
                cpu[self._svc_index[m.service]] += m.cpu_add * level
                memory[self._svc_index[m.service]] += m.memory_add_mb * level
        return ServiceLoad(rps, load, cpu, memory)

    def block(self, index: int) -> Block:
        """Every span of block `index` (minutes index*B .. index*B + B - 1)."""
        first = index * self.block_minutes
        t0 = first * MINUTE_NS
        rng = np.random.default_rng([self.seed, index])
        active = self.active(t0, t0 + self.block_minutes * MINUTE_NS)
        erng = np.random.default_rng([self.seed, index, _EFFECT_STREAM]) if active else None
        mids = t0 + np.arange(self.block_minutes, dtype=np.int64) * MINUTE_NS + MINUTE_NS // 2
        load = self.traffic.load(mids)
        lam = self.traffic.sampled_per_minute * load[:, None] * self.shares[None, :]
        counts = rng.poisson(lam)
        sources = [(rng, counts)]
        if erng is not None:
            extra = lam * (self.rate_factors(active, mids) - 1.0)
            if extra.any():  # retries: extra requests, so the base traffic is unchanged
                sources.append((erng, erng.poisson(extra)))
        parts: list[SpanColumns] = []
        starts: list[np.ndarray] = []
        for source, per_minute in sources:
            for tree_i, plan in enumerate(self.plans):
                effects = [a for i in active for a in self._effects[i][tree_i]]
                part = self._requests(plan, first, per_minute[:, tree_i], load, source,
                                      effects, erng)
                if part is not None:
                    parts.append(part[0])
                    starts.append(part[1])
        return _ordered(first, self.table, parts, starts)

    def _requests(self, plan: TreePlan, first: int, per_minute: np.ndarray, load: np.ndarray,
                  rng: np.random.Generator, effects: list[ActiveEffect],
                  erng: np.random.Generator | None) -> tuple[SpanColumns, np.ndarray] | None:
        n = int(per_minute.sum())
        if n == 0:
            return None
        minute = np.repeat(np.arange(per_minute.size), per_minute)
        starts = np.sort((first + minute) * MINUTE_NS + rng.integers(0, MINUTE_NS, n))
        shift = self.traffic.load_sensitivity * np.log(load[starts // MINUTE_NS - first])
        spans = generate_tree(plan, starts, shift, rng, effects, erng)
        return self._columns(plan, spans, rng), starts

    def _columns(self, plan: TreePlan, spans: TreeSpans, rng: np.random.Generator) -> SpanColumns:
        m, n = spans.start.shape
        ids = rng.integers(1, 2**64, size=(m, n), dtype=np.uint64)
        trace = rng.integers(1, 2**64, size=(2, n), dtype=np.uint64)
        parents = ids[np.maximum(np.array(plan.tree.parent), 0)]
        parents[0] = 0
        mask = spans.present.ravel()
        ops = np.repeat(np.array(plan.tree.ops, dtype=np.int32), n)[mask]
        rows = np.tile(np.arange(n, dtype=np.int64), m)[mask]
        return SpanColumns(self.table, ops, rows, trace[0], trace[1], ids.ravel()[mask],
                           parents.ravel()[mask], spans.start.ravel()[mask],
                           spans.duration.ravel()[mask], spans.status.ravel()[mask])


def _ordered(first: int, table: KeyTable, parts: list[SpanColumns],
             starts: list[np.ndarray]) -> Block:
    """Traces renumbered in start order; span rows grouped by trace (parents first)."""
    cols = SpanColumns.concat(table, parts)
    if not parts:
        return Block(first, cols, np.zeros(0, np.int64))
    trace_start = np.concatenate(starts)
    order = np.argsort(trace_start, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    trace_row = rank[cols.trace_row]
    rows = np.argsort(trace_row, kind="stable")
    spans = SpanColumns(table, cols.key_idx[rows], trace_row[rows], cols.trace_hi[order],
                        cols.trace_lo[order], cols.span_id[rows], cols.parent_id[rows],
                        cols.start_ns[rows], cols.duration_ns[rows], cols.status[rows])
    return Block(first, spans, trace_start[order])
