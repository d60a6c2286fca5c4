"""Exceptions raised by the telemetry simulator, each naming what to change."""

from __future__ import annotations

__all__ = [
    "OtlpExportError",
    "ScheduleError",
    "SimulationRangeError",
    "SimulatorError",
    "TopologyError",
]


class SimulatorError(Exception):
    """Base class of every simulator error."""


class TopologyError(SimulatorError, ValueError):
    """The topology table is inconsistent (unknown child, cycle, bad share...)."""


class ScheduleError(SimulatorError, ValueError):
    """Incidents cannot be placed as asked (window too short, unknown scenario...)."""


class SimulationRangeError(SimulatorError, ValueError):
    """A start, duration or step is not a whole number of simulated minutes."""


class OtlpExportError(SimulatorError):
    """Posting spans to an OTLP/HTTP endpoint failed for good."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
