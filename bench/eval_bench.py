"""Time the sharded eval harness against a plain single-process baseline, in the same run.

    python bench/eval_bench.py [--dataset ../shared/data/beir/scifact] [--shards 2] [--model all-MiniLM-L6-v2]

Baseline: sentence-transformers ``encode`` of the corpus and queries plus one FAISS exact search, in this
process with all its threads. Harness: ``o1e eval`` (``eval.driver.run_eval``) on a local Ray cluster
that is already up (starting a cluster is not per-job work), with the embedding cache off, so it
encodes everything. The harness's time also includes what the baseline skips: reading the dataset,
pytrec_eval, and writing every output. Target: ratio <= 1.15 on a 2-core machine.
Last line: ``ratio=<harness seconds / baseline seconds>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from o1e.eval.config import EvalConfig  # noqa: E402
from o1e.eval.driver import run_eval  # noqa: E402
from o1e import beir  # noqa: E402
from o1e.encoders import DenseEncoderConfig, encode, load_encoder  # noqa: E402
from o1e.models import resolve_model_dir  # noqa: E402
from o1e.ray_utils import RayConfig, init_ray  # noqa: E402
from o1e.retrievers import DenseRetrieverConfig  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATASET = os.path.join(HERE, "..", "..", "shared", "data", "beir", "scifact")


def baseline(data: beir.BeirDataset, model_name: str, top_k: int) -> tuple[float, float]:
    started = time.perf_counter()
    config = DenseEncoderConfig(model=model_name)
    model = load_encoder(config, resolve_model_dir(model_name))
    docs = encode(model, data.corpus.passages(), config)
    queries = encode(model, list(data.queries.values()), config)
    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(docs)
    scores, _ = index.search(queries, top_k + 1)
    elapsed = time.perf_counter() - started
    return elapsed, float(np.mean(scores[:, 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--top-k", type=int, default=1000)
    args = parser.parse_args()
    if not os.path.isdir(args.dataset):
        sys.exit(f"dataset not found: {args.dataset} (pass --dataset)")
    console = Console()
    data = beir.load(args.dataset, args.split)
    console.print(f"{args.dataset}: {len(data.corpus):,} documents, {len(data.queries):,} queries; "
                  f"model {args.model}; {os.cpu_count()} CPUs")

    base_s, _ = baseline(data, args.model, args.top_k)
    console.print(f"baseline (one process): {base_s:.1f} s")

    ray_started = time.perf_counter()
    init_ray(RayConfig(num_cpus=os.cpu_count()))
    ray_s = time.perf_counter() - ray_started
    with tempfile.TemporaryDirectory() as tmp:
        cfg = EvalConfig(dataset={"path": args.dataset, "split": args.split},
                         retriever=DenseRetrieverConfig(model=args.model), shards=args.shards, top_k=args.top_k,
                         cache_dir=None, output=os.path.join(tmp, "out"))
        started = time.perf_counter()
        result = run_eval(cfg, show=False)
        harness_s = time.perf_counter() - started

    table = Table(title="corpus encoding + search")
    for column in ("", "seconds", "documents/s", "vs baseline"):
        table.add_column(column, justify="right")
    docs = len(data.corpus)
    table.add_row("baseline: sentence-transformers + FAISS, 1 process", f"{base_s:.1f}", f"{docs / base_s:.1f}", "1.00")
    table.add_row(f"o1e eval, {args.shards} Ray shards (whole run)", f"{harness_s:.1f}", f"{docs / harness_s:.1f}",
                  f"{harness_s / base_s:.2f}")
    console.print(table)
    console.print(f"(Ray cluster start, not counted: {ray_s:.1f} s; harness nDCG@10 = {result.metrics['ndcg@10']:.4f})")
    print(f"ratio={harness_s / base_s:.3f}")


if __name__ == "__main__":
    main()
