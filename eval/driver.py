"""``o1e eval``: load a BEIR split, retrieve with BM25 or a dense encoder sharded over Ray actors,
score with pytrec_eval, write metrics.json + per-query Parquet + a TREC run, print a table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from eval import report
from eval.config import BM25Retriever, DenseRetriever, EvalConfig
from eval.metrics import Ranking, evaluate, trec_order
from eval.search import assign_batches, merge_shards, plan_batches
from eval.worker import ShardTask, ShardWorker
from o1e import beir, storage
from o1e.bm25 import BM25Index
from o1e.encoders import model_fingerprint, resolve_model_dir
from o1e.progress import Counter, wait_with_progress
from o1e.provenance import fingerprint
from o1e.ray_utils import cpus_per_worker, gpus_per_worker, init_ray


@dataclass
class EvalResult:
    metrics: dict
    per_query: dict[str, dict]
    ranking: Ranking
    dataset: beir.BeirDataset
    info: dict = field(default_factory=dict)


def retrieve_bm25(data: beir.BeirDataset, config: BM25Retriever, top_k: int, drop_self_hits: bool,
                  progress: bool = True) -> tuple[Ranking, dict]:
    started = time.perf_counter()
    index = BM25Index(data.corpus.passages(), config)
    indexed = time.perf_counter()
    ranking: Ranking = {}
    extra = 1 if drop_self_hits else 0
    for query_id, text in tqdm(data.queries.items(), desc="bm25 search", unit="query", disable=not progress):
        best, scores = index.top_k(text, top_k + extra)
        hits = [(data.corpus.ids[i], float(s)) for i, s in zip(best, scores)]
        if drop_self_hits:
            hits = [h for h in hits if h[0] != query_id]
        ranking[query_id] = trec_order(hits)[:top_k]
    info = {"retriever": config.describe(), "index_s": indexed - started,
            "search_s": time.perf_counter() - indexed}
    return ranking, info


def retrieve_dense(data: beir.BeirDataset, cfg: EvalConfig, model_dir: str, show: bool = True
                   ) -> tuple[Ranking, dict]:
    config: DenseRetriever = cfg.retriever
    model_fp = model_fingerprint(config, model_dir)
    texts = data.corpus.passages()
    plan = plan_batches([len(config.document_prefix) + len(t) for t in texts], config.batch_size)
    cache_fp = fingerprint({"model": model_fp, "corpus": data.corpus.fingerprint, "batch_size": config.batch_size})
    cache_url = None
    if cfg.cache_dir:
        cache_url = storage.join(storage.join(cfg.cache_dir, "embeddings", cache_fp), f"shards-{cfg.shards}")

    tasks = []
    for shard, batch_numbers in enumerate(assign_batches(len(plan), cfg.shards)):
        numbers = np.concatenate([plan[b] for b in batch_numbers]) if batch_numbers else np.zeros(0, np.int64)
        tasks.append(ShardTask(
            shard_id=f"{shard:05d}-of-{cfg.shards:05d}", doc_numbers=numbers,
            doc_ids=[data.corpus.ids[i] for i in numbers], texts=[texts[i] for i in numbers],
            batch_sizes=[len(plan[b]) for b in batch_numbers], cache_url=cache_url, cache_fingerprint=cache_fp,
        ))

    ray = init_ray(cfg.ray)
    num_cpus = cpus_per_worker(ray, cfg.ray, cfg.shards)
    # A lost worker fails the run; rerunning it resumes from the shards already in the embedding cache.
    Worker = ray.remote(ShardWorker).options(num_cpus=num_cpus, num_gpus=gpus_per_worker(ray, cfg.ray))
    counter = ray.remote(Counter).options(num_cpus=0).remote()
    workers = [Worker.remote(config, model_dir, int(num_cpus), counter) for _ in tasks]
    query_ids = list(data.queries)
    query_vectors = workers[0].encode_queries.remote([data.queries[q] for q in query_ids])
    k = cfg.top_k + (1 if cfg.drop_self_hits else 0)
    pending = {w.run.remote(t, query_vectors, k): t.shard_id for w, t in zip(workers, tasks)}
    results = wait_with_progress(ray, pending, counter, len(texts), f"encode + search, shards={cfg.shards}", "doc",
                                 show=show)
    for worker in workers:
        ray.kill(worker)
    if cache_url:
        storage.DatasetWriter(cache_url, "embeddings", config_fingerprint=cache_fp).finalize(
            extra={"model": config.model, "model_fingerprint": model_fp, "corpus": data.url,
                   "corpus_fingerprint": data.corpus.fingerprint})

    ordered = [results[t.shard_id] for t in tasks]
    ranking = merge_shards([(s, n) for s, n, _ in ordered], data.corpus.ids, query_ids, cfg.top_k,
                           cfg.drop_self_hits)
    shards = [info for _, _, info in ordered]
    info = {
        "retriever": f"dense {config.model} (pooling={config.pooling}, normalize={config.normalize}, "
                     f"max_length={config.max_length or 'model default'})",
        "model_dir": model_dir, "model_fingerprint": model_fp, "embedding_cache": cache_url,
        "cache_hits": sum(s["cached"] for s in shards), "shards": shards,
    }
    return ranking, info


def run_eval(cfg: EvalConfig, show: bool = True) -> EvalResult:
    started = time.perf_counter()
    # Everything a user can get wrong is checked before the data is read or a cluster started.
    model_dir = resolve_model_dir(cfg.retriever.model, cfg.cache_dir) if cfg.retriever.kind == "dense" else None
    data = beir.load(cfg.dataset.path, cfg.dataset.split, cfg.dataset.on_bad_line)
    if show:
        report.print_dataset(data)
    if isinstance(cfg.retriever, BM25Retriever):
        ranking, info = retrieve_bm25(data, cfg.retriever, cfg.top_k, cfg.drop_self_hits, progress=show)
    else:
        ranking, info = retrieve_dense(data, cfg, model_dir, show)
    metrics, per_query = evaluate(data.qrels, ranking)
    info["elapsed_s"] = time.perf_counter() - started
    result = EvalResult(metrics=metrics, per_query=per_query, ranking=ranking, dataset=data, info=info)
    report.write_outputs(cfg, result)
    if show:
        report.print_metrics(cfg, result)
    return result
