"""Synthetic series for the NAB harness tests."""

from __future__ import annotations

import numpy as np

FIVE_MIN_NS = 300 * 10**9
T0_NS = int(np.datetime64("2014-01-06T00:00:00", "ns").astype(np.int64))  # a Monday


def daily_series(n: int, seed: int = 0, step_ns: int = FIVE_MIN_NS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A daily cycle with noise and a few spikes, at `step_ns` from a Monday."""
    rng = np.random.default_rng(seed)
    ts = T0_NS + np.arange(n, dtype=np.int64) * step_ns
    day = 2 * np.pi * (ts - T0_NS) / (86400 * 10**9)
    values = 50 + 10 * np.sin(day) + rng.normal(0, 1, n)
    values[rng.choice(n, size=max(1, n // 300), replace=False)] += 25
    return ts, values
