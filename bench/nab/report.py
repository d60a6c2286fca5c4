"""The result of one NAB run: per detector and profile, the normalised score and what made it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.nab.published import published_scores
from bench.nab.scoring import PROFILES, REWARD_LOW_FP, STANDARD

__all__ = ["DetectorResult", "NabReport", "ProfileResult", "render_table"]


@dataclass(frozen=True, slots=True)
class ProfileResult:
    """One detector under one profile, at the threshold optimised over the whole corpus."""

    profile: str
    score: float  # normalised: 0 = null detector, 100 = perfect
    threshold: float  # alert when anomaly score >= threshold
    raw: float
    null: float
    perfect: float
    detected: int  # windows found
    missed: int  # scored windows not found
    false_alerts: int  # scored alert rows outside every window


@dataclass(frozen=True, slots=True)
class DetectorResult:
    name: str
    profiles: dict[str, ProfileResult]
    seconds: float  # time spent in score_series over the corpus

    def to_json(self) -> dict[str, Any]:
        """`standard` and `reward_low_FP_rate` (normalised scores) are a contract."""
        out: dict[str, Any] = {p.name: self.profiles[p.name].score for p in PROFILES}
        for field in ("threshold", "raw", "detected", "missed", "false_alerts"):
            out[field] = {p.name: getattr(self.profiles[p.name], field) for p in PROFILES}
        out["seconds"] = self.seconds
        return out


@dataclass(frozen=True, slots=True)
class NabReport:
    data_dir: Path
    files: int
    rows: int
    windows: int  # labelled windows with rows after probation: what null and perfect count
    detectors: tuple[DetectorResult, ...]
    keys: tuple[str, ...] = ()  # the corpus' files, "folder/file.csv"

    def to_json(self) -> dict[str, Any]:
        """Per detector name: {"standard": float, "reward_low_FP_rate": float, ...}."""
        return {d.name: d.to_json() for d in self.detectors}

    def result(self, name: str) -> DetectorResult:
        for d in self.detectors:
            if d.name == name:
                return d
        raise KeyError(f"no detector named {name!r} in this report")


def render_table(report: NabReport) -> Table:
    """One row per detector: both normalised scores, then the standard profile's details."""
    caption = ("0 = detects nothing, 100 = every window at its left edge; "
               "found, FPs (alert rows outside windows) and threshold: standard profile")
    published = published_scores(report.keys, report.windows) if report.keys else None
    if published:
        leaders = ", ".join(f"{name} {s[STANDARD.name]:.1f} / {s[REWARD_LOW_FP.name]:.1f}"
                            for name, s in published.items())
        caption += (f". For scale, NAB's published results on these files (thresholds "
                    f"optimised on all 58): {leaders}")
    table = Table(
        title=f"NAB: {report.files} files, {report.rows} rows, {report.windows} windows",
        caption=caption,
    )
    table.add_column("detector", no_wrap=True)
    table.add_column("standard", justify="right")
    table.add_column("low FP", justify="right")
    table.add_column("found", justify="right", no_wrap=True)
    table.add_column("FPs", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("s", justify="right")
    for d in report.detectors:
        std, low = d.profiles[STANDARD.name], d.profiles[REWARD_LOW_FP.name]
        table.add_row(
            d.name,
            f"{std.score:.1f}",
            f"{low.score:.1f}",
            f"{std.detected}/{std.detected + std.missed}",
            str(std.false_alerts),
            f"{std.threshold:.4g}",
            f"{d.seconds:.1f}",
        )
    return table
