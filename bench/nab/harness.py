"""Run detectors over every file of a NAB corpus as streams, then score them the same way.

Each file is read once and handed to every detector; the alert threshold is then
optimised once per profile over the whole corpus, for every detector alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console

from bench.nab.corpus import NabCorpus, NabFile
from bench.nab.opsbot import (
    OpsbotDetector,
    OpsbotMetricDetector,
    OpsbotNoveltyDetector,
    OpsbotStreamDetector,
    with_novelty_gate,
)
from bench.nab.protocol import SeriesDetector, checked_scores
from bench.nab.reference import (
    HourOfWeekZScoreDetector,
    IsolationForestDetector,
    WindowedGaussianDetector,
)
from bench.nab.report import DetectorResult, NabReport, ProfileResult
from bench.nab.scores_out import write_scores
from bench.nab.scoring import PROFILES, FileLabels, score_alerts
from bench.nab.sweep import optimise_threshold

__all__ = [
    "FileProgress",
    "ProgressCallback",
    "default_detectors",
    "run_nab_eval",
    "stderr_progress",
]

FloatArray = npt.NDArray[np.float64]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # also a directory name under --scores-out


@dataclass(frozen=True, slots=True)
class FileProgress:
    """One file done: its place in the run and the seconds each detector took on it."""

    index: int  # 1-based
    total: int
    key: str
    rows: int
    seconds: Mapping[str, float]


ProgressCallback = Callable[[FileProgress], None]

_stderr = Console(stderr=True, highlight=False)


def stderr_progress(event: FileProgress) -> None:
    """One line per file on stderr."""
    timings = "  ".join(f"{name} {s:.1f}s" for name, s in event.seconds.items())
    _stderr.print(
        f"[{event.index:>{len(str(event.total))}}/{event.total}] {event.key} "
        f"({event.rows} rows)  {timings}",
        markup=False,
        soft_wrap=True,
    )


def default_detectors() -> list[SeriesDetector]:
    """opsbot's detectors (novelty batch and streamed, then the streaming z path) and the
    references, in order."""
    return [
        OpsbotNoveltyDetector(),
        OpsbotStreamDetector(),
        OpsbotMetricDetector(),
        with_novelty_gate(),
        OpsbotDetector(),
        WindowedGaussianDetector(),
        HourOfWeekZScoreDetector(),
        IsolationForestDetector(),
    ]


def run_nab_eval(
    data_dir: Path,
    detectors: Sequence[SeriesDetector],
    scores_out: Path | None = None,
    *,
    progress: ProgressCallback | None = stderr_progress,
) -> NabReport:
    """Score `detectors` on the NAB-layout directory `data_dir`.

    With `scores_out`, also writes `<scores_out>/<detector>/<folder>/<file>.csv`
    (`timestamp,value,score,alert`) and `<scores_out>/<detector>/thresholds.json`.
    """
    _check_names(detectors)
    corpus = NabCorpus.open(Path(data_dir))
    files: list[NabFile] = []
    scores: dict[str, list[FloatArray]] = {d.name: [] for d in detectors}
    seconds = dict.fromkeys(scores, 0.0)
    for index, key in enumerate(corpus.keys, start=1):
        nab_file = corpus.load(key)
        files.append(nab_file)
        timings = _score_file(nab_file, detectors, scores)
        for name, s in timings.items():
            seconds[name] += s
        if progress is not None:
            progress(FileProgress(index, len(corpus.keys), key, nab_file.labels.n_rows, timings))
    labels = [f.labels for f in files]
    results = tuple(_detector_result(name, scores[name], labels, seconds[name]) for name in scores)
    report = NabReport(
        corpus.root,
        files=len(files),
        rows=sum(lab.n_rows for lab in labels),
        windows=sum(lab.scored_windows for lab in labels),
        detectors=results,
        keys=tuple(f.key for f in files),
    )
    if scores_out is not None:
        write_scores(Path(scores_out), report, files, scores)
    return report


def _check_names(detectors: Sequence[SeriesDetector]) -> None:
    if not detectors:
        raise ValueError("no detector to score; pass at least one")
    names = [d.name for d in detectors]
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise ValueError(f"detector names must match {_NAME.pattern}: {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"detector names must be unique: {names}")


def _score_file(
    nab_file: NabFile, detectors: Sequence[SeriesDetector], scores: dict[str, list[FloatArray]]
) -> dict[str, float]:
    """Run every detector on one file; inputs are read-only so no detector can alter another's."""
    timestamps, values = nab_file.timestamps_ns.copy(), nab_file.values.copy()
    timestamps.flags.writeable = False
    values.flags.writeable = False
    timings: dict[str, float] = {}
    for detector in detectors:
        start = time.perf_counter()
        out = detector.score_series(timestamps, values)
        timings[detector.name] = time.perf_counter() - start
        scores[detector.name].append(checked_scores(detector, nab_file.key, values.size, out))
    return timings


def _detector_result(
    name: str, scores: list[FloatArray], labels: list[FileLabels], seconds: float
) -> DetectorResult:
    profiles: dict[str, ProfileResult] = {}
    for profile in PROFILES:
        best = optimise_threshold(scores, labels, profile)
        counts = [
            score_alerts(lab, s >= best.threshold, profile)
            for s, lab in zip(scores, labels, strict=True)
        ]
        profiles[profile.name] = ProfileResult(
            profile=profile.name,
            score=best.score,
            threshold=best.threshold,
            raw=best.raw,
            null=best.null,
            perfect=best.perfect,
            detected=sum(c.detected for c in counts),
            missed=sum(c.missed for c in counts),
            false_alerts=sum(c.false_alerts for c in counts),
        )
    return DetectorResult(name, profiles, seconds)
