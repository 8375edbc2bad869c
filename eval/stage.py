"""The eval stage, as the pipeline and the ``o1e`` command know it (``o1e.stage.Stage``)."""

from __future__ import annotations

from o1e import runs
from o1e.eval.config import EvalConfig
from o1e.placement import Cluster, engine_request, workers_request
from o1e.progress import Show
from o1e.stage import Flag, Input, Stage


def _run(cfg: EvalConfig, show: Show):
    from o1e.eval.driver import run_eval

    return run_eval(cfg, show=show)


def _rows(cfg: EvalConfig) -> tuple[int | None, int | None]:
    """Queries in and queries scored (each for every k), from its summary."""
    queries = (runs.read_summary(cfg.output) or {}).get("num_queries")
    return queries, queries


def _requests(cfg: EvalConfig, cluster: Cluster):
    phases = []
    if cfg.needs_thoughts and cfg.thoughts.source is None:  # thoughts first, their engine closed before search
        phases.append(engine_request("thought replica", cfg.thoughts.engine, cluster))
    if cfg.retriever.kind != "bm25":
        phases.append([workers_request("eval shard", cfg.ray, cfg.shards, cluster)])
    return phases


EVAL = Stage(
    name="eval", command=("eval",),
    help="evaluate a retriever on a BEIR-format dataset (nDCG@10, MRR@10, Recall@100/1000)",
    config=EvalConfig, run=_run, rows=_rows,
    inputs=(Input("retriever.model", "train", "model", when=("retriever.kind", "o1")),),
    requests=_requests,
    flags=(
        Flag(("-d", "--dataset"), "dataset.path", "BEIR folder or s3:// prefix (default: bundled demo data)"),
        Flag(("-s", "--split"), "dataset.split", "qrels split (default: test)"),
        Flag(("-r", "--retriever"), "retriever.kind", "o1: a model saved by o1e train, thinking first",
             choices=("bm25", "dense", "o1", "expand")),
        Flag(("-m", "--model"), "retriever.model", "model folder, s3:// prefix or packaged name",
             implies={"retriever.kind": "dense"}),
        Flag(("-n", "--shards"), "shards", "Ray actors encoding and searching the corpus"),
        Flag(("-k", "--top-k"), "top_k", "documents retrieved per query (default: 1000)"),
        Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
        Flag(("--cache-dir",), "cache_dir", "embedding cache (local or s3://; 'null' disables)"),
    ),
    example="o1e eval -r o1 -m outputs/train/model -n 2 'thoughts.k=[0,1,3]'",
)
