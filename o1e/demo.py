"""The main job on the embedded local default: bundled SciFact slice, local Ray, small models.

It evaluates BM25 and all-MiniLM-L6-v2 side by side; the other stages are run with their own commands.
"""

from __future__ import annotations

from eval.config import EvalConfig
from eval.driver import run_eval
from eval.report import console, metrics_table
from o1e import storage
from o1e.retrievers import BM25RetrieverConfig, DenseRetrieverConfig


def run_demo(output: str = "outputs/demo") -> dict[str, dict]:
    results = {}
    for name, retriever in (("bm25", BM25RetrieverConfig()),
                            ("all-MiniLM-L6-v2", DenseRetrieverConfig(model="all-MiniLM-L6-v2"))):
        cfg = EvalConfig(retriever=retriever, shards=2 if retriever.kind == "dense" else 1,
                         output=storage.join(output, retriever.kind))
        console.rule(f"eval: {name}")
        results[name] = run_eval(cfg).metrics
    console.rule("demo summary")
    console.print(metrics_table(list(results.items()), title="bundled SciFact slice (test split)"))
    console.print(f"outputs under {output}/<retriever>/ (metrics.json, per_query/, run/, run.trec)")
    return results
