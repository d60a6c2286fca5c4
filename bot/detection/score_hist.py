"""Fixed-bin histograms of window badness: the aggregate that severity recalculation reads.

A key's historical window scores are kept per UTC hour as a histogram with bins
of 0.1 between -25 and +25 (scores are capped at `max_z`, 20 by default), so 30
days of one-minute windows cost a few hundred bytes per hour, and the
percentiles recomputed from them are within half a bin of the raw ones. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "BIN_WIDTH",
    "HourScores",
    "N_SCORE_BINS",
    "bin_centers",
    "score_bin",
    "hist_from_blob",
    "hist_to_blob",
    "score_histogram",
    "scores_from_hist",
]

BIN_WIDTH = 0.1
LOW = -25.0
N_SCORE_BINS = 501  # LOW .. -LOW inclusive, at BIN_WIDTH


def bin_centers() -> npt.NDArray[np.float64]:
    return np.asarray(LOW + BIN_WIDTH * np.arange(N_SCORE_BINS), dtype=np.float64)


_CENTERS = bin_centers()


def score_histogram(badness: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Counts of finite badness values per bin (nearest center; outside the range clamps)."""
    b = np.asarray(badness, dtype=np.float64)
    b = b[np.isfinite(b)]
    idx = np.clip(np.rint((b - LOW) / BIN_WIDTH).astype(np.int64), 0, N_SCORE_BINS - 1)
    return np.bincount(idx, minlength=N_SCORE_BINS).astype(np.int64)


def score_bin(badness: float) -> int:
    """Bin of one finite badness value: the bin `score_histogram` counts it in."""
    return min(max(round((badness - LOW) / BIN_WIDTH), 0), N_SCORE_BINS - 1)


@dataclass(slots=True)
class HourScores:
    """Badness of one series' scored samples in one UTC hour, counted one at a time (a
    metric series scores one sample per scrape, too few per call for `score_histogram`)."""

    hour: int  # hours since the epoch
    windows: int
    hist: npt.NDArray[np.int64]
    eligible: npt.NDArray[np.int64]  # those that passed the minimum deviation

    @classmethod
    def empty(cls, hour: int) -> HourScores:
        return cls(hour, 0, np.zeros(N_SCORE_BINS, np.int64), np.zeros(N_SCORE_BINS, np.int64))

    def add(self, badness: float, eligible: bool) -> None:
        i = score_bin(badness)
        self.windows += 1
        self.hist[i] += 1
        if eligible:
            self.eligible[i] += 1

    def merge(self, other: HourScores) -> None:
        self.windows += other.windows
        self.hist += other.hist
        self.eligible += other.eligible


def scores_from_hist(
    hist: npt.NDArray[np.int64], at_least: float | None = None
) -> npt.NDArray[np.float64]:
    """The histogram back as values (bin centers repeated), optionally only those >= at_least."""
    counts = np.asarray(hist, dtype=np.int64)
    if at_least is not None:
        counts = np.where(at_least - BIN_WIDTH / 2 <= _CENTERS, counts, 0)
    return np.repeat(_CENTERS, counts)


def hist_to_blob(hist: npt.NDArray[np.int64]) -> bytes:
    """Sparse little-endian layout: count of occupied bins, their indices, their counts."""
    nz = np.flatnonzero(hist)
    return (struct.pack("<H", nz.size) + nz.astype("<u2").tobytes()
            + np.asarray(hist)[nz].astype("<u8").tobytes())


def hist_from_blob(blob: bytes) -> npt.NDArray[np.int64]:
    (n,) = struct.unpack_from("<H", blob)
    idx = np.frombuffer(blob, "<u2", n, 2).astype(np.int64)
    vals = np.frombuffer(blob, "<u8", n, 2 + 2 * n).astype(np.int64)
    hist = np.zeros(N_SCORE_BINS, np.int64)
    hist[idx] = vals
    return hist
