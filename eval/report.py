"""What ``o1e eval`` leaves behind (files a program reads) and shows (tables a person reads)."""

from __future__ import annotations

import io

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from eval.metrics import METRICS
from o1e import beir, schemas, storage
from o1e.provenance import code_version

console = Console(stderr=False, highlight=False)


def print_dataset(data: beir.BeirDataset) -> None:
    s = data.summary()
    console.print(f"[bold]{data.url}[/bold] split={data.split}: {s['documents']:,} documents, "
                  f"{s['queries']:,} judged queries, {s['judgments']:,} judgments, {s['rejects']} rejected rows")
    for reject in data.rejects[:5]:
        console.print(f"  rejected ({reject.reason}): {reject.detail}")
    if len(data.rejects) > 5:
        console.print(f"  ... and {len(data.rejects) - 5} more (see rejects/ in the output)")


def metrics_table(rows: list[tuple[str, dict]], title: str = "retrieval metrics") -> Table:
    table = Table(title=title)
    table.add_column("retriever")
    for name in METRICS:
        table.add_column(name, justify="right")
    table.add_column("queries", justify="right")
    for label, metrics in rows:
        table.add_row(label, *(f"{metrics[m]:.4f}" for m in METRICS), str(metrics["num_queries"]))
    return table


def print_metrics(cfg, result) -> None:
    console.print(metrics_table([(cfg.retriever.kind, result.metrics)],
                                title=f"{result.dataset.url} ({result.dataset.split})"))
    console.print(f"retriever: {result.info['retriever']}")
    console.print(f"wrote {cfg.output} in {result.info['elapsed_s']:.1f} s")


def trec_run(ranking: dict[str, list[tuple[str, float]]], tag: str) -> str:
    out = io.StringIO()
    for query_id, hits in ranking.items():
        for rank, (doc_id, score) in enumerate(hits, start=1):
            out.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return out.getvalue()


def write_outputs(cfg, result) -> None:
    out = cfg.output
    data: beir.BeirDataset = result.dataset
    lineage = {
        "config_fingerprint": cfg.fingerprint(),
        "config": cfg.model_dump(mode="json"),
        "parents": [{"url": data.url, "split": data.split, "corpus_fingerprint": data.corpus.fingerprint}],
    }
    metrics = dict(result.metrics)
    metrics.update({
        "dataset": data.url, "split": data.split, "retriever": result.info["retriever"],
        "skipped": {reason: sum(r.reason == reason for r in data.rejects)
                    for reason in sorted({r.reason for r in data.rejects})},
        "config_fingerprint": lineage["config_fingerprint"], "corpus_fingerprint": data.corpus.fingerprint,
        "code_version": code_version(), "info": result.info,
    })
    per_query = pa.Table.from_pylist([{"query_id": q, **row} for q, row in result.per_query.items()])
    storage.write_table(storage.join(out, "per_query"), per_query, "eval_per_query", **lineage)
    run_rows = [
        {"query_id": q, "doc_id": d, "rank": r, "score": s}
        for q, hits in result.ranking.items() for r, (d, s) in enumerate(hits, start=1)
    ]
    run_table = pa.Table.from_pylist(run_rows) if run_rows else schemas.EVAL_RUN.empty()
    storage.write_table(storage.join(out, "run"), run_table, "eval_run", **lineage)
    storage.write_text(storage.join(out, "run.trec"), trec_run(result.ranking, tag=f"o1e-{cfg.retriever.kind}"))
    rejects = pa.Table.from_pylist([
        {"stage": "eval", "source": r.source, "row": r.row, "reason": r.reason, "detail": r.detail}
        for r in data.rejects
    ]) if data.rejects else schemas.REJECTS.empty()
    storage.write_table(storage.join(out, "rejects"), rejects, "rejects", **lineage)
    storage.write_text(storage.join(out, "config.yaml"), cfg.to_yaml())
    storage.write_json(storage.join(out, "metrics.json"), metrics)  # last: its presence means the run finished
