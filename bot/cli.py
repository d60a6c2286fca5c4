"""The `opsbot` command line (typer). Each sub-command is a thin shell over the library."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

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
    files: Annotated[list[Path], typer.Argument(help="OTLP JSON, Jaeger JSON or Nezha span CSV files")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
) -> None:
    """Load span files into the store (aggregates and exemplars), using the spans' own timestamps."""
    settings = _settings(config)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        err.print(f"[red]no such file:[/] {', '.join(missing)}")
        raise typer.Exit(2)
    from bot.ingest.ingest_files import ingest_files
    summary = _run(ingest_files(settings, files, progress=err if not as_json else None))
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(_format_summary(summary))  # type: ignore[arg-type]


def _format_summary(s: dict[str, object]) -> str:
    lines = [f"ingested {s['spans']} spans from {s['files']} file(s) into {s['db_path']}"]
    lines.append(f"span keys: {s['keys']}, aggregate rows: {s['aggregate_rows']}, "
                 f"exemplar traces: {s['exemplar_traces']}")
    rejected = s.get("rejected") or {}
    if rejected:
        lines.append("rejected: " + ", ".join(f"{k}={v}" for k, v in rejected.items()))  # type: ignore[union-attr]
    return "\n".join(lines)


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the service: OTLP receiver into the store (detector loop and Slack bot: see issues 3, 4)."""
    from bot.server import Service, serve

    settings = _settings(config)
    _logging(settings.log_level)
    err.print(
        "[yellow]note:[/] the detector loop and the Slack bot are not built yet (issues 3, 4): "
        "spans are stored, but no anomalies are raised or posted."
    )

    async def main() -> None:
        async with Service.running(settings) as service:
            await serve(service)

    try:
        _run(main())
    except OSError as exc:
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
    seconds_per_minute: Annotated[float, typer.Option(help="wall seconds per simulated minute")] = 1.0,
) -> None:
    """Embedded defaults: simulator history + live OTLP traffic into the receiver and store."""
    from bot.demo import run_demo

    settings = _settings(config)
    err.print(
        "[yellow]note:[/] detection and alerts are not built yet (issues 3, 4): the demo shows "
        "ingestion (simulated history, then live OTLP into the receiver) and the store."
    )
    try:
        summary = _run(run_demo(settings, err, duration, seconds_per_minute))
    except OSError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.print_json(json.dumps(summary))


@app.command()
def recalc(config: ConfigOpt = None, dry_run: bool = typer.Option(False, "--dry-run")) -> None:
    """Recalculate baselines and severity thresholds."""
    _settings(config)
    _not_built("recalc", "issue 3: detection engine")


@app.command()
def ask(question: str, config: ConfigOpt = None) -> None:
    """Ask the investigation agent a question."""
    _settings(config)
    _not_built("ask", "issue 5: investigation agent")


@app.command()
def anomalies(config: ConfigOpt = None) -> None:
    """List anomalies."""
    _settings(config)
    _not_built("anomalies", "issue 3: detection engine")


@eval_app.command("nab")
def eval_nab(config: ConfigOpt = None) -> None:
    """Score detectors on the NAB corpus."""
    _not_built("eval nab", "issue 3: detection engine")


@bench_app.command("ingest")
def bench_ingest(
    spans: Annotated[int, typer.Option(help="spans to ingest")] = 1_000_000,
) -> None:
    """OTLP protobuf ingestion into the store vs bare protobuf decoding."""
    _not_built("bench ingest", "issue 2: ingestion benchmark")


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        sys.exit(2)
