"""``o1e eval``: load a BEIR split, get thoughts for the retrievers that think, retrieve with BM25 or a
vector retriever sharded over Ray actors, score every variant (k thoughts averaged) with pytrec_eval, write
metrics.json + per-query Parquet + a TREC run, print a table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from eval import report, thoughts as thought_stage
from eval.config import EvalConfig
from eval.metrics import Ranking, evaluate, trec_order
from eval.search import assign_batches, merge_shards, plan_batches
from eval.thoughts import ThoughtSet
from eval.worker import ShardTask, ShardWorker
from o1e import beir, storage
from o1e.bm25 import BM25Index
from o1e.encoders import resolve_model_dir
from o1e.progress import Counter, bar as progress_bar, wait_with_progress
from o1e.provenance import fingerprint
from o1e.ray_utils import cpus_per_worker, gpus_per_worker, init_ray
from o1e.retrievers import average_thoughts, describe, embedding_fingerprint, expand_query_text, model_of


@dataclass
class EvalResult:
    metrics: dict
    """The headline variant's means (the largest k)."""
    variants: dict[int, dict]
    """k -> means."""
    per_query: dict[int, dict[str, dict]]
    """k -> query id -> metrics."""
    rankings: dict[int, Ranking]
    dataset: beir.BeirDataset
    thoughts: ThoughtSet | None = None
    info: dict = field(default_factory=dict)


def query_thoughts(data: beir.BeirDataset, thoughts: ThoughtSet | None) -> list[list[str]]:
    """Each query's thoughts, in the order of ``data.queries``."""
    return [thoughts.by_query.get(q, []) if thoughts else [] for q in data.queries]


def retrieve_bm25(data: beir.BeirDataset, config, ks: list[int], per_query: list[list[str]], top_k: int,
                  drop_self_hits: bool, progress: bool = True) -> tuple[dict[int, Ranking], dict]:
    """BM25 rankings per variant; with thoughts, variant k searches the query followed by its first k."""
    started = time.perf_counter()
    index = BM25Index(data.corpus.passages(), config)
    indexed = time.perf_counter()
    rankings: dict[int, Ranking] = {k: {} for k in ks}
    extra = 1 if drop_self_hits else 0
    for (query_id, text), thoughts in progress_bar(list(zip(data.queries.items(), per_query)), desc="bm25 search",
                                          unit="query", disable=not progress):
        for k in ks:
            best, scores = index.top_k(expand_query_text(text, thoughts, k), top_k + extra)
            hits = [(data.corpus.ids[i], float(s)) for i, s in zip(best, scores)]
            if drop_self_hits:
                hits = [h for h in hits if h[0] != query_id]
            rankings[k][query_id] = trec_order(hits)[:top_k]
    info = {"index_s": indexed - started, "search_s": time.perf_counter() - indexed}
    return rankings, info


