"""The simulated exchange platform as data: services, operations, call trees, traffic mix.

Latency parameters are of an operation's *self* (exclusive) time; a span's
duration is its self time plus the durations of the children it calls in turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from bot.simulator.errors import TopologyError
from bot.spans import SpanKind, span_key

__all__ = [
    "DEFAULT_TOPOLOGY",
    "CallTree",
    "Entry",
    "Operation",
    "ServiceProfile",
    "Topology",
]

AttrValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Operation:
    """One span key and the distribution of its self time (log-normal, in ms)."""

    service: str
    name: str
    kind: SpanKind
    median_ms: float
    sigma: float
    children: tuple[str, ...] = ()  # span keys, called one after another
    presence: float = 1.0  # probability the span occurs when its parent does
    error_prob: float = 0.0  # probability the operation fails on its own
    timeout_ms: float | None = None  # the caller gives up after this long
    attributes: tuple[tuple[str, AttrValue], ...] = ()

    @property
    def key(self) -> str:
        return span_key(self.service, self.name)


@dataclass(frozen=True, slots=True)
class Entry:
    """A request type entering the platform, and its share of the traffic."""

    key: str
    share: float


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """Resource model of one service: idle CPU, CPU per request/s, resident memory."""

    name: str
    cpu_base: float
    cpu_per_rps: float
    memory_mb: float


@dataclass(frozen=True, slots=True)
class CallTree:
    """One entry's operations in pre-order: a parent always comes before its children."""

    entry: str
    ops: tuple[int, ...]  # index into Topology.keys, per node
    parent: tuple[int, ...]  # node index of the parent, -1 for the root
    children: tuple[tuple[int, ...], ...]  # node indices, in call order


@dataclass(frozen=True)
class Topology:
    """Validated table of operations and entries, with call trees compiled once."""

    operations: tuple[Operation, ...]
    entries: tuple[Entry, ...]
    services: tuple[ServiceProfile, ...]
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {op.key: i for i, op in enumerate(self.operations)}
        if len(index) != len(self.operations):
            raise TopologyError("two operations share one span key; make every key unique")
        object.__setattr__(self, "_index", index)
        self._check()

    def _check(self) -> None:
        if not self.entries:
            raise TopologyError("a topology needs at least one entry operation")
        known = {s.name for s in self.services}
        for op in self.operations:
            if op.service not in known:
                raise TopologyError(f"{op.key}: service {op.service!r} has no ServiceProfile")
            if op.median_ms <= 0 or op.sigma < 0 or not 0 < op.presence <= 1:
                raise TopologyError(f"{op.key}: need median_ms > 0, sigma >= 0, 0 < presence <= 1")
            for child in op.children:
                if child not in self._index:
                    raise TopologyError(f"{op.key}: child {child!r} is not an operation")
        for entry in self.entries:
            if entry.key not in self._index or entry.share <= 0:
                raise TopologyError(f"entry {entry.key!r}: must be a known key with share > 0")
        for entry in self.entries:
            self._compile(entry.key)  # raises on a cycle

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(op.key for op in self.operations)

    def index(self, key: str) -> int:
        try:
            return self._index[key]
        except KeyError:
            known = ", ".join(self.keys)
            raise TopologyError(f"unknown span key {key!r}; known: {known}") from None

    def op(self, key: str) -> Operation:
        return self.operations[self.index(key)]

    def service(self, name: str) -> ServiceProfile:
        for profile in self.services:
            if profile.name == name:
                return profile
        raise TopologyError(f"unknown service {name!r}")

    @cached_property
    def trees(self) -> tuple[CallTree, ...]:
        return tuple(self._compile(e.key) for e in self.entries)

    def _compile(self, entry: str) -> CallTree:
        ops: list[int] = []
        parent: list[int] = []
        children: list[list[int]] = []

        def visit(key: str, up: int, path: tuple[str, ...]) -> int:
            if key in path:
                raise TopologyError(f"call cycle: {' -> '.join((*path, key))}")
            node = len(ops)
            ops.append(self._index[key])
            parent.append(up)
            children.append([])
            for child in self.operations[self._index[key]].children:
                children[node].append(visit(child, node, (*path, key)))
            return node

        visit(entry, -1, ())
        return CallTree(entry, tuple(ops), tuple(parent), tuple(tuple(c) for c in children))

    def ancestors(self, key: str) -> tuple[str, ...]:
        """Keys that (transitively) call `key`, in table order."""
        target = self.index(key)
        found: set[int] = set()
        for tree in self.trees:
            for node, op in enumerate(tree.ops):
                if op != target:
                    continue
                up = tree.parent[node]
                while up >= 0:
                    found.add(tree.ops[up])
                    up = tree.parent[up]
        return tuple(self.operations[i].key for i in sorted(found))

    def expected_server_spans(self, tree: CallTree) -> dict[str, float]:
        """Mean SERVER/CONSUMER spans per request of `tree`, by service (its request count)."""
        reach = [1.0] * len(tree.ops)
        out: dict[str, float] = {}
        for node, op_idx in enumerate(tree.ops):
            op = self.operations[op_idx]
            up = tree.parent[node]
            reach[node] = op.presence * (reach[up] if up >= 0 else 1.0)
            if op.kind in (SpanKind.SERVER, SpanKind.CONSUMER):
                out[op.service] = out.get(op.service, 0.0) + reach[node]
        return out


