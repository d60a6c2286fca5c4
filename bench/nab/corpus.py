"""A NAB corpus on disk: `data/<folder>/<file>.csv` and `labels/combined_windows.json`.

Naive timestamps are UTC. The layout is checked when the corpus is opened; files
are read in place, one at a time, when the harness reaches them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.nab.scoring import FileLabels, NabScoringError

__all__ = [
    "NabCorpus",
    "NabFile",
    "NabLayoutError",
    "parse_timestamps",
    "read_series",
    "window_rows",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
WindowsNs = tuple[tuple[int, int], ...]

LABELS_FILE = Path("labels") / "combined_windows.json"


class NabLayoutError(ValueError):
    """Not NAB's layout, or a malformed file in it; the message names the path."""


@dataclass(frozen=True, slots=True)
class NabFile:
    """One series of the corpus with its labels."""

    key: str  # "<folder>/<file>.csv", the key in combined_windows.json
    timestamps_ns: IntArray
    values: FloatArray
    labels: FileLabels


@dataclass(frozen=True, slots=True)
class NabCorpus:
    """The files of a NAB-layout directory and their labelled windows (as UTC ns)."""

    root: Path
    keys: tuple[str, ...]
    windows_ns: Mapping[str, WindowsNs]

    @classmethod
    def open(cls, root: Path) -> NabCorpus:
        """Check the layout and read the labels; every data file must have a labels entry."""
        root = Path(root)
        data_dir, labels_path = root / "data", root / LABELS_FILE
        for path in (root, data_dir):
            if not path.is_dir():
                raise NabLayoutError(
                    f"{path} is not a directory; expected NAB's layout data/<folder>/<file>.csv"
                )
        if not labels_path.is_file():
            raise NabLayoutError(
                f"{labels_path} not found; NAB's windows live in labels/combined_windows.json"
            )
        keys = tuple(sorted(p.relative_to(data_dir).as_posix() for p in data_dir.glob("*/*.csv")))
        if not keys:
            raise NabLayoutError(f"no data/<folder>/<file>.csv under {root}")
        windows = read_windows(labels_path)
        unlabelled = [k for k in keys if k not in windows]
        if unlabelled:
            raise NabLayoutError(
                f"{labels_path} has no entry for {', '.join(unlabelled[:5])}; add one ([] if none)"
            )
        return cls(root, keys, {k: windows[k] for k in keys})

    @property
    def window_count(self) -> int:
        return sum(len(w) for w in self.windows_ns.values())

    def load(self, key: str) -> NabFile:
        """Read one file and map its windows onto its rows."""
        path = self.root / "data" / key
        timestamps, values = read_series(path)
        try:
            labels = FileLabels.of(timestamps.size, window_rows(timestamps, self.windows_ns[key]))
        except NabScoringError as exc:
            raise NabLayoutError(f"labels of {key} in {self.root / LABELS_FILE}: {exc}") from None
        return NabFile(key, timestamps, values, labels)


def parse_timestamps(texts: list[str], where: str) -> IntArray:
    """ISO-like timestamps ('2014-04-10 07:15:00[.ffffff]', naive = UTC) to int64 ns."""
    try:
        return np.array(texts, dtype="datetime64[ns]").astype(np.int64)
    except ValueError as exc:
        raise NabLayoutError(f"{where}: unreadable timestamp ({exc})") from None


def read_series(path: Path) -> tuple[IntArray, FloatArray]:
    """A NAB CSV: header `timestamp,value`, then one timestamp and one finite value a row."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise NabLayoutError(f"cannot read {path}: {exc}") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["timestamp", "value"]:
        raise NabLayoutError(f"{path}: the first line must be the header 'timestamp,value'")
    body = [r for r in rows[1:] if r]  # a trailing blank line is not a row
    if not body:
        raise NabLayoutError(f"{path}: no data rows")
    try:
        values = np.array([float(r[1]) for r in body], dtype=np.float64)
    except (ValueError, IndexError):
        bad = next(i for i, r in enumerate(body) if not _is_number(r))
        raise NabLayoutError(
            f"{path} line {bad + 2}: value is not a number: {body[bad]!r}"
        ) from None
    if not np.all(np.isfinite(values)):
        raise NabLayoutError(
            f"{path} line {int(np.argmin(np.isfinite(values))) + 2}: value is not finite"
        )
    # Timestamps are kept as recorded: NAB's repeat at DST changes and once step back.
    return parse_timestamps([r[0] for r in body], str(path)), values


def read_windows(path: Path) -> dict[str, WindowsNs]:
    """`{"<folder>/<file>.csv": [[start, end], ...]}` with timestamps as UTC ns."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NabLayoutError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise NabLayoutError(f"{path}: expected an object mapping '<folder>/<file>.csv' to windows")
    out: dict[str, WindowsNs] = {}
    for key, windows in raw.items():
        if not isinstance(windows, list) or not all(
            isinstance(w, list) and len(w) == 2 for w in windows
        ):
            raise NabLayoutError(f"{path}: {key!r} must map to a list of [start, end] pairs")
        flat = parse_timestamps([str(t) for w in windows for t in w], f"{path} ({key})")
        pairs = tuple((int(flat[i]), int(flat[i + 1])) for i in range(0, flat.size, 2))
        if any(start > end for start, end in pairs):
            raise NabLayoutError(f"{path}: a window of {key!r} ends before it starts")
        out[str(key)] = pairs
    return out


def window_rows(timestamps_ns: IntArray, windows_ns: WindowsNs) -> list[tuple[int, int]]:
    """Inclusive row ranges of the windows, by row order as NAB's sweeper walks them.

    A window opens at the first row at or after its start and closes at the first
    later row stamped with its end (or just before the first row past it). NAB's
    timestamps repeat at DST changes and once step back, so rows are not searched
    by bisection. Windows holding no row are dropped.
    """
    out = []
    for start, end in sorted(windows_ns):
        opened = np.flatnonzero(timestamps_ns >= start)
        if opened.size == 0:
            continue
        first = int(opened[0])
        reached = np.flatnonzero(timestamps_ns[first:] >= end)
        if reached.size == 0:
            last = timestamps_ns.size - 1
        else:
            hit = first + int(reached[0])
            last = hit if timestamps_ns[hit] == end else hit - 1
        if first <= last:
            out.append((first, last))
    return out


def _is_number(row: list[str]) -> bool:
    try:
        float(row[1])
    except (ValueError, IndexError):
        return False
    return True
