"""`opsbot eval nezha`: faults injected into OnlineBoutique (Nezha RCA data), caught or not.

What the data allows: per-pod metrics at 1-minute steps for the fault day
2022-08-22 (03:51 to 23:59 UTC; 24 faults between 03:53 and 07:54), while the
span CSVs hold only nine isolated minutes around faults and one fault-free
minute: too little to baseline an operation, so spans are not scored here. The
faults of 2022-08-23 have no metrics or traces in the data and are reported as
not evaluable.

Protocol (causal, one pass through the real `DetectionEngine` and a real SQLite
file): the fault-free evening of the day (16:00-23:59) is replayed first, moved
24 hours back, as history; then the day itself from 03:51 in time order. The
global baseline warms up after 6 hours (the history holds 8). A fault is caught
when an anomaly on the faulty service or one of its callers (the day's
`dependency.csv`) opens, or an open one records a new severe window, between one
minute before and five minutes after injection ("opened" counts only new ones;
"active" also counts an anomaly opened earlier, e.g. by the previous fault on the
same pod eight minutes before, that has a severe window in the interval).
False alerts: anomalies opened on the fault-free hours 08:15-15:59, which the
history does not contain.
"""

from __future__ import annotations

import asyncio
import csv
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bot.detection.engine import DetectionEngine
from bot.detection.events import EngineEvent
from bot.detection.metric_series import MetricPoint
from bot.settings import Settings
from detectors.config import BaselineConfig, DetectorConfig

__all__ = ["cli", "evaluate", "pod_service"]

DAY = "2022-08-22"
SECOND_NS = 1_000_000_000
HISTORY_FROM_H, HISTORY_TO_H = 16, 24  # the fault-free evening, replayed a day earlier
CLEAN_FROM_H, CLEAN_TO_H = 8.25, 16  # fault-free hours scored for false alerts
BEFORE_S, AFTER_S = 60, 300
POD_METRICS = ("CpuUsageRate(%)", "MemoryUsageRate(%)", "PodClientLatencyP90(s)",
               "PodServerLatencyP90(s)", "PodClientLatencyP99(s)", "PodServerLatencyP99(s)",
               "PodWorkload(Ops)", "PodSuccessRate(%)")
FRONT_METRICS = ("SuccessRate(%)", "LatencyP50(s)", "LatencyP90(s)", "LatencyP99(s)")
CONFIG = DetectorConfig(baseline=replace(BaselineConfig(), global_min_span_s=6 * 3600.0))


class NezhaDataError(ValueError):
    """The directory is not Nezha's layout; the message says what is missing."""