def retrieve_vectors(data: beir.BeirDataset, cfg: EvalConfig, model_dir: str, ks: list[int],
                     per_query: list[list[str]], show: bool = True) -> tuple[dict[int, Ranking], dict]:
    """Encode the corpus over ``cfg.shards`` actors (or read it from the embedding cache), encode every
    (query, thought) pair once, average them per variant, search every shard, merge."""
    config = cfg.retriever
    model_fp = embedding_fingerprint(config, model_dir)
    texts = data.corpus.passages()
    encoder = config.base if config.kind == "expand" else config  # what encodes the documents
    batch_size = encoder.batch_size
    prefix = len(getattr(encoder, "document_prefix", ""))
    plan = plan_batches([prefix + len(t) for t in texts], batch_size)
    cache_fp = fingerprint({"model": model_fp, "corpus": data.corpus.fingerprint, "batch_size": batch_size})
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
    options = {"num_cpus": num_cpus, "num_gpus": gpus_per_worker(ray, cfg.ray)}
    if getattr(config, "backend", None) == "vllm":
        from o1e.llm.ray_engine import replica_env

        options["runtime_env"] = {"env_vars": replica_env()}
    # A lost worker fails the run; rerunning it resumes from the shards already in the embedding cache.
    Worker = ray.remote(ShardWorker).options(**options)
    counter = ray.remote(Counter).options(num_cpus=0).remote()
    workers = [Worker.remote(config, model_dir, int(num_cpus), counter) for _ in tasks]

    # Pairs laid out query by query: [no thought, thought 1, ..., thought n_q].
    query_texts = list(data.queries.values())
    pair_queries = [q for q, ts in zip(query_texts, per_query) for _ in range(len(ts) + 1)]
    pair_thoughts = [t for ts in per_query for t in ["", *ts]]
    started = time.perf_counter()
    pair_vectors = ray.get(workers[0].encode_pairs.remote(pair_queries, pair_thoughts))
    query_s = time.perf_counter() - started
    counts = [len(ts) for ts in per_query]
    query_sets = ray.put([average_thoughts(pair_vectors, counts, k) for k in ks])

    k_search = cfg.top_k + (1 if cfg.drop_self_hits else 0)
    pending = {w.run.remote(t, query_sets, k_search): t.shard_id for w, t in zip(workers, tasks)}
    results = wait_with_progress(ray, pending, counter, len(texts), f"encode + search, shards={cfg.shards}", "doc",
                                 show=show)
    try:
        ray.get([w.shutdown.remote() for w in workers], timeout=60)
    except Exception:  # noqa: BLE001 - the workers are killed below anyway
        pass
    for worker in workers:
        ray.kill(worker)
    if cache_url:
        storage.DatasetWriter(cache_url, "embeddings", config_fingerprint=cache_fp).finalize(
            extra={"model": model_of(config), "model_fingerprint": model_fp, "corpus": data.url,
                   "corpus_fingerprint": data.corpus.fingerprint})

    ordered = [results[t.shard_id] for t in tasks]
    query_ids = list(data.queries)
    rankings = {
        k: merge_shards([hits[i] for hits, _ in ordered], data.corpus.ids, query_ids, cfg.top_k, cfg.drop_self_hits)
        for i, k in enumerate(ks)
    }
    shards = [info for _, info in ordered]
    info = {"model_dir": model_dir, "model_fingerprint": model_fp, "embedding_cache": cache_url,
            "cache_hits": sum(s["cached"] for s in shards), "query_pairs": len(pair_queries),
            "query_encode_s": query_s, "shards": shards}
    return rankings, info


def preflight(cfg: EvalConfig) -> str | None:
    """The local model folder, checked before the data is read or a cluster started."""
    model = model_of(cfg.retriever)
    if not model:
        if cfg.retriever.kind in ("dense", "o1"):
            raise FileNotFoundError(f"retriever.model is empty: name the {cfg.retriever.kind} model's folder")
        return None
    model_dir = resolve_model_dir(model, cfg.cache_dir)
    if cfg.retriever.kind == "o1" and not cfg.retriever.add_special_tokens:
        from o1e.o1model import check_o1_tokens

        check_o1_tokens(model_dir)
    return model_dir


def run_eval(cfg: EvalConfig, show: bool = True) -> EvalResult:
    started = time.perf_counter()
    cfg.check_outputs()
    for name in report.DATASETS:
        storage.check_rerun(storage.join(cfg.output, name), cfg.fingerprint(), cfg.overwrite)
    model_dir = preflight(cfg)
    data = beir.load(cfg.dataset.path, cfg.dataset.split, cfg.dataset.on_bad_line,
                     drop_unknown_docs=cfg.dataset.drop_unknown_docs)
    if show:
        report.print_dataset(data)
    thoughts = thought_stage.obtain(cfg, data, model_dir, show) if cfg.thinks else None
    ks = cfg.thoughts.variants() if cfg.thinks else [0]
    per_query_thoughts = query_thoughts(data, thoughts)
    base = cfg.retriever.base if cfg.retriever.kind == "expand" else cfg.retriever
    if base.kind == "bm25":
        rankings, info = retrieve_bm25(data, base, ks, per_query_thoughts, cfg.top_k, cfg.drop_self_hits,
                                       progress=show)
    else:
        rankings, info = retrieve_vectors(data, cfg, model_dir, ks, per_query_thoughts, show)
    info["retriever"] = describe(cfg.retriever)
    variants, per_query = {}, {}
    for k in ks:
        variants[k], per_query[k] = evaluate(data.qrels, rankings[k])
    if thoughts is not None:
        info["thoughts"] = {"url": thoughts.url, "n": cfg.thoughts.n, **dict(thoughts.stats)}
    info["elapsed_s"] = time.perf_counter() - started
    result = EvalResult(metrics=variants[max(ks)], variants=variants, per_query=per_query, rankings=rankings,
                        dataset=data, thoughts=thoughts, info=info)
    report.write_outputs(cfg, result)
    if show:
        report.print_metrics(cfg, result)
    return result
