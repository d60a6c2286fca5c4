"""File sinks: OTLP/JSON span files, Prometheus text, and the ground-truth answer key."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bot.simulator.columns import SpanColumns
from bot.simulator.incidents import GroundTruth, ground_truth_json
from bot.simulator.metrics import render_exposition
from bot.simulator.otlp_json import otlp_json
from bot.simulator.simulator import SimChunk

__all__ = ["write_ground_truth", "write_otlp_json", "write_otlp_jsonl", "write_replay"]


def write_otlp_json(path: Path, spans: SpanColumns) -> Path:
    """One `ExportTraceServiceRequest` as a JSON file."""
    path.write_text(json.dumps(otlp_json(spans), separators=(",", ":")), encoding="utf-8")
    return path


def write_otlp_jsonl(path: Path, chunks: Iterable[SpanColumns]) -> int:
    """One request per line (the collector file exporter's format); returns spans written."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for spans in chunks:
            if len(spans) == 0:
                continue
            out.write(json.dumps(otlp_json(spans), separators=(",", ":")))
            out.write("\n")
            written += len(spans)
    return written


def write_replay(directory: Path, chunks: Iterable[SimChunk], *,
                 metrics: bool = True) -> list[Path]:
    """Per chunk `spans-<start_ns>.json` and, with metrics, `metrics-<start_ns>.prom`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for chunk in chunks:
        paths.append(write_otlp_json(directory / f"spans-{chunk.start_ns}.json", chunk.spans))
        if metrics:
            prom = directory / f"metrics-{chunk.start_ns}.prom"
            prom.write_text(render_exposition(chunk.metrics), encoding="utf-8")
            paths.append(prom)
    return paths


def write_ground_truth(path: Path, incidents: Iterable[GroundTruth]) -> Path:
    path.write_text(ground_truth_json(incidents), encoding="utf-8")
    return path
