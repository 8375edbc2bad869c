"""What ``o1e eval`` leaves behind (files a program reads) and shows (tables a person reads)."""

from __future__ import annotations

import io
import time

import pyarrow as pa
from rich.table import Table

from o1e.eval.metrics import METRICS
from o1e.eval.dataset import EvalDataset
from o1e import cards, costs, lineage, progress, runs, schemas, storage
from o1e.corpus import CorpusDataset
from o1e.retrievers import model_of

console = progress.console()

DATASETS = ("per_query", "run", "rejects")
"""The datasets ``write_outputs`` writes under the output, each under the eval config's fingerprint."""


def print_corpus(corpus: CorpusDataset, elapsed_s: float) -> None:
    how = "done earlier, reused" if corpus.cached else f"converted in {elapsed_s:.1f} s"
    console.print(f"corpus as Parquet: {corpus.url} ({len(corpus):,} documents; {how})", soft_wrap=True)


def print_dataset(data: EvalDataset) -> None:
    s = data.summary()
    console.print(f"[bold]{data.url}[/bold] split={data.split}: {s['documents']:,} documents, "
                  f"{s['queries']:,} judged queries, {s['judgments']:,} judgments, {s['rejects']} rejected rows")
    for reject in data.rejects[:5]:
        console.print(f"  rejected ({reject.reason}): {reject.detail}", soft_wrap=True)
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


def variants_table(kind: str, variants: dict[int, dict], title: str, thoughts: dict | None = None) -> Table:
    """One row per variant (k thoughts averaged), with nDCG@10's change against k=0, the thought tokens a
    query uses and the change per 1,000 of them."""
    table = Table(title=title)
    table.add_column("retriever")
    table.add_column(METRICS[0], justify="right")
    table.add_column("vs k=0", justify="right")
    for name in METRICS[1:]:
        table.add_column(name, justify="right")
    table.add_column("queries", justify="right")
    table.add_column("thought tokens/query", justify="right")
    table.add_column("gain per 1k tokens", justify="right")
    baseline = variants.get(0)
    for k, metrics in sorted(variants.items()):
        change = f"{metrics[METRICS[0]] - baseline[METRICS[0]]:+.4f}" if baseline is not None and k else ""
        tokens = costs.thought_tokens_per_query(thoughts, metrics["num_queries"], k)
        gain = costs.gain_per_1k_tokens(metrics[METRICS[0]], baseline and baseline[METRICS[0]], tokens)
        table.add_row(f"{kind} k={k}", f"{metrics[METRICS[0]]:.4f}", change,
                      *(f"{metrics[m]:.4f}" for m in METRICS[1:]), str(metrics["num_queries"]),
                      f"{tokens:.1f}" if tokens else "", "" if gain is None else f"{gain:+.4f}")
    return table


def print_metrics(cfg, result) -> None:
    title = f"{result.dataset.url} ({result.dataset.split})"
    if cfg.thinks:
        stats = result.info.get("thoughts")
        console.print(variants_table(cfg.retriever.kind, result.variants, title, stats))
        if stats:
            console.print(f"thoughts: {stats['url']} (n={stats['n']}; empty {stats.get('empty_thought', 0)}, "
                          f"unknown query {stats.get('unknown_query', 0)}, queries without thoughts "
                          f"{stats.get('queries_without_thoughts', 0)})")
    else:
        console.print(metrics_table([(cfg.retriever.kind, result.metrics)], title=title))
    console.print(f"retriever: {result.info['retriever']}")


def print_written(cfg, result) -> None:
    ndcg = ", ".join(f"k={k} {m[METRICS[0]]:.4f}" for k, m in sorted(result.variants.items())) if cfg.thinks \
        else f"{result.metrics[METRICS[0]]:.4f}"
    console.print(f"wrote {cfg.output} in {result.info['elapsed_s']:.1f} s (nDCG@10: {ndcg})")


def trec_run(ranking: dict[str, list[tuple[str, float]]], tag: str) -> str:
    out = io.StringIO()
    for query_id, hits in ranking.items():
        for rank, (doc_id, score) in enumerate(hits, start=1):
            out.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return out.getvalue()


def write_outputs(cfg, result) -> None:
    out = cfg.output
    data: EvalDataset = result.dataset
    rejected = data.rejects + (result.thoughts.rejects if result.thoughts is not None else [])
    parents = [data.source_ref()]
    if result.thoughts is not None:
        parents.append({"url": result.thoughts.url, "schema": "thoughts"})
    record = runs.RunRecord("eval", cfg, parents=parents, started=time.perf_counter() - result.info["elapsed_s"],
                            views=(runs.EVAL_METRICS,))
    model = model_of(cfg.retriever)
    metrics = dict(result.metrics)
    metrics.update({
        "k": max(result.variants), "variants": {f"k={k}": m for k, m in sorted(result.variants.items())},
        "dataset": data.url, "split": data.split, "retriever": result.info["retriever"],
        "skipped": {reason: sum(r.reason == reason for r in rejected)
                    for reason in sorted({r.reason for r in rejected})},
        "corpus_fingerprint": data.corpus.fingerprint, "info": result.info,
        # The model's whole chain (expert model, committee, base model, training run) where it has one.
        "model": model, "lineage": lineage.summarise(lineage.walk(model)) if model else {},
    })
    thoughts = result.thoughts.by_query if result.thoughts is not None else {}
    per_query = pa.Table.from_pylist([
        {"k": k, "query_id": q, **row, "thoughts": thoughts.get(q, [])[:k]}
        for k, rows in sorted(result.per_query.items()) for q, row in rows.items()
    ])
    record.write_table("per_query", per_query, "eval_per_query")
    run_rows = [
        {"k": k, "query_id": q, "doc_id": d, "rank": r, "score": s}
        for k, ranking in sorted(result.rankings.items())
        for q, hits in ranking.items() for r, (d, s) in enumerate(hits, start=1)
    ]
    record.write_table("run", pa.Table.from_pylist(run_rows) if run_rows else schemas.EVAL_RUN.empty(), "eval_run")
    headline = result.rankings[max(result.rankings)]
    storage.write_text(storage.join(out, "run.trec"), trec_run(headline, tag=f"o1e-{cfg.retriever.kind}"))
    record.write_rejects(rejected)
    metrics["model_card"] = add_card_results(cfg, data, metrics) if cfg.retriever.kind == "o1" else None
    record.finish({"num_queries": metrics["num_queries"], "k": metrics["k"],
                   "ndcg@10": {name: m["ndcg@10"] for name, m in metrics["variants"].items()},
                   "rejects": metrics["skipped"], "elapsed_s": result.info.get("elapsed_s"), "metrics": metrics},
                  rows=len(data.corpus), unit="document")


def add_card_results(cfg, data: EvalDataset, metrics: dict) -> str:
    """Add this evaluation's nDCG@10 (each k) to the ``model-index`` of the evaluated model's card, where the
    model is one ``o1e train`` wrote; what happened, for ``metrics.json``."""
    name = f"{data.url.rstrip('/').rsplit('/', 1)[-1]} {data.split}"
    results = [{"dataset": data.url, "dataset_name": name, "split": data.split, "metric_type": "ndcg_at_10",
                "metric_name": f"nDCG@10 ({variant.replace('k=', 'k = ')} thoughts)", "value": m["ndcg@10"]}
               for variant, m in metrics["variants"].items()]
    try:
        return "updated" if cards.add_results(cfg.retriever.model, results) else "no o1e model card"
    except storage.StorageError as err:
        return f"not updated: {err}"

