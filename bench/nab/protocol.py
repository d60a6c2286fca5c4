"""What the NAB harness needs from a detector: a name and causal scores in [0, 1] per row."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["DetectorOutputError", "SeriesDetector", "checked_scores"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class DetectorOutputError(ValueError):
    """A detector returned unusable scores; the message names the detector and file."""


@runtime_checkable
class SeriesDetector(Protocol):
    """Scores one whole series as a stream.

    `score_series` returns one anomaly score in [0, 1] per row (higher = more
    anomalous), computed strictly causally: row i may only use rows 0..i. It must
    not modify its inputs (the harness passes read-only arrays). Timestamps are UTC
    nanoseconds as recorded: mostly increasing, but NAB's repeat at DST changes and
    once step back an hour, so a detector must not assume they are sorted.
    """

    @property
    def name(self) -> str:
        """Unique in a run; also a directory name under --scores-out ([A-Za-z0-9_.-]+)."""
        ...

    def score_series(self, timestamps_ns: IntArray, values: FloatArray) -> FloatArray: ...


def checked_scores(
    detector: SeriesDetector, key: str, n_rows: int, scores: npt.ArrayLike
) -> FloatArray:
    """The scores as float64, or DetectorOutputError when their shape or range is wrong."""
    out = np.asarray(scores, dtype=np.float64)
    where = f"detector {detector.name!r} on {key}"
    if out.shape != (n_rows,):
        raise DetectorOutputError(
            f"{where}: {out.shape} scores for {n_rows} rows; return one per row"
        )
    if not np.all(np.isfinite(out)):
        raise DetectorOutputError(
            f"{where}: non-finite score at row {int(np.argmin(np.isfinite(out)))}"
        )
    if out.size and (out.min() < 0.0 or out.max() > 1.0):
        raise DetectorOutputError(
            f"{where}: scores span [{out.min()}, {out.max()}]; map them into [0, 1]"
        )
    return out
