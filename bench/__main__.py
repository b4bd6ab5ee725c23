"""Run the benchmarks: ``python -m bench [--quick] [--only NAME ...] [--results DIR]``.

Each benchmark runs in turn; its tables are printed and saved with the machine it ran on to
``bench/results/<name>.json`` (``bench/results/quick/`` with ``--quick``, so a smoke run never
overwrites full results; ``--results DIR`` to choose). A benchmark that fails is reported and
skipped, its previous results file left alone, and the exit status is 1. A final table sums up the
headline numbers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import BENCHMARKS  # noqa: E402
from bench._common import RESULTS, machine_info, ratio, save_json  # noqa: E402

Runner = Callable[[bool], dict[str, Any]]

INDEX_QUICK_ARGS = ["--n", "2000", "--queries", "100"]


def run_index(quick: bool) -> dict[str, Any]:
    """``bench/bench_index.py`` (HNSW libraries side by side, embedswitch's own index included)."""
    from bench import bench_index

    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        out = Path(tmp) / "index.json"
        argv = ["bench_index.py", "--embedswitch", "--out", str(out), *(INDEX_QUICK_ARGS if quick else [])]
        saved, sys.argv = sys.argv, argv
        try:
            bench_index.main()
        finally:
            sys.argv = saved
        report = json.loads(out.read_text(encoding="utf-8"))
    rows = [_index_row(row) for row in report["results"]]
    rows += [{"library": name, "skipped": reason} for name, reason in report.get("skipped", {}).items()]
    by_name = {row["library"]: row for row in report["results"]}
    summary: dict[str, Any] = {f"{name} recall@10": row["recall_at_10"] for name, row in by_name.items()}
    if "hnswlib" in by_name and "embedswitch.HnswIndex" in by_name:  # the seam's cost, target <= 1.1
        summary["embedswitch / hnswlib p50"] = ratio(
            by_name["embedswitch.HnswIndex"]["p50_ms"], by_name["hnswlib"]["p50_ms"]
        )
    return {
        "params": {**report["params"], "hnsw": report["hnsw_params"], "data": report["data"]},
        "tables": {"HNSW libraries": rows},
        "summary": summary,
        "report": report,
    }


def _index_row(row: dict[str, Any]) -> dict[str, Any]:
    deletes = row.get("deletes", {})
    flat = {key: value for key, value in row.items() if key != "deletes"}
    flat["deletes"] = "yes" if deletes.get("supported") else f"no: {deletes.get('reason', '?')}"
    for key in ("ms_per_1k", "deleted_ids_returned", "recall_at_10_after"):
        if key in deletes:
            flat[f"delete {key}"] = deletes[key]
    return flat


def runner(name: str) -> Runner:
    if name == "index":
        return run_index
    module = importlib.import_module(f"bench.{name}")
    run: Runner = module.run
    return run


# -- printing ------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return str(value)


def print_tables(console: Console, name: str, record: dict[str, Any]) -> None:
    for title, rows in record["tables"].items():
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        table = Table(title=f"{name}: {title}", title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(column)) for column in columns))
        console.print(table)
    for note in record.get("notes", []):
        console.print(f"  note: {note}")


def print_summary(console: Console, records: dict[str, dict[str, Any]], failed: dict[str, str]) -> None:
    table = Table(title="summary", title_justify="left")
    for column in ("benchmark", "elapsed s", "result", "value"):
        table.add_column(column, overflow="fold")
    for name, record in records.items():
        first = True
        for key, value in record["summary"].items():
            table.add_row(
                name if first else "", _cell(record["elapsed_s"]) if first else "", key, _cell(value)
            )
            first = False
    for name, error in failed.items():
        table.add_row(name, "", "FAILED", error)
    console.print(table)


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and fast models (a smoke run)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help=f"where to write the JSON files (default {RESULTS}, or {RESULTS / 'quick'} with --quick)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name for name in BENCHMARKS if args.only is None or name in args.only]
    console = Console(width=None if sys.stdout.isatty() else 200)
    records: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    mode = "quick" if args.quick else "full"
    results = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    for name in names:
        console.rule(f"{name} ({mode})")
        machine = machine_info()
        start = time.perf_counter()
        try:
            result = runner(name)(args.quick)
        except Exception as exc:
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        record = {
            "benchmark": name,
            "mode": mode,
            **result,
            "elapsed_s": round(time.perf_counter() - start, 1),
            "machine": {**machine, "load_average_at_end": round(os.getloadavg()[0], 2)},
        }
        records[name] = record
        print_tables(console, name, record)
        path = save_json(results / f"{name}.json", record)
        console.print(f"wrote {path}")
    console.rule("summary")
    print_summary(console, records, failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
