"""The incident families an SRE meets, each as a parameterised effect on spans and metrics.

Effects are written for full intensity and magnitude 1; at run time they are
scaled by the incident's magnitude and its time profile (step, ramp, decay).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "SCENARIOS",
    "MetricEffect",
    "OpEffect",
    "Profile",
    "Scenario",
    "ScenarioSpec",
    "Signal",
]


class Scenario(enum.StrEnum):
    CONNECTION_POOL_EXHAUSTION = "connection_pool_exhaustion"
    COLD_START = "cold_start"
    LOCK_CONTENTION = "lock_contention"
    DNS_CACHE_MISS = "dns_cache_miss"
    NETWORK_JITTER = "network_jitter"
    GC_PAUSE = "gc_pause"
    MESSAGE_QUEUE_BACKLOG = "message_queue_backlog"
    CASCADING_TIMEOUT = "cascading_timeout"
    RETRY_STORM = "retry_storm"
    SLOW_DOWNSTREAM = "slow_downstream_dependency"
    CPU_SATURATION = "cpu_saturation"
    MEMORY_LEAK = "memory_leak"
    ERROR_BURST = "error_burst"
    DEPLOY_REGRESSION = "deploy_regression"
    NOISY_NEIGHBOUR = "noisy_neighbour"


class Profile(enum.StrEnum):
    """Intensity over the incident window: constant, growing 0 -> 1, or fading 1 -> ~0."""

    STEP = "step"
    RAMP = "ramp"
    DECAY = "decay"


class Signal(enum.StrEnum):
    """What a detector should see move on the root cause."""

    LATENCY = "latency"  # duration of the root span key
    ERRORS = "errors"  # error flag rate of the root span key
    CPU = "cpu"  # opsbot_sim_cpu_percent of the root service
    MEMORY = "memory"  # opsbot_sim_memory_mb of the root service
    REQUEST_RATE = "request_rate"  # opsbot_sim_request_rate of the root service


@dataclass(frozen=True, slots=True)
class OpEffect:
    """Change to one span key's self time, failures and presence."""

    key: str
    latency_factor: float = 1.0  # multiplies the median self time
    stall_ms: float = 0.0  # median of a log-normal stall added before the first child
    stall_prob: float = 0.0  # share of spans that stall (bimodal when small)
    jitter_sigma: float = 0.0  # extra log-space spread
    error_prob: float = 0.0  # added probability of failing
    presence: float | None = None  # overrides the span's presence (cold start: new connections)


@dataclass(frozen=True, slots=True)
class MetricEffect:
    """Change to one service's resource metrics at full intensity."""

    service: str
    cpu_add: float = 0.0  # percentage points
    memory_add_mb: float = 0.0


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    scenario: Scenario
    description: str
    root_key: str
    profile: Profile
    signals: tuple[Signal, ...]
    effects: tuple[OpEffect, ...] = ()
    metrics: tuple[MetricEffect, ...] = ()
    rate_factor: float = 1.0  # multiplies traffic of entries whose tree calls the root key
    persistent: bool = False  # a schedule keeps it until the end of the horizon
    default_minutes: float = 20.0

    @property
    def root_service(self) -> str:
        return self.root_key.split(":", 1)[0]


def _effects_on(keys: tuple[str, ...], latency_factor: float,
                jitter_sigma: float = 0.0) -> tuple[OpEffect, ...]:
    return tuple(OpEffect(k, latency_factor=latency_factor, jitter_sigma=jitter_sigma)
                 for k in keys)


_EXCHANGE_OPS = ("kx-exchange:POST /orders", "kx-exchange:GET /orderbook",
                 "kx-exchange:pg-pool.connect", "kx-exchange:publish orders")
_GATEWAY_OPS = ("api-gateway:POST /orders", "api-gateway:GET /balance",
                "api-gateway:GET /orderbook")

_S, _R, _D = Profile.STEP, Profile.RAMP, Profile.DECAY
_LAT, _ERR = Signal.LATENCY, Signal.ERRORS

