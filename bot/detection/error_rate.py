"""Error-rate scores of windows: a failing operation is an anomaly even when it is fast (pure).

Per key and window, the error count is compared with the key's baseline error
rate (global bucket of the same hourly partials) as a binomial z-score. Spans of
one minute are not independent (one bad dependency fails many at once), so the
count is scaled to `max_effective_n` spans as for latency, and the baseline rate
is smoothed ((errors + 0.5) / (spans + 1)) and floored at `min_rate`, so a key
that never failed does not page on its first error. A window must also hold at
least `min_errors` failures and raise the rate by at least `min_abs` and by
`min_rel` x the baseline rate to be eligible: one failed span in a quiet minute
of 13 is a 7.7 % rate, but not an incident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ErrorRateConfig", "error_scores"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ErrorRateConfig:
    min_rate: float = 0.002  # floor of the baseline error rate
    min_errors: int = 3  # failed spans in the window, at least
    min_abs: float = 0.1  # window rate - baseline rate, at least
    min_rel: float = 1.0  # ... and at least this x the baseline rate (1.0: doubled)


def error_scores(
    errors: npt.ArrayLike, counts: npt.ArrayLike, base_errors: npt.ArrayLike,
    base_counts: npt.ArrayLike, *, max_effective_n: int, max_z: float,
    min_window_count: int, config: ErrorRateConfig | None = None,
) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, FloatArray]:
    """(z, eligible, window rate, baseline rate) per window; z is NaN without a baseline.

    All inputs are per-window arrays of equal length; base_* describe the key's
    baseline (0 spans: no baseline, NaN).
    """
    config = config or ErrorRateConfig()
    k = np.asarray(errors, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    be = np.asarray(base_errors, dtype=np.float64)
    bn = np.asarray(base_counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.maximum((be + 0.5) / (bn + 1.0), config.min_rate)
        rate = k / n
        n_eff = np.minimum(n, max_effective_n)
        z = (rate - p) * np.sqrt(n_eff) / np.sqrt(p * (1.0 - p))
    z = np.where((bn > 0) & (n >= min_window_count), z, np.nan)
    if max_z > 0:
        z = np.clip(z, -max_z, max_z)
    gap = rate - p
    eligible = (k >= config.min_errors) & (gap >= config.min_abs) & (gap >= config.min_rel * p)
    return z, np.asarray(eligible), rate, p
