"""How busy the platform is at a given simulated time: hour-of-day and day-of-week seasonality.

`load(t)` is a unitless multiplier (about 1 on a weekday afternoon). The traced
request count, the true request rate and the mild latency drift all follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DAY_NS", "HOUR_NS", "MINUTE_NS", "WEEK_NS", "TrafficModel"]

MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
WEEK_NS = 7 * DAY_NS
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0

# Load at each whole hour (local time); quiet nights, a business-hours plateau.
DEFAULT_HOURLY = (
    0.30, 0.25, 0.22, 0.20, 0.22, 0.30, 0.45, 0.65, 0.90, 1.10, 1.20, 1.25,
    1.20, 1.25, 1.30, 1.25, 1.15, 1.00, 0.85, 0.75, 0.65, 0.55, 0.45, 0.36,
)
DEFAULT_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.95, 0.55, 0.45)  # Monday .. Sunday


@dataclass(frozen=True, slots=True)
class TrafficModel:
    """Traffic volume and its seasonality.

    `sampled_per_minute` is the sampling knob: traced requests per minute at
    load 1 (about 9 spans each). `base_rps` is the true request rate at load 1,
    used by the request-rate and CPU metrics.
    """

    base_rps: float = 150.0
    sampled_per_minute: float = 60.0
    hourly: tuple[float, ...] = DEFAULT_HOURLY
    weekday: tuple[float, ...] = DEFAULT_WEEKDAY
    utc_offset_hours: float = 0.0
    load_sensitivity: float = 0.15  # median self time scales with load ** this

    def __post_init__(self) -> None:
        if len(self.hourly) != 24 or len(self.weekday) != 7:
            raise ValueError("hourly needs 24 values and weekday 7 (Monday first)")
        if min(self.hourly) <= 0 or min(self.weekday) <= 0:
            raise ValueError("seasonality factors must be positive")
        if self.base_rps <= 0 or self.sampled_per_minute < 0:
            raise ValueError("base_rps must be > 0 and sampled_per_minute >= 0")

    def load(self, t_ns: np.ndarray | int) -> np.ndarray:
        """Load multiplier at each time (ns since the epoch, UTC), hours interpolated linearly."""
        local = np.asarray(t_ns, dtype=np.int64) + int(self.utc_offset_hours * HOUR_NS)
        day = local // DAY_NS
        hour = (local - day * DAY_NS) / HOUR_NS
        hourly = np.asarray((*self.hourly, self.hourly[0]), dtype=np.float64)
        by_hour = np.interp(hour, np.arange(25.0), hourly)
        by_day = np.asarray(self.weekday, dtype=np.float64)[(day + _EPOCH_WEEKDAY) % 7]
        return np.asarray(by_hour * by_day, dtype=np.float64)

    def latency_scale(self, load: float) -> float:
        """Multiplier of every median self time: busier means a little slower."""
        return float(load**self.load_sensitivity)