_SPECS = (
    ScenarioSpec(Scenario.CONNECTION_POOL_EXHAUSTION, "pool exhausted: callers queue to connect",
                 "kx-exchange:pg-pool.connect", _S, (_LAT,), (
                     OpEffect("kx-exchange:pg-pool.wait", stall_ms=120.0, stall_prob=0.85),
                     OpEffect("kx-exchange:pg-pool.connect", error_prob=0.03))),
    ScenarioSpec(Scenario.COLD_START, "fresh instances: new connections, cold caches, JIT",
                 "kx-exchange:POST /orders", _D, (_LAT, Signal.CPU), (
                     OpEffect("kx-exchange:POST /orders", latency_factor=3.0, stall_ms=150.0,
                              stall_prob=0.6),
                     OpEffect("kx-exchange:tcp.connect", latency_factor=2.0, presence=0.9)),
                 (MetricEffect("kx-exchange", cpu_add=40.0),), default_minutes=10.0),
    ScenarioSpec(Scenario.LOCK_CONTENTION, "row locks held by a batch job block inserts",
                 "kx-exchange:pg.query", _S, (_LAT,), (
                     OpEffect("kx-exchange:pg.query", latency_factor=1.5, stall_ms=80.0,
                              stall_prob=0.45, error_prob=0.01),)),
    ScenarioSpec(Scenario.DNS_CACHE_MISS, "resolver cache flushed: every lookup goes upstream",
                 "kx-wallet:dns.lookup", _S, (_LAT,), (
                     OpEffect("kx-wallet:dns.lookup", stall_ms=40.0, stall_prob=0.9,
                              presence=1.0),)),
    ScenarioSpec(Scenario.NETWORK_JITTER, "packet loss between wallet and its database",
                 "kx-wallet:pg.query", _S, (_LAT,), (
                     OpEffect("kx-wallet:pg.query", latency_factor=1.4, jitter_sigma=1.1),
                     OpEffect("kx-wallet:dns.lookup", jitter_sigma=0.8))),
    ScenarioSpec(Scenario.GC_PAUSE, "stop-the-world collections stall some messages",
                 "order-matcher:match", _S, (_LAT,), (
                     OpEffect("order-matcher:match", stall_ms=250.0, stall_prob=0.1),),
                 (MetricEffect("order-matcher", cpu_add=15.0),)),
    ScenarioSpec(Scenario.MESSAGE_QUEUE_BACKLOG, "matcher falls behind; messages wait in the queue",
                 "order-matcher:match", _R, (_LAT,), (
                     OpEffect("order-matcher:match", latency_factor=4.0),
                     OpEffect("kx-exchange:publish orders", stall_ms=400.0, stall_prob=1.0)),
                 (MetricEffect("order-matcher", cpu_add=25.0),)),
    ScenarioSpec(Scenario.CASCADING_TIMEOUT, "wallet database hangs; callers time out in turn",
                 "kx-wallet:pg.query", _S, (_LAT, _ERR), (
                     OpEffect("kx-wallet:pg.query", stall_ms=1500.0, stall_prob=0.7),),
                 default_minutes=15.0),
    ScenarioSpec(Scenario.RETRY_STORM, "clients retry failed balance reads without backoff",
                 "kx-wallet:GET /balance", _S, (_ERR, Signal.REQUEST_RATE), (
                     OpEffect("kx-wallet:GET /balance", latency_factor=1.5, error_prob=0.25),),
                 (MetricEffect("kx-wallet", cpu_add=20.0),
                  MetricEffect("api-gateway", cpu_add=10.0)),
                 rate_factor=3.0),
    ScenarioSpec(Scenario.SLOW_DOWNSTREAM, "wallet reservations slow down; exchange waits on them",
                 "kx-wallet:POST /reserve", _S, (_LAT,), (
                     OpEffect("kx-wallet:POST /reserve", latency_factor=60.0),)),
    ScenarioSpec(Scenario.CPU_SATURATION, "exchange pods pinned at their CPU limit",
                 "kx-exchange:POST /orders", _S, (_LAT, Signal.CPU),
                 (*_effects_on((*_EXCHANGE_OPS, "kx-exchange:pg.query"), latency_factor=3.0),
                  OpEffect("kx-exchange:POST /orders", stall_ms=25.0, stall_prob=0.5)),
                 (MetricEffect("kx-exchange", cpu_add=60.0),)),
    ScenarioSpec(Scenario.MEMORY_LEAK, "wallet leaks a cache entry per request; GC works harder",
                 "kx-wallet:GET /balance", _R, (Signal.MEMORY,), (
                     OpEffect("kx-wallet:GET /balance", latency_factor=1.6),),
                 (MetricEffect("kx-wallet", cpu_add=8.0, memory_add_mb=1800.0),),
                 default_minutes=180.0),
    ScenarioSpec(Scenario.ERROR_BURST, "a poisoned message makes the matcher fail",
                 "order-matcher:match", _S, (_ERR,), (
                     OpEffect("order-matcher:match", error_prob=0.35),), default_minutes=10.0),
    ScenarioSpec(Scenario.DEPLOY_REGRESSION, "new exchange release adds an N+1 query to the book",
                 "kx-exchange:GET /orderbook", _S, (_LAT,), (
                     OpEffect("kx-exchange:GET /orderbook", latency_factor=12.0),),
                 (MetricEffect("kx-exchange", cpu_add=6.0),), persistent=True,
                 default_minutes=120.0),
    ScenarioSpec(Scenario.NOISY_NEIGHBOUR, "a batch job on the gateway's node steals CPU",
                 "api-gateway:GET /balance", _S, (_LAT, Signal.CPU),
                 _effects_on(_GATEWAY_OPS, latency_factor=1.8, jitter_sigma=1.2),
                 (MetricEffect("api-gateway", cpu_add=35.0),), default_minutes=30.0),
)

SCENARIOS: Mapping[Scenario, ScenarioSpec] = MappingProxyType({s.scenario: s for s in _SPECS})
