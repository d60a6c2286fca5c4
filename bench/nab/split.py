"""How much of the novelty detector's NAB score is fitted: tune on some categories, score the rest.

`python -m bench.nab.split --data ../shared/data/nab [--json]`

`NoveltyConfig` is tuned by coordinate descent over `SEARCH_SPACE` on a tuning set
(objective: the mean of the standard and reward-low-FP scores, each at that set's
best corpus threshold), starting from `NAB_NOVELTY`. The held-out files are then
scored with the tuned config AND the tuning set's thresholds, so nothing is learnt
from them; the score with thresholds re-optimised on them is shown beside it. The
categories are NAB's folders, the two artificial ones merged (artificialNoAnomaly
has no window, so it cannot be scored alone). The last row tunes and scores on
everything: the in-sample figure that `python -m bench.nab` reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from bench.nab.corpus import NabCorpus, NabFile, NabLayoutError
from bench.nab.opsbot import NAB_NOVELTY
from bench.nab.scoring import PROFILES, Profile, score_alerts
from bench.nab.sweep import normalise, optimise_threshold
from detectors.novelty import NoveltyConfig, novelty_scores

__all__ = [
    "SEARCH_SPACE",
    "SPLITS",
    "SplitResult",
    "category",
    "main",
    "run_splits",
    "scored_at",
    "tune",
]

FloatArray = npt.NDArray[np.float64]
Scorer = Callable[[NabFile, NoveltyConfig], FloatArray]

H, D = 3600.0, 86400.0
SEARCH_SPACE: Mapping[str, tuple[float, ...]] = {
    "history_s": (7 * D, 14 * D, 8000 * 300.0, 60 * D, 120 * D, 400 * D),
    "warmup_s": (6 * H, 12 * H, 300 * 300.0, 48 * H),
    "seasonal_smooth_s": (1 * H, 2 * H, 4 * H),
    "seasonal_history_s": (2 * D, 1500 * 300.0, 20 * D, 60 * D),
    "seasonal_weight": (0.2, 0.3, 0.5),
    "spread_window_s": (4 * H, 8 * H, 24 * H),
    "spread_history_s": (3.5 * D, 3000 * 300.0, 30 * D, 100 * D),
    "spread_weight": (0.2, 0.3, 0.5),
    "hold_s": (12 * H, 24 * H, 600 * 300.0, 96 * H),
}
MAX_PASSES = 3

ARTIFICIAL, AWS, KNOWN_CAUSE = "artificial", "realAWSCloudwatch", "realKnownCause"
SPLITS: tuple[tuple[frozenset[str], frozenset[str]], ...] = (  # (tune on, score on)
    (frozenset({ARTIFICIAL, AWS}), frozenset({KNOWN_CAUSE})),
    (frozenset({KNOWN_CAUSE}), frozenset({ARTIFICIAL, AWS})),
    (frozenset({AWS, KNOWN_CAUSE}), frozenset({ARTIFICIAL})),
    (frozenset({ARTIFICIAL, KNOWN_CAUSE}), frozenset({AWS})),
)


def category(key: str) -> str:
    """NAB folder of a file key, the two artificial folders as one."""
    folder = key.split("/", 1)[0]
    return ARTIFICIAL if folder.startswith("artificial") else folder


@dataclass(frozen=True, slots=True)
class Scored:
    """NAB score and threshold of one file set under one profile."""

    score: float
    threshold: float


@dataclass(frozen=True, slots=True)
class SplitResult:
    """One split: the tuned config, its scores on the tuning set and on the held-out set."""

    tune_on: tuple[str, ...]
    score_on: tuple[str, ...]
    config: NoveltyConfig
    evaluations: int  # configs scored while tuning
    tuned: Mapping[str, Scored]  # profile -> on the tuning set (in-sample)
    held_out: Mapping[str, Scored]  # with the tuning set's thresholds
    held_out_refit: Mapping[str, Scored]  # thresholds re-optimised on the held-out set

    def to_json(self) -> dict[str, Any]:
        def table(m: Mapping[str, Scored]) -> dict[str, Any]:
            return {p: {"score": s.score, "threshold": s.threshold} for p, s in m.items()}

        return {
            "tune_on": list(self.tune_on),
            "score_on": list(self.score_on),
            "config": dataclasses.asdict(self.config),
            "evaluations": self.evaluations,
            "tuned": table(self.tuned),
            "held_out": table(self.held_out),
            "held_out_refit": table(self.held_out_refit),
        }


class ScoreCache:
    """Novelty scores per (config, file): tuning revisits the same configs across splits."""

    def __init__(self, scorer: Scorer | None = None) -> None:
        self._scorer = scorer or _novelty
        self._cache: dict[tuple[NoveltyConfig, str], FloatArray] = {}

    def __call__(self, files: Sequence[NabFile], config: NoveltyConfig) -> list[FloatArray]:
        out = []
        for f in files:
            key = (config, f.key)
            if key not in self._cache:
                self._cache[key] = self._scorer(f, config)
            out.append(self._cache[key])
        return out


def _novelty(f: NabFile, config: NoveltyConfig) -> FloatArray:
    return novelty_scores(f.timestamps_ns, f.values, config)


def best_scores(scores: Sequence[FloatArray], files: Sequence[NabFile]) -> dict[str, Scored]:
    """Each profile's best NAB score over `files` and the threshold that gives it."""
    labels = [f.labels for f in files]
    out = {}
    for profile in PROFILES:
        best = optimise_threshold(scores, labels, profile)
        out[profile.name] = Scored(best.score, best.threshold)
    return out