def _op(service: str, name: str, kind: SpanKind, median: float, sigma: float, *children: str,
        presence: float = 1.0, error_prob: float = 0.0, timeout_ms: float | None = None,
        attributes: tuple[tuple[str, AttrValue], ...] = ()) -> Operation:
    return Operation(service, name, kind, median, sigma, tuple(children), presence, error_prob,
                     timeout_ms, attributes)


_S, _C, _I = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
_PG = (("db.system", "postgresql"),)

DEFAULT_TOPOLOGY = Topology(
    operations=(
        _op("api-gateway", "POST /orders", _S, 1.2, 0.3, "api-gateway:dns.lookup",
            "kx-exchange:POST /orders", timeout_ms=5000.0,
            attributes=(("http.request.method", "POST"), ("http.route", "/orders"))),
        _op("api-gateway", "GET /balance", _S, 0.9, 0.3, "api-gateway:dns.lookup",
            "kx-wallet:GET /balance", timeout_ms=5000.0,
            attributes=(("http.request.method", "GET"), ("http.route", "/balance"))),
        _op("api-gateway", "GET /orderbook", _S, 0.9, 0.3, "api-gateway:dns.lookup",
            "kx-exchange:GET /orderbook", timeout_ms=5000.0,
            attributes=(("http.request.method", "GET"), ("http.route", "/orderbook"))),
        _op("api-gateway", "dns.lookup", _C, 0.25, 0.4, presence=0.3, error_prob=0.0002),
        _op("kx-exchange", "POST /orders", _S, 1.5, 0.3, "kx-exchange:pg-pool.connect",
            "kx-wallet:POST /reserve", "kx-exchange:pg.query", "kx-exchange:publish orders",
            error_prob=0.001, attributes=(("http.route", "/orders"),)),
        _op("kx-exchange", "GET /orderbook", _S, 1.0, 0.3, "kx-exchange:pg-pool.connect",
            "kx-exchange:pg.query", error_prob=0.0005, attributes=(("http.route", "/orderbook"),)),
        _op("kx-exchange", "pg-pool.connect", _I, 0.12, 0.3, "kx-exchange:pg-pool.wait",
            "kx-exchange:tcp.connect", error_prob=0.0002, attributes=(("db.pool.max", 20),)),
        _op("kx-exchange", "pg-pool.wait", _I, 0.04, 0.5),
        _op("kx-exchange", "tcp.connect", _C, 0.7, 0.35, presence=0.08, error_prob=0.001,
            attributes=(("server.address", "pg-primary"), ("server.port", 5432))),
        _op("kx-exchange", "pg.query", _C, 3.0, 0.5, error_prob=0.0005,
            attributes=(*_PG, ("db.operation.name", "INSERT"))),
        _op("kx-exchange", "publish orders", SpanKind.PRODUCER, 0.8, 0.4, "order-matcher:match",
            error_prob=0.0003, attributes=(("messaging.system", "kafka"),
                                           ("messaging.destination.name", "orders"))),
        _op("order-matcher", "match", SpanKind.CONSUMER, 4.0, 0.6, error_prob=0.0005,
            attributes=(("messaging.system", "kafka"), ("messaging.destination.name", "orders"))),
        _op("kx-wallet", "GET /balance", _S, 0.7, 0.3, "kx-wallet:dns.lookup",
            "kx-wallet:pg.query", timeout_ms=800.0, error_prob=0.0005,
            attributes=(("http.route", "/balance"),)),
        _op("kx-wallet", "POST /reserve", _S, 0.9, 0.3, "kx-wallet:pg.query",
            timeout_ms=800.0, error_prob=0.0005, attributes=(("http.route", "/reserve"),)),
        _op("kx-wallet", "dns.lookup", _C, 0.25, 0.4, presence=0.5, error_prob=0.0002),
        _op("kx-wallet", "pg.query", _C, 2.0, 0.45, error_prob=0.0005,
            attributes=(*_PG, ("db.operation.name", "SELECT"))),
    ),
    entries=(
        Entry("api-gateway:POST /orders", 0.30),
        Entry("api-gateway:GET /balance", 0.45),
        Entry("api-gateway:GET /orderbook", 0.25),
    ),
    services=(
        ServiceProfile("api-gateway", cpu_base=6.0, cpu_per_rps=0.05, memory_mb=310.0),
        ServiceProfile("kx-exchange", cpu_base=9.0, cpu_per_rps=0.22, memory_mb=720.0),
        ServiceProfile("kx-wallet", cpu_base=5.0, cpu_per_rps=0.08, memory_mb=480.0),
        ServiceProfile("order-matcher", cpu_base=12.0, cpu_per_rps=0.35, memory_mb=1100.0),
    ),
)
