"""`opsbot eval sim`: detection quality on simulated weeks with every incident family injected.

Per seed: a clean warm-up (`WARMUP_DAYS`), then one incident of each of the 15
scenario families at seeded times (`schedule_incidents`), replayed hour by hour
through the real `DetectionEngine` into a real SQLite file, on the spans' own
clock. Scored against the simulator's GroundTruth:
- recall: an injected incident is detected when an anomaly opens on one of its
  affected keys between its start and its end + `MATCH_SLACK_NS`; "SEV1-3" counts
  only anomalies whose peak severity is SEV1..SEV3;
- time to detect: from injection to the end of the window that opened the
  first matching anomaly (the earliest moment the data to decide existed);
- precision: share of the engine's incidents with a member that matches an
  injected incident;
- false alerts per 100 keys per day: anomalies opened outside every incident
  window (+ `CLEAN_MARGIN_NS`) after warm-up, per key-day of that clean time;
- origin: the matched engine incident's named origin service is the injected
  root-cause service.
The ingest pipeline (aggregates, exemplars) is left out: the engine keeps its
own rolling baselines, so the figures are the detector's, not the store's speed.
The simulator's resource metrics (CPU, memory, request rate) are scored too.
`baseline_model` "raw" or "both" re-runs the same seeds with span baselines modelled as
mean/std of raw ms (`BaselineConfig.latency_model = "raw"`), the naive model issue 3 asks
the log model to beat; "both" reports it beside the log figures as `raw_mean_std`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rich.console import Console
from rich.table import Table

from bot.detection.engine import DetectionEngine
from bot.detection.events import EngineEvent
from bot.settings import Settings
from bot.simulator import DAY_NS, HOUR_NS, MINUTE_NS, GroundTruth, Simulator, schedule_incidents
from bot.simulator.metrics import CPU_PERCENT, MEMORY_MB, REQUEST_RATE
from bot.store import SqliteStore
from bot.store.records import AnomalyRecord, IncidentRecord
from detectors.config import BaselineConfig, DetectorConfig

__all__ = ["SeedResult", "cli", "run_seed", "summarize"]

T0 = 19_723 * DAY_NS  # Monday 2024-01-01 00:00 UTC
WARMUP_DAYS = 2  # the global baseline needs a day; incidents start after two
MATCH_SLACK_NS = 5 * MINUTE_NS
CLEAN_MARGIN_NS = 60 * MINUTE_NS  # after an incident ends, effects (recovery) may linger
# Service metrics scored besides the spans: resources only. The simulator's error-rate and
# p99 metrics are read from the same spans the engine scores per key and window, so they
# would only repeat those alerts with a noisier, per-minute estimate.
RESOURCE_METRICS = frozenset({CPU_PERCENT, MEMORY_MB, REQUEST_RATE})
BaselineModel = Literal["log", "raw", "both"]
RAW_KEY = "raw_mean_std"  # where "both" puts the raw model's summary, beside the log one


@dataclass(slots=True)
class SeedResult:
    seed: int
    days: float
    keys: int
    incidents: list[dict[str, Any]] = field(default_factory=list)
    engine_incidents: int = 0
    engine_incidents_matched: int = 0
    false_alerts: int = 0
    clean_key_days: float = 0.0
    seconds: float = 0.0
    windows_scored: int = 0


async def run_seed(
    seed: int, weeks: float, db: Path, count: int | None = None, metrics: bool = True,
    config: DetectorConfig | None = None,
) -> SeedResult:
    """Simulate, detect, and score one seed (count: incidents, default one per family)."""
    days = weeks * 7
    horizon = int(days * DAY_NS) // HOUR_NS * HOUR_NS
    start = T0 + WARMUP_DAYS * DAY_NS
    truth = schedule_incidents(seed, start, T0 + horizon - start, 15 if count is None else count)
    sim = Simulator(seed, incidents=truth)
    opened_at: dict[str, int] = {}

    async def on_event(ev: EngineEvent) -> None:
        if ev.subject == "anomaly" and ev.kind == "opened" and ev.anomaly is not None:
            opened_at.setdefault(ev.anomaly.uid, ev.t_ns)

    began = time.perf_counter()
    async with SqliteStore(db) as store:
        engine = DetectionEngine(store, config)
        engine.subscribe(on_event)
        await engine.start()
        for batch, samples in sim.batches(T0, horizon, step_ns=HOUR_NS):
            engine.feed(batch)
            if metrics:
                engine.feed_metrics([s for s in samples if s.name in RESOURCE_METRICS])
            await engine.advance()
        await engine.advance(T0 + horizon + HOUR_NS)  # close the last windows; quiet ones resolve
        anomalies = await store.list_anomalies()
        incidents = {i.id: i for i in await store.list_incidents()}
        keys = len(engine.key_names)  # every span key of the traffic, scored or not
    result = SeedResult(seed, days, keys, seconds=time.perf_counter() - began,
                        windows_scored=engine.stats.windows_scored)
    _score(result, truth, anomalies, incidents, opened_at, engine.window_ns, T0 + horizon)
    return result


def _matches(a: AnomalyRecord, g: GroundTruth) -> bool:
    """Same time, and a span key the incident affects (or a metric of such a key's service)."""
    where = a.key in g.affected_keys or (
        "{" in a.key and a.service in {k.split(":", 1)[0] for k in g.affected_keys})
    return where and g.start_ns - MATCH_SLACK_NS <= a.started_ns <= g.end_ns + MATCH_SLACK_NS


def _score(
    r: SeedResult, truth: list[GroundTruth], anomalies: list[AnomalyRecord],
    incidents: dict[int, IncidentRecord], opened_at: dict[str, int], window_ns: int, end_ns: int,
) -> None:
    for g in truth:
        hits = sorted((a for a in anomalies if _matches(a, g)),
                      key=lambda a: opened_at.get(a.uid, a.started_ns))
        severe = [a for a in hits if a.peak_severity <= 3]
        first = hits[0] if hits else None
        inc = incidents.get(first.incident_id or -1) if first else None
        r.incidents.append({
            "scenario": g.scenario.value, "root_service": g.root_service,
            "start_ns": g.start_ns, "detected": bool(hits), "detected_sev1_3": bool(severe),
            "severity": min((a.peak_severity for a in hits), default=None),
            "ttd_s": None if first is None else
            (opened_at.get(first.uid, first.started_ns) + window_ns - g.start_ns) / 1e9,
            "origin": inc.origin_service if inc else None,
            "origin_ok": bool(inc and inc.origin_service == g.root_service),
        })
    matched = {a.incident_id for a in anomalies if any(_matches(a, g) for g in truth)}
    live = [i for i in incidents.values() if "merged_into" not in i.details]
    r.engine_incidents = len(live)
    r.engine_incidents_matched = sum(1 for i in live if i.id in matched)
    busy = [(g.start_ns - MATCH_SLACK_NS, g.end_ns + CLEAN_MARGIN_NS) for g in truth]
    clean_from = T0 + WARMUP_DAYS * DAY_NS
    r.false_alerts = sum(1 for a in anomalies if a.started_ns >= clean_from
                         and not any(lo <= a.started_ns <= hi for lo, hi in busy))
    busy_ns = sum(min(hi, end_ns) - max(lo, clean_from) for lo, hi in busy if hi > clean_from)
    r.clean_key_days = r.keys * max(end_ns - clean_from - busy_ns, 0) / DAY_NS


def summarize(results: list[SeedResult]) -> dict[str, Any]:
    """Pooled figures over seeds, plus per-scenario detection counts."""
    inc = [i for r in results for i in r.incidents]
    ttd = [i["ttd_s"] for i in inc if i["ttd_s"] is not None]
    detected = [i for i in inc if i["detected"]]
    engine_inc = sum(r.engine_incidents for r in results)
    key_days = sum(r.clean_key_days for r in results)
    per_scenario: dict[str, list[int]] = {}
    for i in inc:
        row = per_scenario.setdefault(i["scenario"], [0, 0, 0, 0])
        row[0] += 1
        row[1] += i["detected"]
        row[2] += i["detected_sev1_3"]
        row[3] += i["origin_ok"]
    return {
        "seeds": len(results), "days_per_seed": results[0].days if results else 0,
        "injected": len(inc),
        "recall": len(detected) / len(inc) if inc else None,
        "recall_sev1_3": sum(i["detected_sev1_3"] for i in inc) / len(inc) if inc else None,
        "precision": (sum(r.engine_incidents_matched for r in results) / engine_inc
                      if engine_inc else None),
        "median_ttd_s": statistics.median(ttd) if ttd else None,
        "false_alerts_per_100_keys_day": (100 * sum(r.false_alerts for r in results) / key_days
                                          if key_days else None),
        "false_alerts": sum(r.false_alerts for r in results),
        "clean_key_days": key_days,
        "origin_accuracy": (sum(i["origin_ok"] for i in detected) / len(detected)
                            if detected else None),
        "per_scenario": {k: dict(zip(("injected", "detected", "sev1_3", "origin_ok"), v,
                                     strict=True)) for k, v in sorted(per_scenario.items())},
        "seconds": sum(r.seconds for r in results),
        "windows_scored": sum(r.windows_scored for r in results),
    }


def cli(
    *, settings: Settings, seeds: int, weeks: float, as_json: bool,
    baseline_model: str = "log",
) -> int:
    """`opsbot eval sim`: returns the exit code. baseline_model: log | raw | both."""
    err = Console(stderr=True)
    if seeds < 1 or weeks * 7 < WARMUP_DAYS + 1:
        err.print(f"[red]need --seeds >= 1 and --weeks >= {(WARMUP_DAYS + 1) / 7:.2f}[/] "
                  f"({WARMUP_DAYS} warm-up days plus at least one day with incidents)")
        return 2
    if baseline_model not in get_args(BaselineModel):
        err.print(f"[red]--baseline-model {baseline_model!r}: use log (the detector), raw "
                  "(mean/std of raw ms) or both (the two side by side)[/]")
        return 2
    models = ["log", "raw"] if baseline_model == "both" else [baseline_model]
    runs = {m: summarize(_run_seeds(seeds, weeks, m, err)) for m in models}
    summary = runs[models[0]]
    if baseline_model == "raw":
        summary["baseline_model"] = "raw"
    if baseline_model == "both":
        summary[RAW_KEY] = runs["raw"]
    if as_json:
        Console().print_json(json.dumps(summary))
    else:
        _print(summary)
        if baseline_model == "both":
            _print_comparison(runs["log"], runs["raw"])
    return 0


def _run_seeds(seeds: int, weeks: float, model: str, err: Console) -> list[SeedResult]:
    """Every seed with the span baselines of one latency model, each in its own SQLite file."""
    config = DetectorConfig(baseline=BaselineConfig(latency_model="raw" if model == "raw"
                                                    else "log"))
    results = []
    with tempfile.TemporaryDirectory(prefix="opsbot-eval-sim-") as tmp:
        for seed in range(seeds):
            res = asyncio.run(run_seed(seed, weeks, Path(tmp) / f"seed{seed}.db", config=config))
            err.print(f"seed {seed} ({model}): {sum(i['detected'] for i in res.incidents)}/"
                      f"{len(res.incidents)} detected, {res.false_alerts} false alerts, "
                      f"{res.seconds:.0f}s", highlight=False)
            results.append(res)
    return results


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _print(s: dict[str, Any]) -> None:
    out = Console()
    head = Table(title=f"opsbot eval sim: {s['seeds']} seeds x {s['days_per_seed']:g} days, "
                       f"{s['injected']} injected incidents")
    head.add_column("measure")
    head.add_column("value", justify="right")
    head.add_column("target", justify="right")
    head.add_row("recall (SEV1-3)", _fmt(s["recall_sev1_3"], ".3f"), ">= 0.95")
    head.add_row("recall (any severity)", _fmt(s["recall"], ".3f"), "")
    head.add_row("incident precision", _fmt(s["precision"], ".3f"), "")
    head.add_row("median time to detect (s)", _fmt(s["median_ttd_s"], ".0f"), "<= 120")
    head.add_row("false alerts / 100 keys / day", _fmt(s["false_alerts_per_100_keys_day"], ".3f"),
                 "<= 1")
    head.add_row("origin = injected root service", _fmt(s["origin_accuracy"], ".3f"), "")
    out.print(head)
    per = Table(title="per scenario")
    for col in ("scenario", "injected", "detected", "SEV1-3", "origin ok"):
        per.add_column(col)
    for name, row in s["per_scenario"].items():
        per.add_row(name, *(str(row[c]) for c in ("injected", "detected", "sev1_3", "origin_ok")))
    out.print(per)
    out.print(f"{s['windows_scored']:,} key-windows scored in {s['seconds']:.0f}s")


def _print_comparison(log: dict[str, Any], raw: dict[str, Any]) -> None:
    """The two latency models on the same seeds and traffic, one row each."""
    table = Table(title="span baseline: log-duration model vs mean/std of raw ms")
    for col in ("model", "recall SEV1-3", "recall", "precision", "median TTD (s)",
                "false / 100 keys / day"):
        table.add_column(col, justify="right")
    for name, s in (("log (default)", log), ("raw mean/std", raw)):
        table.add_row(name, _fmt(s["recall_sev1_3"], ".3f"), _fmt(s["recall"], ".3f"),
                      _fmt(s["precision"], ".3f"), _fmt(s["median_ttd_s"], ".0f"),
                      _fmt(s["false_alerts_per_100_keys_day"], ".3f"))
    Console().print(table)
