"""Detector benchmark (`opsbot bench detect`): scoring throughput and a full recalculation.

Throughput: `sample_scores` (one z per span) and `score_windows` (the alerting
unit) over synthetic spans of `keys` keys, each next to a plain Python loop doing
the same arithmetic, timed in the same run (best of REPEATS, interleaved): for
`sample_scores` a per-span loop (log, subtract, divide, clamp, compare); for
`score_windows` a per-window loop (group spans by key and minute in a dict, sort
each window's log-durations, interpolate median and p90, both z, the larger one
capped and gated, back to ms), run on every span of the first keys so that its
windows are as large as the fast path's.

Recalculation: baselines of every key from `days x 24` hourly partial aggregates
(array sums over the hours of each bucket, then the detectors' own
`baseline_from_aggregate`) plus severity thresholds from each key's 30 days of
per-minute window scores (`compute_thresholds`); next to it, `build_baseline` over
per-hour aggregate objects, timed on a few keys and scaled to all of them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from detectors import (
    Baseline,
    BaselineConfig,
    BaselineTable,
    BucketType,
    LatencyAggregate,
    ScoringConfig,
    SeverityConfig,
    SeverityThresholds,
    baseline_from_aggregate,
    build_baseline,
    compute_thresholds,
    sample_scores,
    score_windows,
)
from detectors.aggregate import bin_edges_ms
from detectors.buckets import FALLBACK_ORDER, HOUR_NS, bucket_id, bucket_id_of_partial
from detectors.scoring import quantile_se_factor
from detectors.transforms import LOG_MIN_MS

__all__ = [
    "Partials",
    "cli",
    "fast_scores",
    "main",
    "make_partials",
    "make_spans",
    "make_table",
    "recalculate",
    "reference_baseline",
    "reference_scores",
    "reference_windows",
    "run_detect_bench",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NOW_NS = 1_700_000_000 * 10**9 // HOUR_NS * HOUR_NS  # an hour boundary: the recalculation time
ALERT_Z = 4.0  # the comparison both paths make: is the span's z at least this?
REFERENCE_SPAN_CAP = 200_000  # the Python loops run on about this many spans, then scale
REPEATS = 5  # every timed path: best of this many runs, so a busy machine skews less
REFERENCE_KEYS = 5  # build_baseline over aggregate objects: timed on this many keys
KEY_CHUNK = 50  # keys whose partials are held in memory at once (50 x 720 x 202 x 4 B = 29 MB)


# ---- throughput --------------------------------------------------------------------------


def make_spans(n: int, keys: int, seed: int = 0) -> tuple[FloatArray, IntArray, IntArray]:
    """Durations (ms, lognormal per key), key indices and start times over ten minutes."""
    rng = np.random.default_rng(seed)
    key_idx = rng.integers(0, keys, n, dtype=np.int64)
    level = rng.normal(3.0, 1.0, keys)
    durations = np.exp(level[key_idx] + rng.normal(0.0, 0.5, n))
    start_ns = NOW_NS + rng.integers(0, 600 * 10**9, n, dtype=np.int64)
    return durations, key_idx, start_ns


def make_table(keys: int, seed: int = 1) -> BaselineTable:
    """Warm global baselines of `keys` keys, each from 500 sampled durations."""
    rng = np.random.default_rng(seed)
    config = BaselineConfig()
    level = np.random.default_rng(0).normal(3.0, 1.0, keys)  # the same levels as make_spans
    baselines: list[Baseline | None] = []
    for k in range(keys):
        agg = LatencyAggregate()
        agg.add(np.exp(level[k] + rng.normal(0.0, 0.5, 500)))
        first_seen = NOW_NS - 30 * 24 * HOUR_NS
        baselines.append(
            baseline_from_aggregate(agg, BucketType.GLOBAL, NOW_NS, first_seen, config)
        )
    return BaselineTable.from_baselines(baselines)


def reference_scores(
    durations: list[float], key_idx: list[int], center: list[float], scale: list[float],
    max_z: float,
) -> tuple[list[float], int]:
    """The per-span Python loop: z of each span, clamped, and how many reach ALERT_Z."""
    out: list[float] = []
    alerts = 0
    for d, k in zip(durations, key_idx, strict=True):
        z = (math.log(max(d, LOG_MIN_MS)) - center[k]) / scale[k]
        z = max(-max_z, min(max_z, z))
        if z >= ALERT_Z:
            alerts += 1
        out.append(z)
    return out, alerts


def fast_scores(
    durations: FloatArray, key_idx: IntArray, table: BaselineTable, max_z: float
) -> tuple[FloatArray, int]:
    """The same numbers through `sample_scores`."""
    z = sample_scores(durations, key_idx, table, max_z)
    return z, int(np.count_nonzero(z >= ALERT_Z))


WindowRow = tuple[int, float, float, float]  # count, median ms, p90 ms, score


def reference_windows(
    durations: list[float], key_idx: list[int], start_ns: list[int], table: BaselineTable,
    config: ScoringConfig,
) -> dict[tuple[int, int], WindowRow]:
    """The per-window Python loop: what `score_windows` computes, one window at a time.

    Latency keys only (log transform), as in this benchmark. Keyed by (key, window start ns).
    """
    center, scale, log_p90 = table.center.tolist(), table.scale.tolist(), table.log_p90.tolist()
    warm = table.warm.tolist()
    se_med, se_p90 = quantile_se_factor(0.5), quantile_se_factor(0.9)
    window_ns = config.window_s * 1_000_000_000
    windows: dict[tuple[int, int], list[float]] = {}
    for d, k, s in zip(durations, key_idx, start_ns, strict=True):
        logs = windows.get((k, s // window_ns))
        if logs is None:
            logs = windows[(k, s // window_ns)] = []
        logs.append(math.log(max(d, LOG_MIN_MS)))
    out: dict[tuple[int, int], WindowRow] = {}
    for (k, w), logs in windows.items():
        logs.sort()
        n = len(logs)
        med, p90 = _sorted_quantile(logs, 0.5), _sorted_quantile(logs, 0.9)
        root_n = math.sqrt(min(n, config.max_effective_n))
        z_med = (med - center[k]) / (scale[k] * se_med / root_n)
        z_p90 = (p90 - log_p90[k]) / (scale[k] * se_p90 / root_n)
        score = z_med if n < config.min_tail_count or abs(z_med) >= abs(z_p90) else z_p90
        score = max(-config.max_z, min(config.max_z, score))
        if not warm[k] or n < config.min_window_count:
            score = math.nan
        out[(k, w * window_ns)] = (n, math.exp(med), math.exp(p90), score)
    return out


def _sorted_quantile(values: list[float], q: float) -> float:
    """np.quantile(method='linear') of an ascending list, with score_windows' arithmetic."""
    pos = q * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (pos - lo) * (values[hi] - values[lo])


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _best_of(paths: dict[str, tuple[Any, ...]]) -> tuple[dict[str, Any], dict[str, float]]:
    """Run every path REPEATS times, interleaved; each one's last result and best time."""
    results: dict[str, Any] = {}
    best = dict.fromkeys(paths, math.inf)
    for _ in range(REPEATS):
        for name, (fn, *args) in paths.items():
            results[name], seconds = _timed(fn, *args)
            best[name] = min(best[name], seconds)
    return results, best


