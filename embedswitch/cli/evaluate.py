"""``embedswitch evaluate``: versions scored on judged queries (a BEIR folder), and
``embedswitch evaluate-candidate``: a candidate compared with the live version on logged queries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .._errors import InvalidRequest
from ..client import Client
from ..evaluation.beir import Qrels, Queries, load_judgments
from ..evaluation.metrics import metric_names
from ..evaluation.offline import summarize
from ..results import CandidateEvaluation, Distribution, EvaluateResult, VersionScores
from ..specs import MAX_BACKFILL_SAMPLE, MAX_EVAL_QUERIES, MAX_K
from ._common import (
    DEFAULT_URL,
    JsonOption,
    KindOption,
    UrlOption,
    connect,
    console,
    print_json,
    progress_bar,
    table,
    text,
)

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
KOption = Annotated[int, typer.Option("-k", min=1, max=MAX_K, help="Cutoff of nDCG and MRR.")]


def evaluate(
    collection: CollectionArgument,
    versions: Annotated[
        str,
        typer.Option("--versions", help="Versions to evaluate, comma-separated: v1,v2.", show_default=False),
    ],
    beir: Annotated[
        Path,
        typer.Option(
            "--beir",
            help="BEIR folder: queries.jsonl and qrels/<split>.tsv (corpus.jsonl is not read).",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option("--split", help="Which qrels file: qrels/<split>.tsv.")] = "test",
    k: KOption = 10,
    kind: KindOption = "doc",
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=MAX_EVAL_QUERIES, help="Queries per request to the server.")
    ] = 50,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Score versions on judged queries through their serving search: nDCG@k, recall@100, MRR@k
    and latency. Versions may still be building (their scores then cover what they hold)."""
    names = [name.strip() for name in versions.split(",") if name.strip()]
    with connect(url) as client:
        queries, qrels = _judgments(beir, split)
        request = {"versions": names, "k": k, "kind": kind, "per_query": True}
        if as_json:
            result = _run(client, collection, request, queries, qrels, batch, None)
            print_json(result)
            return
        out = console()
        with progress_bar(out) as progress:
            task = progress.add_task("evaluating", total=len(qrels))
            result = _run(
                client, collection, request, queries, qrels, batch, lambda n: progress.advance(task, n)
            )
        out.print(scores_table(result, f"{len(qrels)} judged queries of {beir} ({split})"))


def _judgments(beir: Path, split: str) -> tuple[Queries, Qrels]:
    try:
        return load_judgments(beir, split)
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"can't read judged queries from {beir}: {exc}") from None


def _run(
    client: Client,
    collection: str,
    request: dict[str, Any],
    queries: Queries,
    qrels: Qrels,
    batch: int,
    advance: Callable[[int], None] | None,
) -> EvaluateResult:
    """The judged queries in chunks of ``batch`` requests, then every version's per-query scores
    summarised exactly as the server summarises one request."""
    qids = list(qrels)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    last: EvaluateResult | None = None
    for start in range(0, len(qids), batch):
        chunk = qids[start : start + batch]
        body = {**request, "queries": {q: queries[q] for q in chunk}, "qrels": {q: qrels[q] for q in chunk}}
        last = client.evaluate(collection, body)
        for name, scores in last.versions.items():
            rows.setdefault(name, {}).update(scores.per_query or {})
        if advance is not None:
            advance(len(chunk))
    assert last is not None
    k = request["k"]
    versions = {
        name: VersionScores.model_validate(
            {**scores.model_dump(exclude={"per_query"}), **summarize(rows[name], k), "per_query": None}
        )
        for name, scores in last.versions.items()
    }
    return EvaluateResult(k=k, kind=last.kind, versions=versions)


def scores_table(result: EvaluateResult, caption: str) -> Table:
    ndcg, recall, mrr = metric_names(result.k)
    out = table(
        "version", "model", "state", ndcg, recall, mrr, "p50 ms", "p99 ms", "queries", caption=caption
    )
    for name, scores in result.versions.items():
        out.add_row(
            text(name),
            text(scores.model_label),
            text(scores.state),
            text(f"{scores[ndcg]:.4f}"),
            text(f"{scores[recall]:.4f}"),
            text(f"{scores[mrr]:.4f}"),
            text(f"{scores.latency_ms.p50:.2f}"),
            text(f"{scores.latency_ms.p99:.2f}"),
            text(scores.queries),
        )
    for column in out.columns[3:]:
        column.justify = "right"
    warnings = [scores.warning for scores in result.versions.values() if scores.warning]
    if warnings:
        out.caption = "\n".join([caption, *warnings])
    return out


def evaluate_candidate(
    collection: CollectionArgument,
    version: Annotated[str, typer.Argument(help="The candidate version.", show_default=False)],
    sample: Annotated[
        int, typer.Option("--sample", min=1, max=MAX_EVAL_QUERIES, help="Logged queries to replay.")
    ] = 200,
    against: Annotated[
        str | None, typer.Option("--against", help="The live version (default: the one with most traffic).")
    ] = None,
    backfill_sample: Annotated[
        int,
        typer.Option(
            "--backfill-sample", min=0, max=MAX_BACKFILL_SAMPLE, help="Random records to embed into it first."
        ),
    ] = 0,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed of the samples.")] = None,
    k: KOption = 10,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Compare a candidate (building or ready) with the live version on a sample of logged
    searches, over the records both have embedded. Needs the server's query log (see
    docs/operations.md)."""
    request: dict[str, Any] = {"sample": sample, "k": k, "backfill_sample": backfill_sample}
    if against is not None:
        request["against"] = against
    if seed is not None:
        request["seed"] = seed
    with connect(url) as client:
        out = console()
        with out.status(f"replaying up to {sample} logged queries on {version} and the live version"):
            result = client.evaluate_candidate(collection, version, request)
    if as_json:
        print_json(result)
        return
    print_comparison(out, result)


def print_comparison(out: Console, result: CandidateEvaluation) -> None:
    overlap, coverage, info = result.overlap, result.coverage, result.sample
    rows = table(
        "version",
        "model",
        "state",
        "p50 ms",
        "p99 ms",
        "top-1 mean",
        f"top-{overlap.k} mean",
        "nDCG",
        title=f"{result.candidate} against {result.against}",
    )
    for name, side in result.versions.items():
        rows.add_row(
            text(name),
            text(side.model_label),
            text(side.state),
            text(f"{side.latency_ms.p50:.2f}"),
            text(f"{side.latency_ms.p99:.2f}"),
            text(_mean(side.top1)),
            text(_mean(side.topk)),
            text("-" if side.ndcg is None else f"{side.ndcg:.4f}"),
        )
    for column in rows.columns[3:]:
        column.justify = "right"
    out.print(rows)
    out.print(
        f"overlap@{overlap.k}: Jaccard {overlap.jaccard:.3f}, "
        f"rank-biased overlap {overlap.rbo:.3f} (p={overlap.p})\n"
        f"records compared: {coverage.shared} of {coverage.records} ({coverage.ratio:.1%}) held by both\n"
        f"queries: {info.used} used of {info.logged} logged, {info.skipped} skipped, seed {info.seed}; "
        f"{result.judged} with judgments",
        highlight=False,
    )
    if result.backfill_sample is not None:
        out.print(f"embedded first: {result.backfill_sample.embedded} random records", highlight=False)
    for warning in result.warnings:
        out.print(text(f"warning: {warning}"), style="yellow")


def _mean(found: Distribution) -> str:
    return "-" if found.mean is None else f"{found.mean:.4f}"