def scored_at(
    scores: Sequence[FloatArray], files: Sequence[NabFile], profile: Profile, threshold: float
) -> float:
    """Normalised NAB score of `files` alerting at a fixed threshold (nothing fitted to them)."""
    raw = sum(
        score_alerts(f.labels, s >= threshold, profile).raw
        for s, f in zip(scores, files, strict=True)
    )
    windows = sum(f.labels.scored_windows for f in files)
    return normalise(raw, -profile.fn_weight * windows, profile.tp_weight * windows)


def _objective(scored: Mapping[str, Scored]) -> float:
    return float(np.mean([s.score for s in scored.values()]))


def tune(
    files: Sequence[NabFile],
    cache: ScoreCache,
    start: NoveltyConfig,
    space: Mapping[str, Sequence[float]] = SEARCH_SPACE,
    max_passes: int = MAX_PASSES,
) -> tuple[NoveltyConfig, dict[str, Scored], int]:
    """Coordinate descent: each parameter in turn takes its best value, others held; repeat
    until a pass changes nothing. Ties keep the current value. Returns the config, its
    scores and how many configs were scored."""
    current = start
    scored = best_scores(cache(files, current), files)
    seen = {current}
    for _ in range(max_passes):
        changed = False
        for name, values in space.items():
            for value in values:
                changes: dict[str, Any] = {name: value}  # every searched field is a float
                candidate = dataclasses.replace(current, **changes)
                seen.add(candidate)
                result = best_scores(cache(files, candidate), files)
                if _objective(result) > _objective(scored) + 1e-9:
                    current, scored, changed = candidate, result, True
        if not changed:
            break
    return current, scored, len(seen)


def run_splits(
    files: Sequence[NabFile],
    splits: Sequence[tuple[frozenset[str], frozenset[str]]] = SPLITS,
    space: Mapping[str, Sequence[float]] = SEARCH_SPACE,
    start: NoveltyConfig | None = None,
    cache: ScoreCache | None = None,
) -> list[SplitResult]:
    """Every split, then the whole corpus (tuned and scored on all files)."""
    cache = cache or ScoreCache()
    begin = start or NAB_NOVELTY
    everything = frozenset(category(f.key) for f in files)
    results = []
    for tune_on, score_on in [*splits, (everything, everything)]:
        train = [f for f in files if category(f.key) in tune_on]
        test = [f for f in files if category(f.key) in score_on]
        config, tuned, n = tune(train, cache, begin, space)
        test_scores = cache(test, config)
        held = {
            p.name: Scored(scored_at(test_scores, test, p, tuned[p.name].threshold),
                           tuned[p.name].threshold)
            for p in PROFILES
        }
        results.append(
            SplitResult(
                tuple(sorted(tune_on)), tuple(sorted(score_on)), config, n, tuned, held,
                best_scores(test_scores, test),
            )
        )
    return results


_SHORT = {ARTIFICIAL: "art", AWS: "AWS", KNOWN_CAUSE: "KnownCause"}


def _names(categories: Sequence[str]) -> str:
    if set(_SHORT) <= set(categories):
        return "all"
    return "+".join(_SHORT.get(c, c) for c in categories)


def render(results: Sequence[SplitResult]) -> Table:
    table = Table(title="NAB novelty: tuned on some categories, scored on the others")
    for column in ("tuned on", "scored on", "in-sample", "held out", "own thr."):
        table.add_column(column, justify="left" if "on" in column else "right", no_wrap=True)

    def pair(m: Mapping[str, Scored]) -> str:
        return " / ".join(f"{m[p.name].score:.1f}" for p in PROFILES)

    for r in results:
        table.add_row(
            _names(r.tune_on), _names(r.score_on), pair(r.tuned), pair(r.held_out),
            pair(r.held_out_refit),
        )
    table.caption = (
        "standard / reward-low-FP. held out: the tuned config and its thresholds as they are;"
        " own thr.: thresholds re-optimised on the held-out files"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nab.split", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="NAB-layout directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    try:
        corpus = NabCorpus.open(args.data)
    except NabLayoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = [corpus.load(k) for k in corpus.keys]
    results = run_splits(files)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        Console().print(render(results))
        for r in results:
            print(f"tuned on {_names(r.tune_on)}: {_changed(r.config)}")
    return 0


def _changed(config: NoveltyConfig) -> str:
    """The parameters a tuning moved away from NAB_NOVELTY."""
    start = dataclasses.asdict(NAB_NOVELTY)
    moved = {k: v for k, v in dataclasses.asdict(config).items() if start[k] != v}
    return ", ".join(f"{k}={v:g}" for k, v in moved.items()) or "unchanged"


if __name__ == "__main__":
    sys.exit(main())
