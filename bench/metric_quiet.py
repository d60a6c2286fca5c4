"""How often the metric-series path opens on clean traffic (`python -m bench.metric_quiet`).

The simulator's metric series (CPU, memory, request rate, latency percentiles per
service) without any incident, from an empty store for `--days` days, through the
engine's `MetricSeriesDetection` with the default config (`--novelty`: the novelty
gate on): every open is a false
alert. Printed per 100 series-days, split by what opened it: the novelty gate (a
sample beyond the series' range opens at once, whichever decision then sets the
severity) or the z path's k-of-n rule; first day included, so a young store's
behaviour is part of the figure. Seeds are independent runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from typing import Any

from bot.detection.metric_series import MetricPoint, MetricSeriesDetection
from bot.simulator import MINUTE_NS, Simulator
from detectors.config import DetectorConfig

__all__ = ["clean_opens", "main"]

START_NS = 1_795_996_800 * 10**9  # 2026-11-30 00:00 UTC, a Monday


def clean_opens(days: int, seeds: list[int], config: DetectorConfig | None = None
                ) -> dict[str, Any]:
    """Opens of every seed's clean metric series over `days` days, by what opened them."""
    by: Counter[str] = Counter()
    series = 0
    for seed in seeds:
        sim = Simulator(seed)
        detection = MetricSeriesDetection(config or DetectorConfig())
        keys: set[str] = set()
        for chunk in sim.replay(START_NS, days * 1440 * MINUTE_NS, 60 * MINUTE_NS):
            points = [MetricPoint(s.name, s.labels, s.ts_ns, s.value) for s in chunk.metrics]
            keys.update(f"{p.name}{sorted(p.labels.items())}" for p in points)
            for event, detail in detection.observe(points):
                if event.kind == "opened":
                    by["novelty" if "novelty" in detail else "z_path"] += 1
        series += len(keys)
    series_days = series * days
    return {
        "seeds": seeds, "days": days, "series": series, "opens": sum(by.values()),
        "by_opener": dict(by),
        "per_100_series_days": 100.0 * sum(by.values()) / series_days if series_days else 0.0,
        "novelty_per_100_series_days": 100.0 * by["novelty"] / series_days if series_days else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metric_quiet", description=__doc__)
    parser.add_argument("--days", type=int, default=10, help="simulated days per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--novelty", action="store_true",
                        help="with the novelty gate on (OPSBOT_NOVELTY_ENABLED=true)")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    config = DetectorConfig()
    if args.novelty:
        config = replace(config, novelty=replace(config.novelty, enabled=True))
    print(json.dumps(clean_opens(args.days, args.seeds, config), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
