"""The `opsbot` command line (typer). Each sub-command is a thin shell over the library."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bot.settings import Settings, SettingsError, load_settings
from bot.store import StoreError

__all__ = ["app", "main"]

app = typer.Typer(
    name="opsbot",
    help="Chat-ops bot for on-call engineers: span/metric anomaly detection, Slack alerts, "
    "and an investigation agent.",
    no_args_is_help=True,
    add_completion=False,
)
eval_app = typer.Typer(help="Measure detection and agent quality on labelled data.")
bench_app = typer.Typer(help="Benchmarks: figures next to a reference measured in the same run.")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")

err = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (see README)")
]


class NotBuiltError(RuntimeError):
    """A sub-command whose capability has not landed yet."""


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def _not_built(what: str, issue: str) -> None:
    err.print(
        f"[yellow]opsbot {what} is not built yet[/] ({issue}); nothing was done."
    )
    raise typer.Exit(3)


def _run(coro: object) -> object:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except StoreError as exc:
        err.print(f"[red]store error:[/] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


@app.command()
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help="OTLP JSON, Jaeger JSON or Nezha span CSV files")
    ],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
) -> None:
    """Load span files into the store (aggregates and exemplars) on the spans' own timestamps."""
    settings = _settings(config)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        err.print(f"[red]no such file:[/] {', '.join(missing)}")
        raise typer.Exit(2)
    from bot.ingest.files import UnsupportedFileError
    from bot.ingest.ingest_files import ingest_files

    try:
        summary = _run(ingest_files(settings, files, progress=err if not as_json else None))
    except UnsupportedFileError as exc:
        err.print(f"[red]cannot load:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(_format_summary(summary))  # type: ignore[arg-type]


def _format_summary(s: dict[str, Any]) -> str:
    lines = [f"ingested {s['spans']} spans from {s['files']} file(s) into {s['db_path']}"]
    lines.append(f"span keys: {s['keys']}, aggregate rows: {s['aggregate_rows']}, "
                 f"exemplar traces: {s['exemplar_traces']}")
    rejected = s.get("rejected") or {}
    if rejected:
        lines.append("rejected: " + ", ".join(f"{k}={v}" for k, v in rejected.items()))
    return "\n".join(lines)


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the service: OTLP receiver, trace polling, detector loop and Slack bot."""
    from bot.server import run_service
    from bot.slack.app import SlackConfigError

    settings = _settings(config)
    _logging(settings.log_level)
    try:
        _run(run_service(settings, err))
    except (OSError, SlackConfigError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err)])


@app.command()
def demo(
    config: ConfigOpt = None,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    seconds_per_minute: Annotated[
        float, typer.Option(help="wall seconds per simulated minute")
    ] = 1.0,
) -> None:
    """Embedded defaults: simulator history + live OTLP traffic into the receiver and store."""
    from bot.demo import run_demo
    from bot.slack.app import SlackConfigError

    settings = _settings(config)
    try:
        summary = _run(run_demo(settings, err, duration, seconds_per_minute))
    except (OSError, SlackConfigError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.print_json(json.dumps(summary))


def _delegate(module: str, func: str, issue: str, **kwargs: object) -> None:
    """Call `module.func(**kwargs) -> exit code`; a module that has not landed says so (exit 3)."""
    import importlib

    try:
        target = getattr(importlib.import_module(module), func)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            _not_built(f"{module}.{func}", issue)
        raise
    except AttributeError:
        _not_built(f"{module}.{func}", issue)
    code = target(**kwargs)
    if code:
        raise typer.Exit(int(code))


@app.command()
def recalc(
    scope: Annotated[
        str, typer.Argument(help="a span key (service:operation), a metric series "
                                 "(name{label=\"value\"}), a service, or all")
    ] = "all",
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would change")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recalculate baselines and severity thresholds (--dry-run: show the alert diff)."""
    settings = _settings(config)
    _delegate("bot.detection.commands", "recalc_command", "issue 3: detection engine",
              settings=settings, scope=scope, dry_run=dry_run, as_json=as_json,
              out=out, err=err)


@app.command()
def ask(
    question: str,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    backend: Annotated[
        str | None, typer.Option(help="model backend: llamacpp, openai, none")
    ] = None,
) -> None:
    """Ask the investigation agent a question about the stored telemetry."""
    settings = _settings(config)
    _delegate("agent.commands", "ask_command", "issue 5: investigation agent",
              settings=settings, question=question, as_json=as_json, backend=backend,
              out=out, err=err)


@app.command()
def anomalies(
    config: ConfigOpt = None,
    since: Annotated[str | None, typer.Option(
        help="only anomalies open or ended since: ISO time, or a duration (2h, 7d) back from "
        "the newest span in the store (so replayed history works as well as live traffic)"
    )] = None,
    state: Annotated[str | None, typer.Option(help="open or resolved")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List anomalies: key, start/end, peak severity and score, incident and its origin."""
    settings = _settings(config)
    _delegate("bot.detection.commands", "anomalies_command", "issue 3: detection engine",
              settings=settings, since=since, state=state, as_json=as_json, out=out, err=err)


model_app = typer.Typer(help="The investigation agent's model file.")
app.add_typer(model_app, name="model")


@model_app.command("pull")
def model_pull(
    config: ConfigOpt = None,
    url: Annotated[str | None, typer.Option(help="download from here instead of the hub")] = None,
    dest: Annotated[Path | None, typer.Option(help="where to write the GGUF")] = None,
) -> None:
    """Download the fine-tuned GGUF and verify its checksum (or say how to place it by hand)."""
    settings = _settings(config)
    _delegate("agent.model_pull", "pull_command", "issue 5: investigation agent",
              settings=settings, url=url, dest=dest, out=out, err=err)


@eval_app.command("nab")
def eval_nab(
    data: Annotated[Path, typer.Option(help="NAB-layout directory (data/, labels/)")] = Path(
        "../shared/data/nab"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    scores_out: Annotated[Path | None, typer.Option(help="write per-file score CSVs here")] = None,
    detector: Annotated[list[str] | None, typer.Option(help="only these detectors")] = None,
) -> None:
    """Score opsbot and the reference detectors on the NAB corpus."""
    from bench.nab.__main__ import main as nab_main

    if not (data / "labels").is_dir():
        err.print(f"[red]no NAB corpus at {data}[/]: pass --data DIR (with data/ and labels/)")
        raise typer.Exit(2)
    argv = ["--data", str(data)] + (["--json"] if as_json else [])
    argv += ["--scores-out", str(scores_out)] if scores_out else []
    for d in detector or []:
        argv += ["--detector", d]
    code = nab_main(argv)
    if code:
        raise typer.Exit(code)


@eval_app.command("sim")
def eval_sim(
    config: ConfigOpt = None,
    seeds: Annotated[int, typer.Option(help="simulator seeds")] = 3,
    weeks: Annotated[float, typer.Option(help="simulated weeks per seed")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    baseline_model: Annotated[str, typer.Option(
        "--baseline-model",
        help="span baseline: log (default), raw (mean/std of raw ms) or both side by side",
    )] = "log",
) -> None:
    """Detection quality on simulated weeks with injected incidents of every scenario."""
    settings = _settings(config)
    _delegate("bench.sim", "cli", "issue 3: detection engine", settings=settings, seeds=seeds,
              weeks=weeks, as_json=as_json, baseline_model=baseline_model)


@eval_app.command("nezha")
def eval_nezha(
    config: ConfigOpt = None,
    data: Annotated[Path, typer.Option(help="Nezha data directory")] = Path("../shared/data/nezha"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Detection on the Nezha fault-injection traces: faults caught within 5 minutes."""
    settings = _settings(config)
    _delegate("bench.nezha", "cli", "issue 3: detection engine", settings=settings, data=data,
              as_json=as_json)


@eval_app.command("agent")
def eval_agent(
    config: ConfigOpt = None,
    backend: Annotated[str | None, typer.Option(help="llamacpp, openai or none")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Score the agent's answers on the case set (pass rate, latency)."""
    settings = _settings(config)
    _delegate("agent.evaluation", "cli", "issue 5: investigation agent", settings=settings,
              backend=backend, as_json=as_json)


@bench_app.command("ingest")
def bench_ingest(
    spans: Annotated[int, typer.Option(help="spans to ingest")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """OTLP protobuf ingestion into the store vs bare protobuf decoding."""
    from bench.ingest import print_ingest_table, run_ingest_bench

    result = run_ingest_bench(spans)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        print_ingest_table(result, out)


@bench_app.command("detect")
def bench_detect(
    spans: Annotated[int, typer.Option(help="spans to score")] = 1_000_000,
    keys: Annotated[int, typer.Option(help="keys in the recalculation")] = 1000,
    days: Annotated[int, typer.Option(help="days of history in the recalculation")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Scoring throughput and a full recalculation vs a per-span Python loop."""
    _delegate("bench.detect", "cli", "issue 3: detection engine", spans=spans, keys=keys,
              days=days, as_json=as_json)


@bench_app.command("agent")
def bench_agent(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The agent graph's total time vs bare llama.cpp generation for the same prompt."""
    settings = _settings(config)
    _delegate("agent.bench", "cli", "issue 5: investigation agent", settings=settings,
              as_json=as_json)


@bench_app.command("alert")
def bench_alert(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Alert latency (decision -> chat.postMessage) under load vs a bare round trip."""
    settings = _settings(config)
    _delegate("bench.alert", "cli", "issue 4: Slack bot", settings=settings, as_json=as_json)


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        sys.exit(2)
