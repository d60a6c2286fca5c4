"""`python -m bench.nab --data ../shared/data/nab [--json] [--scores-out DIR] [--detector NAME]...`.

The same run as `opsbot eval nab`, for benchmarking without the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from bench.nab.harness import default_detectors, run_nab_eval
from bench.nab.report import render_table

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__)
    parser.add_argument(
        "--data", type=Path, required=True, help="NAB-layout directory (data/, labels/)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--scores-out", type=Path, help="write per-file timestamp,value,score,alert CSVs here"
    )
    parser.add_argument("--detector", action="append", help="only these detectors (repeatable)")
    args = parser.parse_args(argv)
    detectors = default_detectors()
    if args.detector:
        unknown = set(args.detector) - {d.name for d in detectors}
        if unknown:
            parser.error(
                f"unknown detector(s) {sorted(unknown)}; known: {[d.name for d in detectors]}"
            )
        detectors = [d for d in detectors if d.name in args.detector]
    report = run_nab_eval(args.data, detectors, args.scores_out)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        Console().print(render_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
