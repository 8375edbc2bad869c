"""``o1e eval``: load a BEIR split (its corpus converted once to a Parquet dataset that the workers read),
get thoughts for the retrievers that think, retrieve with BM25 on a Ray actor or a vector retriever sharded
over Ray actors, score every variant (k thoughts averaged) with pytrec_eval, write
metrics.json + per-query Parquet + a TREC run, print a table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from o1e.eval import dataset as eval_dataset, report, thoughts as thought_stage
from o1e.eval.config import EvalConfig
from o1e.eval.metrics import evaluate
from o1e.eval.dataset import EvalDataset, prepare_corpus
from o1e.eval.search import shard_plans
from o1e.eval.thoughts import ThoughtSet
from o1e.eval.worker import BM25Worker, ShardHits, ShardTask, ShardWorker
from o1e import corpus, costs, storage
from o1e.models import resolve_model_dir
from o1e.progress import Counter, Show, counter_bar
from o1e.provenance import fingerprint
from o1e.ray_utils import as_finished, cpus_per_worker, gpus_per_worker, init_ray
from o1e.retrievers import (Ranking, average_thoughts, describe, embedding_fingerprint, merge_shards, model_of,
                            search_depth)


@dataclass
class EvalResult:
    metrics: dict
    """The headline variant's means (the largest k)."""
    variants: dict[int, dict]
    """k -> means."""
    per_query: dict[int, dict[str, dict]]
    """k -> query id -> metrics."""
    rankings: dict[int, Ranking]
    dataset: EvalDataset
    thoughts: ThoughtSet | None = None
    info: dict = field(default_factory=dict)


def query_thoughts(data: EvalDataset, thoughts: ThoughtSet | None) -> list[list[str]]:
    """Each query's thoughts, in the order of ``data.queries``."""
    return [thoughts.by_query.get(q, []) if thoughts else [] for q in data.queries]


def load_dataset(cfg: EvalConfig, show: Show = Show.ALL) -> EvalDataset:
    """Queries and qrels read here; the corpus converted to Parquet (or found converted) by a Ray task."""
    source = cfg.dataset

    def run_corpus_task(corpus_url: str, judged: list[str]):
        ray = init_ray(cfg.ray)
        root = cfg.cache_dir or cfg.output
        task = ray.remote(prepare_corpus).options(num_cpus=1)
        started = time.perf_counter()
        with costs.held(1, 1):
            converted, missing = ray.get(task.remote(corpus_url, root, source.on_bad_line, judged,
                                                     cfg.corpus_part_rows))
        if show.tables and not isinstance(converted, str):
            report.print_corpus(converted, time.perf_counter() - started)
        return converted, missing

    return eval_dataset.load(source.path, source.split, source.on_bad_line, source.drop_unknown_docs,
                             run_corpus_task, source.max_queries)


def retrieve_bm25(data: EvalDataset, cfg: EvalConfig, config, ks: list[int], per_query: list[list[str]],
                  show: bool = True) -> tuple[dict[int, Ranking], dict]:
    """BM25 rankings per variant, on a Ray actor that reads the corpus dataset and indexes it."""
    ray = init_ray(cfg.ray)
    counter = ray.remote(Counter).options(num_cpus=0).remote()
    num_cpus = cpus_per_worker(ray, cfg.ray, 1)
    worker = ray.remote(BM25Worker).options(num_cpus=num_cpus).remote(data.corpus.url, config, counter)
    holding = costs.hold(1, num_cpus)
    try:
        with counter_bar(ray, counter, len(data.queries), "bm25 index + search", "query", show) as poll:
            [(_, _, ref)] = as_finished(ray, [worker], lambda w, _: w.search.remote(
                data.queries, per_query, ks, cfg.top_k, cfg.drop_self_hits), poll=poll)
        return ray.get(ref)
    finally:
        ray.kill(worker)
        costs.release(holding)