def pod_service(pod: str) -> str:
    """'frontend-579b9bff58-t2dbm' -> 'frontend' (drop the replica-set and pod hashes)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else parts[0]


def _points(metric_dir: Path) -> Iterator[MetricPoint]:
    for path in sorted(metric_dir.glob("*_metric.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                ts = int(row["TimeStamp"]) * SECOND_NS
                service = pod_service(row["PodName"])
                for name in POD_METRICS:
                    if row.get(name, "") != "":
                        yield MetricPoint(name, {"service": service}, ts, float(row[name]))
    front = metric_dir / "front_service.csv"
    if front.is_file():
        with front.open(newline="") as f:
            for row in csv.DictReader(f):
                ts = int(row["TimeStamp"]) * SECOND_NS
                for name in FRONT_METRICS:
                    if row.get(name, "") != "":
                        yield MetricPoint("Front" + name, {"service": "frontend"}, ts,
                                          float(row[name]))


def _callers(dependency: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with dependency.open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["Target"], set()).add(row["Source"])
    return out


def _faults(data: Path) -> list[dict[str, Any]]:
    faults = []
    for path in sorted((data / "rca_data").glob("*/*-fault_list.json")):
        for hour_faults in json.loads(path.read_text()).values():
            for f in hour_faults:
                faults.append({"time": f["inject_time"], "ts_ns": int(f["inject_timestamp"])
                               * SECOND_NS, "pod": f["inject_pod"], "type": f["inject_type"],
                               "service": pod_service(f["inject_pod"]), "day": path.parent.name})
    return faults


async def evaluate(data: Path, db: Path) -> dict[str, Any]:
    metric_dir = data / "rca_data" / DAY / "metric"
    if not metric_dir.is_dir() or not (metric_dir / "dependency.csv").is_file():
        raise NezhaDataError(f"{metric_dir} with dependency.csv not found: pass --data pointing "
                             "at Nezha's folder (rca_data/, construct_data/)")
    points = sorted(_points(metric_dir), key=lambda p: p.ts_ns)
    day0 = min(p.ts_ns for p in points) // (86400 * SECOND_NS) * 86400 * SECOND_NS
    history = [replace(p, ts_ns=p.ts_ns - 86400 * SECOND_NS) for p in points
               if HISTORY_FROM_H * 3600 <= (p.ts_ns - day0) / SECOND_NS < HISTORY_TO_H * 3600]
    callers = _callers(metric_dir / "dependency.csv")
    seen: list[EngineEvent] = []

    async def collect(ev: EngineEvent) -> None:
        seen.append(ev)

    from bot.store import SqliteStore

    began = time.perf_counter()
    async with SqliteStore(db) as store:
        engine = DetectionEngine(store, CONFIG)
        engine.subscribe(collect)
        await engine.start()
        for (src, dst) in ((s, d) for d, ss in callers.items() for s in ss):
            engine.graph.edges[(src, dst)] = 1
        stream = history + points
        for i in range(0, len(stream), 2000):
            engine.feed_metrics(stream[i:i + 2000])
            await engine.advance()
        await engine.advance(stream[-1].ts_ns + 3600 * SECOND_NS)
        anomalies = await store.list_anomalies()
    return _score(_faults(data), callers, seen, anomalies, day0, time.perf_counter() - began,
                  len(stream))


def _score(faults: list[dict[str, Any]], callers: dict[str, set[str]], seen: list[EngineEvent],
           anomalies: list[Any], day0: int, seconds: float, samples: int) -> dict[str, Any]:
    marks = [(e.kind, e.anomaly.service, e.t_ns) for e in seen if e.anomaly is not None]
    rows = []
    for f in faults:
        if f["day"] != DAY:
            rows.append({**f, "evaluable": False, "caught": None, "opened": None})
            continue
        ok = {f["service"]} | callers.get(f["service"], set())
        lo, hi = f["ts_ns"] - BEFORE_S * SECOND_NS, f["ts_ns"] + AFTER_S * SECOND_NS
        hits = [(k, s) for k, s, t in marks if s in ok and lo <= t <= hi and k != "resolved"]
        active = [a for a in anomalies if a.service in ok and a.started_ns <= hi
                  and int(a.details.get("last_anomalous_ns", a.started_ns)) >= lo]
        rows.append({**f, "evaluable": True, "caught": bool(hits), "active": bool(active),
                     "opened": any(k == "opened" for k, _ in hits),
                     "on_faulty_service": any(s == f["service"] for _, s in hits)})
    clean_lo = day0 + int(CLEAN_FROM_H * 3600) * SECOND_NS
    clean_hi = day0 + int(CLEAN_TO_H * 3600) * SECOND_NS
    clean = [a for a in anomalies if clean_lo <= a.started_ns < clean_hi]
    evaluable = [r for r in rows if r["evaluable"]]
    return {
        "faults": len(rows), "evaluable": len(evaluable),
        "caught": sum(r["caught"] for r in evaluable),
        "opened": sum(r["opened"] for r in evaluable),
        "active": sum(r["active"] for r in evaluable),
        "on_faulty_service": sum(r["on_faulty_service"] for r in evaluable),
        "fault_free_hours": CLEAN_TO_H - CLEAN_FROM_H,
        "fault_free_alerts": len(clean),
        "fault_free_alert_keys": sorted({a.key for a in clean}),
        "by_type": _by_type(evaluable), "faults_detail": rows,
        "samples": samples, "seconds": round(seconds, 2),
    }


def _by_type(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in rows:
        cell = out.setdefault(r["type"], [0, 0])
        cell[0] += 1
        cell[1] += int(r["caught"])
    return out


def cli(*, settings: Settings, data: Path, as_json: bool) -> int:
    """`opsbot eval nezha`: returns the exit code."""
    err = Console(stderr=True)
    if not data.is_dir():
        err.print(f"[red]no Nezha data at {data}[/]: pass --data DIR (Nezha's folder with "
                  "rca_data/ and construct_data/)")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="opsbot-eval-nezha-") as tmp:
            result = asyncio.run(evaluate(data, Path(tmp) / "nezha.db"))
    except NezhaDataError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    if as_json:
        Console().print_json(json.dumps(result))
        return 0
    out = Console()
    table = Table(title=f"opsbot eval nezha: {result['evaluable']} of {result['faults']} faults "
                        f"evaluable (the rest have no data)")
    table.add_column("fault type")
    table.add_column("caught within 5 min", justify="right")
    for kind, (n, caught) in sorted(result["by_type"].items()):
        table.add_row(kind, f"{caught}/{n}")
    table.add_row("all", f"{result['caught']}/{result['evaluable']}")
    out.print(table)
    n = result["evaluable"]
    out.print(f"new anomaly opened for {result['opened']}/{n}; on the faulty service itself for "
              f"{result['on_faulty_service']}/{n}; an anomaly (possibly opened by an earlier "
              f"fault) active on it or a caller in the window for {result['active']}/{n}")
    out.print(f"fault-free {result['fault_free_hours']:g} h: {result['fault_free_alerts']} alerts "
              f"({', '.join(result['fault_free_alert_keys'][:5])})")
    return 0