def _throughput(spans: int, keys: int) -> dict[str, Any]:
    durations, key_idx, start_ns = make_spans(spans, keys)
    table, config = make_table(keys), ScoringConfig()
    n_ref = min(spans, REFERENCE_SPAN_CAP)
    ref_keys = max(1, keys * n_ref // spans)  # every span of these keys: full-size windows
    in_ref = key_idx < ref_keys
    ref_args = (
        durations[:n_ref].tolist(), key_idx[:n_ref].tolist(),
        table.center.tolist(), table.scale.tolist(), config.max_z,
    )
    window_args = (
        durations[in_ref].tolist(), key_idx[in_ref].tolist(), start_ns[in_ref].tolist(),
        table, config,
    )
    results, best = _best_of({
        "span_loop": (reference_scores, *ref_args),
        "window_loop": (reference_windows, *window_args),
        "sample_scores": (fast_scores, durations, key_idx, table, config.max_z),
        "score_windows": (score_windows, durations, key_idx, start_ns, table, config),
    })
    span_rate = n_ref / best["span_loop"]
    n_window_ref = int(in_ref.sum())
    window_rate = n_window_ref / best["window_loop"]
    sample_rate, fast_window_rate = spans / best["sample_scores"], spans / best["score_windows"]
    return {
        "spans": spans,
        "keys": keys,
        "repeats": REPEATS,
        "reference": {"spans": n_ref, "seconds": best["span_loop"], "per_s": span_rate},
        "window_reference": {
            "spans": n_window_ref, "keys": ref_keys, "windows": len(results["window_loop"]),
            "seconds": best["window_loop"], "per_s": window_rate,
        },
        "sample_scores": {
            "seconds": best["sample_scores"], "samples_per_s": sample_rate,
            "vs_reference": sample_rate / span_rate,
        },
        "score_windows": {
            "seconds": best["score_windows"], "spans_per_s": fast_window_rate,
            "windows": len(results["score_windows"]),
            "vs_reference": fast_window_rate / window_rate,
            "vs_span_loop": fast_window_rate / span_rate,
        },
    }


# ---- recalculation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partials:
    """Hourly latency partials of some keys as arrays: [key, hour] (and [key, hour, bin])."""

    hours: IntArray  # hour index since the epoch of each column
    count: IntArray
    sum_log: FloatArray
    sumsq_log: FloatArray
    min_ms: FloatArray
    max_ms: FloatArray
    hist: npt.NDArray[np.int32]

    def aggregate(self, k: int, cols: IntArray) -> LatencyAggregate:
        """Key k's partials at the given hour columns, merged into one aggregate."""
        if cols.size == 0:
            return LatencyAggregate()
        return LatencyAggregate(
            count=int(self.count[k, cols].sum()),
            sum_log=float(self.sum_log[k, cols].sum()),
            sumsq_log=float(self.sumsq_log[k, cols].sum()),
            min_ms=float(self.min_ms[k, cols].min()),
            max_ms=float(self.max_ms[k, cols].max()),
            hist=self.hist[k, cols].sum(axis=0, dtype=np.int64),
        )


def make_partials(keys: int, days: int, seed: int) -> Partials:
    """`days x 24` hourly partials per key ending at NOW_NS: counts with a daily cycle,
    a lognormal histogram per hour (binned expected counts) and matching log-moments."""
    rng = np.random.default_rng(seed)
    n_h = days * 24
    hours = NOW_NS // HOUR_NS - n_h + np.arange(n_h, dtype=np.int64)
    daily = 1.0 + 0.5 * np.sin(2 * np.pi * (hours % 24) / 24)
    count = rng.poisson(600 * daily, (keys, n_h)).astype(np.int64)
    mu = rng.normal(3.0, 1.0, (keys, 1)) + 0.1 * rng.normal(0, 1, (keys, n_h))
    sigma = 0.5
    edges = np.log(np.maximum(np.append(bin_edges_ms(), np.inf), 1e-300))
    cdf = 0.5 * (1 + _erf_approx((edges[None, None, :] - mu[..., None]) / (sigma * math.sqrt(2))))
    hist = np.rint(np.diff(cdf, axis=2) * count[..., None]).astype(np.int32)
    count = hist.sum(axis=2).astype(np.int64)  # the histogram is the truth
    sum_log = mu * count
    sumsq_log = (mu * mu + sigma * sigma) * count
    return Partials(
        hours, count, sum_log, sumsq_log,
        np.exp(mu - 3 * sigma), np.exp(mu + 3 * sigma), hist,
    )


def _erf_approx(x: FloatArray) -> FloatArray:
    """Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): synthetic data only, never scored."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152073
                + t * 1.061405429))))
    return np.asarray(s * (1.0 - poly * np.exp(-a * a)), dtype=np.float64)


def _bucket_columns(hours: IntArray, now_ns: int) -> dict[BucketType, IntArray]:
    """Hour columns of each bucket type's baseline at now (all hours lie in the window)."""
    day, hour = hours // 24, hours % 24
    out: dict[BucketType, IntArray] = {}
    for bucket_type in FALLBACK_ORDER:
        ids = np.array([bucket_id_of_partial(bucket_type, int(d), int(h))
                        for d, h in zip(day, hour, strict=True)])
        out[bucket_type] = np.flatnonzero(ids == bucket_id(bucket_type, now_ns)).astype(np.int64)
    return out


def recalculate(part: Partials, config: BaselineConfig, now_ns: int = NOW_NS) -> list[Baseline]:
    """Baseline of every key of `part` at now: the first warm bucket type, as build_baseline."""
    in_window = (part.hours >= now_ns // HOUR_NS - config.window_days * 24) & (
        part.hours < now_ns // HOUR_NS
    )
    columns = {
        b: cols[in_window[cols]] for b, cols in _bucket_columns(part.hours, now_ns).items()
    }
    first_seen = int(part.hours[np.argmax(in_window)]) * HOUR_NS
    out: list[Baseline] = []
    for k in range(part.count.shape[0]):
        result: Baseline | None = None
        for bucket_type in FALLBACK_ORDER:
            agg = part.aggregate(k, columns[bucket_type])
            result = baseline_from_aggregate(agg, bucket_type, now_ns, first_seen, config)
            if result.warm:
                break
        assert result is not None
        out.append(result)
    return out


def reference_baseline(part: Partials, k: int, config: BaselineConfig) -> Baseline:
    """Key k through `build_baseline` over one aggregate object per hour (the object path)."""
    rows = []
    for j, h in enumerate(part.hours.tolist()):
        rows.append((h // 24, h % 24, part.aggregate(k, np.array([j]))))
    first_seen = int(part.hours[0]) * HOUR_NS
    return build_baseline(rows, LatencyAggregate(), NOW_NS, first_seen, config)


def _key_chunks(keys: int) -> Iterator[tuple[int, int]]:
    for start in range(0, keys, KEY_CHUNK):
        yield start, min(keys, start + KEY_CHUNK)


def _recalculation(keys: int, days: int) -> dict[str, Any]:
    config, severity = BaselineConfig(window_days=days), SeverityConfig()
    max_z = ScoringConfig().max_z
    baseline_s = threshold_s = 0.0
    reference_s, reference_keys = 0.0, 0
    thresholds: list[SeverityThresholds] = []
    history_per_key = days * 24 * 60  # one window score a minute
    for start, stop in _key_chunks(keys):
        part = make_partials(stop - start, days, seed=start)  # generating is not timed
        history = np.random.default_rng(start).standard_normal((stop - start, history_per_key))
        baselines, seconds = _timed(recalculate, part, config)
        baseline_s += seconds
        t = time.perf_counter()
        thresholds.extend(compute_thresholds(h, severity, "up", max_z) for h in history)
        threshold_s += time.perf_counter() - t
        if reference_keys < min(REFERENCE_KEYS, keys):
            n = min(REFERENCE_KEYS - reference_keys, stop - start)
            t = time.perf_counter()
            for k in range(n):
                reference_baseline(part, k, config)
            reference_s += time.perf_counter() - t
            reference_keys += n
        assert len(baselines) == stop - start
    reference_total = reference_s / max(reference_keys, 1) * keys
    total = baseline_s + threshold_s
    return {
        "keys": keys,
        "days": days,
        "partials": keys * days * 24,
        "history_scores": keys * history_per_key,
        "baselines_s": baseline_s,
        "thresholds_s": threshold_s,
        "total_s": total,
        "reference_baselines_s": reference_total,
        "reference_keys_timed": reference_keys,
        "baselines_vs_reference": reference_total / baseline_s if baseline_s else math.inf,
        "thresholds": len(thresholds),
    }


# ---- entry points ------------------------------------------------------------------------


def run_detect_bench(spans: int = 1_000_000, keys: int = 1000, days: int = 30) -> dict[str, Any]:
    """Both parts; a JSON-ready dict of figures."""
    if spans < 1 or keys < 1 or days < 1:
        raise ValueError("spans, keys and days must all be >= 1")
    return {"throughput": _throughput(spans, keys), "recalculation": _recalculation(keys, days)}


def render_table(result: dict[str, Any]) -> Table:
    tp, rc = result["throughput"], result["recalculation"]
    ref, wref = tp["reference"], tp["window_reference"]
    table = Table(
        title=f"Detector scoring: {tp['spans']:,} spans over {tp['keys']:,} keys "
        f"(best of {tp['repeats']})"
    )
    for column in ("path", "seconds", "rate", "vs its Python loop"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row(
        f"per-span Python loop ({ref['spans']:,} spans)", f"{ref['seconds']:.3f}",
        f"{ref['per_s']:,.0f} spans/s", "1.0x",
    )
    sample, window = tp["sample_scores"], tp["score_windows"]
    table.add_row(
        "sample_scores", f"{sample['seconds']:.3f}", f"{sample['samples_per_s']:,.0f} samples/s",
        f"{sample['vs_reference']:.1f}x",
    )
    table.add_row(
        f"per-window Python loop ({wref['spans']:,} spans, {wref['windows']:,} windows)",
        f"{wref['seconds']:.3f}", f"{wref['per_s']:,.0f} spans/s", "1.0x",
    )
    table.add_row(
        f"score_windows ({window['windows']:,} windows)", f"{window['seconds']:.3f}",
        f"{window['spans_per_s']:,.0f} spans/s",
        f"{window['vs_reference']:.1f}x ({window['vs_span_loop']:.1f}x per-span loop)",
    )
    table.add_section()
    table.add_row(
        f"recalculation: {rc['days']} d x {rc['keys']:,} keys, baselines "
        f"({rc['partials']:,} partials)", f"{rc['baselines_s']:.3f}", "", "",
    )
    table.add_row(
        f"  thresholds ({rc['history_scores']:,} window scores)", f"{rc['thresholds_s']:.3f}",
        "", "",
    )
    table.add_row("  total", f"{rc['total_s']:.3f}", "", "")
    table.add_row(
        f"  build_baseline over objects (from {rc['reference_keys_timed']} keys, scaled)",
        f"{rc['reference_baselines_s']:.3f}", "",
        f"{rc['baselines_vs_reference']:.1f}x slower",
    )
    return table


def cli(spans: int = 1_000_000, keys: int = 1000, days: int = 30, as_json: bool = False) -> int:
    """`opsbot bench detect`: print the figures; 0 on success, 2 on bad sizes."""
    try:
        result = run_detect_bench(spans, keys, days)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render_table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detect", description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    return cli(args.spans, args.keys, args.days, args.json)


if __name__ == "__main__":
    sys.exit(main())
