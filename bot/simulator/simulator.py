"""The seeded simulator: spans and metrics for any simulated time range, and replay in chunks.

Spans are generated a block (an hour) at a time and cut into the chunks asked
for, so output does not depend on the chunk size. No wall clock is read: time
comes in as arguments, in integer nanoseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from bot.simulator._platform import Block, Platform
from bot.simulator.columns import KeyTable, SpanColumns
from bot.simulator.errors import SimulationRangeError
from bot.simulator.incidents import GroundTruth
from bot.simulator.metrics import MetricSample, service_metrics
from bot.simulator.topology import DEFAULT_TOPOLOGY, Topology
from bot.simulator.traffic import MINUTE_NS, TrafficModel
from bot.spans import Span, SpanBatch

__all__ = ["SimChunk", "Simulator"]

_METRIC_STREAM = 2


@dataclass(slots=True)
class SimChunk:
    """Everything the simulated platform produced in [start_ns, end_ns)."""

    start_ns: int
    end_ns: int
    spans: SpanColumns
    metrics: list[MetricSample]

    def to_batch(self) -> SpanBatch:
        """The chunk's spans as a `SpanBatch` (built on each call)."""
        return self.spans.to_batch()


class Simulator:
    """Deterministic traffic of `topology` under `traffic`, with `incidents` injected.

    Same seed, parameters and incidents give identical output; spans an incident
    does not touch are identical to a run without it.
    """

    def __init__(self, seed: int = 0, *, topology: Topology = DEFAULT_TOPOLOGY,
                 traffic: TrafficModel | None = None, incidents: Sequence[GroundTruth] = (),
                 block_minutes: int = 60) -> None:
        if block_minutes <= 0:
            raise SimulationRangeError(f"block_minutes must be positive, got {block_minutes}")
        self._platform = Platform(int(seed), topology, traffic or TrafficModel(), incidents,
                                  block_minutes)
        self._cached: Block | None = None

    @property
    def seed(self) -> int:
        return self._platform.seed

    @property
    def topology(self) -> Topology:
        return self._platform.topology

    @property
    def traffic(self) -> TrafficModel:
        return self._platform.traffic

    @property
    def incidents(self) -> tuple[GroundTruth, ...]:
        return self._platform.incidents

    @property
    def table(self) -> KeyTable:
        return self._platform.table

    def _block(self, index: int) -> Block:
        cached = self._cached
        if cached is None or cached.first_minute != index * self._platform.block_minutes:
            cached = self._cached = self._platform.block(index)
        return cached

    def _segments(self, lo: int, hi: int) -> Iterator[tuple[int, int, Block]]:
        """Minutes [lo, hi) cut at block edges, each piece with its block."""
        size = self._platform.block_minutes
        for index in range(lo // size, (hi - 1) // size + 1):
            first = index * size
            yield max(lo, first), min(hi, first + size), self._block(index)

    def metrics(self, minute: int, spans: SpanColumns) -> list[MetricSample]:
        """Service metrics of `minute` (absolute minute number), given that minute's spans."""
        rng = np.random.default_rng([self.seed, minute, _METRIC_STREAM])
        p = self._platform
        return service_metrics(minute * MINUTE_NS, p.services, p.service_load(minute), spans,
                               p.server_service, rng)

    def generate(self, start_ns: int, duration_ns: int) -> SpanColumns:
        """All spans of requests starting in [start_ns, start_ns + duration_ns), one chunk."""
        first, count = _minutes(start_ns, duration_ns)
        if count == 0:
            return SpanColumns.empty(self.table)
        parts = [block.minutes(a, b) for a, b, block in self._segments(first, first + count)]
        return SpanColumns.concat(self.table, parts)

    def spans(self, start_ns: int, duration_ns: int) -> list[Span]:
        """Like `generate`, as full `Span` objects (slow path: tests, small files)."""
        return self.generate(start_ns, duration_ns).spans()

    def replay(self, start_ns: int, duration_ns: int,
               step_ns: int = MINUTE_NS) -> Iterator[SimChunk]:
        """Chunks of `step_ns` (whole minutes) from start_ns on: bounded memory for weeks."""
        first, count = _minutes(start_ns, duration_ns)
        step, rest = divmod(step_ns, MINUTE_NS)
        if step <= 0 or rest:
            raise SimulationRangeError(f"step_ns must be a positive whole number of minutes "
                                       f"({MINUTE_NS} ns each); got {step_ns}")
        for lo in range(first, first + count, step):
            hi = min(lo + step, first + count)
            parts, metrics = [], []
            for a, b, block in self._segments(lo, hi):
                parts.append(block.minutes(a, b))
                for minute in range(a, b):
                    metrics += self.metrics(minute, block.minutes(minute, minute + 1))
            yield SimChunk(lo * MINUTE_NS, hi * MINUTE_NS,
                           SpanColumns.concat(self.table, parts), metrics)

    def batches(self, start_ns: int, duration_ns: int,
                step_ns: int = MINUTE_NS) -> Iterator[tuple[SpanBatch, list[MetricSample]]]:
        """`replay` as (SpanBatch, metrics) pairs, ready for `IngestPipeline.ingest`."""
        for chunk in self.replay(start_ns, duration_ns, step_ns):
            yield chunk.to_batch(), chunk.metrics


def _minutes(start_ns: int, duration_ns: int) -> tuple[int, int]:
    first, off = divmod(int(start_ns), MINUTE_NS)
    count, rest = divmod(int(duration_ns), MINUTE_NS)
    if off or rest or start_ns <= 0 or duration_ns < 0:
        raise SimulationRangeError(
            f"start_ns and duration_ns must be whole minutes ({MINUTE_NS} ns) and start_ns > 0; "
            f"got {start_ns}, {duration_ns}. Round with t - t % {MINUTE_NS}.")
    return first, count
