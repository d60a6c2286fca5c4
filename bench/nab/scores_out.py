"""Per-file score CSVs of a NAB run, and an independent re-scoring of them.

Layout: `<dir>/<detector>/<folder>/<file>.csv` with `timestamp,value,score,alert`
(alert at the standard profile's threshold) and `<dir>/<detector>/thresholds.json`
with each profile's threshold. `rescore` reads them back with the labels of the
corpus and scores the alerts directly, without the threshold sweep.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from bench.nab.corpus import NabCorpus, NabFile, NabLayoutError, parse_timestamps, window_rows
from bench.nab.scoring import PROFILES, STANDARD, FileLabels, score_alerts
from bench.nab.sweep import normalise

if TYPE_CHECKING:
    from bench.nab.report import NabReport

__all__ = ["SCORES_HEADER", "read_scores_csv", "rescore", "write_scores"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SCORES_HEADER = ("timestamp", "value", "score", "alert")
THRESHOLDS_FILE = "thresholds.json"
ALERT_PROFILE = STANDARD.name  # the profile whose threshold sets the `alert` column


def write_scores(
    out_dir: Path,
    report: NabReport,
    files: Sequence[NabFile],
    scores: Mapping[str, Sequence[FloatArray]],
) -> None:
    """Write every detector's per-file CSVs and its thresholds."""
    for result in report.detectors:
        det_dir = out_dir / result.name
        det_dir.mkdir(parents=True, exist_ok=True)
        thresholds = {name: p.threshold for name, p in result.profiles.items()}
        doc = {"alert_profile": ALERT_PROFILE, "thresholds": thresholds}
        (det_dir / THRESHOLDS_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        for nab_file, file_scores in zip(files, scores[result.name], strict=True):
            alerts = file_scores >= thresholds[ALERT_PROFILE]
            _write_csv(det_dir / nab_file.key, nab_file, file_scores, alerts)


def _write_csv(path: Path, nab_file: NabFile, scores: FloatArray, alerts: BoolArray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ts: npt.NDArray[np.datetime64] = nab_file.timestamps_ns.astype("datetime64[ns]")
    whole_seconds = bool(np.all(nab_file.timestamps_ns % 1_000_000_000 == 0))
    unit: Literal["s", "ns"] = "s" if whole_seconds else "ns"
    stamps = np.char.replace(np.datetime_as_string(ts, unit=unit), "T", " ")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(SCORES_HEADER)
        # repr of a float round-trips exactly, so re-scoring sees the very same scores
        writer.writerows(
            (t, repr(v), repr(s), int(a))
            for t, v, s, a in zip(
                stamps.tolist(),
                nab_file.values.tolist(),
                scores.tolist(),
                alerts.tolist(),
                strict=True,
            )
        )


def read_scores_csv(path: Path) -> tuple[IntArray, FloatArray, BoolArray]:
    """(timestamps ns, scores, alerts) of one written file."""
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows or tuple(rows[0]) != SCORES_HEADER:
        raise NabLayoutError(f"{path}: expected the header {','.join(SCORES_HEADER)}")
    body = rows[1:]
    timestamps = parse_timestamps([r[0] for r in body], str(path))
    scores = np.array([float(r[2]) for r in body], dtype=np.float64)
    alerts = np.array([r[3] == "1" for r in body], dtype=np.bool_)
    return timestamps, scores, alerts


def rescore(scores_dir: Path, data_dir: Path) -> dict[str, dict[str, float]]:
    """Normalised score per detector and profile, from written CSVs and the corpus labels.

    The alert profile is scored from the `alert` column, the others from
    `score >= threshold`; both by direct per-window scoring, not by the sweep.
    """
    corpus = NabCorpus.open(data_dir)
    out: dict[str, dict[str, float]] = {}
    for doc_path in sorted(Path(scores_dir).glob(f"*/{THRESHOLDS_FILE}")):
        doc = json.loads(doc_path.read_text())
        files = [_read_scored_file(doc_path.parent, key, corpus) for key in corpus.keys]
        out[doc_path.parent.name] = {p.name: _normalised(files, doc, p.name) for p in PROFILES}
    return out


def _read_scored_file(
    det_dir: Path, key: str, corpus: NabCorpus
) -> tuple[FileLabels, FloatArray, BoolArray]:
    path = det_dir / key
    if not path.is_file():
        raise NabLayoutError(f"{path} not found: the scores directory does not cover {key}")
    timestamps, scores, alerts = read_scores_csv(path)
    return (
        FileLabels.of(timestamps.size, window_rows(timestamps, corpus.windows_ns[key])),
        scores,
        alerts,
    )


def _normalised(
    files: list[tuple[FileLabels, FloatArray, BoolArray]], doc: dict[str, object], name: str
) -> float:
    profile = next(p for p in PROFILES if p.name == name)
    thresholds = doc["thresholds"]
    assert isinstance(thresholds, dict)
    raw = 0.0
    for labels, scores, alerts in files:
        fired = alerts if doc["alert_profile"] == name else scores >= float(thresholds[name])
        raw += score_alerts(labels, fired, profile).raw
    windows = sum(labels.scored_windows for labels, _, _ in files)
    return normalise(raw, -profile.fn_weight * windows, profile.tp_weight * windows)