def retrieve_vectors(data: EvalDataset, cfg: EvalConfig, model_dir: str, ks: list[int],
                     per_query: list[list[str]], show: bool = True) -> tuple[dict[int, Ranking], dict]:
    """Encode the corpus over ``cfg.shards`` actors (or read it from the embedding cache), encode every
    (query, thought) pair once, average them per variant, search every shard, merge."""
    config = cfg.retriever
    model_fp = embedding_fingerprint(config, model_dir)
    encoder = config.base if config.kind == "expand" else config  # what encodes the documents
    batch_size = encoder.batch_size
    prefix = len(getattr(encoder, "document_prefix", ""))
    cache_fp = fingerprint({"model": model_fp, "corpus": data.corpus.fingerprint, "batch_size": batch_size})
    cache_url = None
    if cfg.cache_dir:
        cache_url = storage.join(storage.join(cfg.cache_dir, "embeddings", cache_fp), f"shards-{cfg.shards}")

    ray = init_ray(cfg.ray)
    with costs.held(1, 1):
        plans = ray.get(ray.remote(plan_corpus).options(num_cpus=1).remote(data.corpus.url, prefix, batch_size,
                                                                           cfg.shards))
    tasks = [ShardTask(shard_id=f"{shard:05d}-of-{cfg.shards:05d}", doc_numbers=numbers, batch_sizes=sizes,
                       corpus_url=data.corpus.url, cache_url=cache_url, cache_fingerprint=cache_fp)
             for shard, (numbers, sizes) in enumerate(plans)]
    del plans

    num_cpus = cpus_per_worker(ray, cfg.ray, cfg.shards)
    options = {"num_cpus": num_cpus, "num_gpus": gpus_per_worker(ray, cfg.ray)}
    if getattr(config, "backend", None) == "vllm":
        from o1e.llm.ray_engine import replica_env

        options["runtime_env"] = {"env_vars": replica_env(cpu=not options["num_gpus"])}
    # A lost worker fails the run; rerunning it resumes from the shards already in the embedding cache.
    Worker = ray.remote(ShardWorker).options(**options)
    counter = ray.remote(Counter).options(num_cpus=0).remote()
    workers = [Worker.remote(config, model_dir, int(num_cpus), counter) for _ in tasks]
    holding = costs.hold(len(workers), num_cpus, options["num_gpus"])
    try:
        # Pairs laid out query by query: [no thought, thought 1, ..., thought n_q].
        query_texts = list(data.queries.values())
        pair_queries = [q for q, ts in zip(query_texts, per_query) for _ in range(len(ts) + 1)]
        pair_thoughts = [t for ts in per_query for t in ["", *ts]]
        started = time.perf_counter()
        pair_vectors = ray.get(workers[0].encode_pairs.remote(pair_queries, pair_thoughts))
        query_s = time.perf_counter() - started
        counts = [len(ts) for ts in per_query]
        query_sets = ray.put([average_thoughts(pair_vectors, counts, k) for k in ks])

        k_search = search_depth(cfg.top_k, cfg.drop_self_hits)
        with counter_bar(ray, counter, len(data.corpus), f"encode + search, shards={cfg.shards}", "doc", show) as poll:
            results = {task.shard_id: ray.get(ref) for (_, task), _, ref in as_finished(
                ray, zip(workers, tasks), lambda pair, _: pair[0].run.remote(pair[1], query_sets, k_search),
                per_lane=len(tasks), poll=poll)}
        try:
            ray.get([w.shutdown.remote() for w in workers], timeout=60)
        except Exception:  # noqa: BLE001 - the workers are killed below anyway
            pass
    finally:
        for worker in workers:
            ray.kill(worker)
        costs.release(holding)
    if cache_url:
        storage.DatasetWriter(cache_url, "embeddings", config_fingerprint=cache_fp).finalize(
            extra={"model": model_of(config), "model_fingerprint": model_fp, "corpus": data.url,
                   "corpus_fingerprint": data.corpus.fingerprint})

    ordered: list[ShardHits] = [results[t.shard_id] for t in tasks]
    hit_ids = {int(n): d for shard in ordered for n, d in zip(shard.hit_rows, shard.hit_ids)}
    query_ids = list(data.queries)
    rankings = {
        k: merge_shards([shard.hits[i] for shard in ordered], hit_ids, query_ids, cfg.top_k, cfg.drop_self_hits)
        for i, k in enumerate(ks)
    }
    shards = [shard.info for shard in ordered]
    info = {"model_dir": model_dir, "model_fingerprint": model_fp, "embedding_cache": cache_url,
            "cache_hits": sum(s["cached"] for s in shards), "query_pairs": len(pair_queries),
            "query_encode_s": query_s, "shards": shards}
    return rankings, info


def plan_corpus(corpus_url: str, prefix: int, batch_size: int, shards: int) -> list[tuple[np.ndarray, list[int]]]:
    """``shard_plans`` of the corpus dataset's passage lengths (run as a Ray task: it reads every passage)."""
    return shard_plans(corpus.lengths(corpus_url, prefix), batch_size, shards)


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


def run_eval(cfg: EvalConfig, show: bool | Show = True) -> EvalResult:
    started = time.perf_counter()
    show = Show.of(show)
    cfg.check_outputs()
    for name in report.DATASETS:
        storage.check_rerun(storage.join(cfg.output, name), cfg.fingerprint(), cfg.overwrite)
    model_dir = preflight(cfg)
    data = load_dataset(cfg, show)
    if show.tables:
        report.print_dataset(data)
    thoughts = thought_stage.obtain(cfg, data, model_dir, show.progress) if cfg.needs_thoughts else None
    ks = cfg.thoughts.variants() if cfg.thinks else [0]
    per_query_thoughts = query_thoughts(data, thoughts)
    base = cfg.retriever.base if cfg.retriever.kind == "expand" else cfg.retriever
    if base.kind == "bm25":
        rankings, info = retrieve_bm25(data, cfg, base, ks, per_query_thoughts, show.progress)
    else:
        rankings, info = retrieve_vectors(data, cfg, model_dir, ks, per_query_thoughts, show.progress)
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
    if show.tables:
        report.print_metrics(cfg, result)
    if show.progress:
        report.print_written(cfg, result)
    return result
