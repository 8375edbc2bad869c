"""The workers that read the corpus dataset themselves. ``ShardWorker``: one shard's work: read its
documents, encode them (or load them from the embedding cache) with a vector retriever, then search them
for every query variant. ``BM25Worker``: BM25 over the whole corpus. Ray-free: the driver runs them as
Ray actors, tests may run them in-process."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from o1e import corpus, storage
from o1e.bm25 import BM25Index
from o1e.retrievers import (Ranking, build_retriever, encode_in_batches, expand_query_text, flat_ip_index,
                            flat_ip_search, rank_hits, search_depth)


@dataclass
class ShardTask:
    shard_id: str
    doc_numbers: np.ndarray  # global row numbers in the corpus, in encoding order
    batch_sizes: list[int]  # the shard's batches, consecutive in ``doc_numbers``
    corpus_url: str
    cache_url: str | None
    cache_fingerprint: str


@dataclass
class ShardHits:
    """What a shard sends back: per variant its top-k (scores, global row numbers; -1 pads), and the
    document ids of the rows among them (``hit_rows`` ascending, ``hit_ids`` aligned)."""

    hits: list[tuple[np.ndarray, np.ndarray]]
    hit_rows: np.ndarray
    hit_ids: list[str]
    info: dict


def vectors_to_table(doc_ids: list[str], vectors: np.ndarray) -> pa.Table:
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32))
    return pa.table({"doc_id": doc_ids, "embedding": pa.ListArray.from_arrays(offsets, flat)})


def table_to_vectors(table: pa.Table) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    return column.flatten().to_numpy().reshape(len(column), -1).astype(np.float32, copy=False)


class ShardWorker:
    def __init__(self, retriever, model_dir: str, threads: int = 1, counter=None) -> None:
        import faiss
        import torch

        torch.set_num_threads(max(1, threads))
        faiss.omp_set_num_threads(max(1, threads))
        self.retriever = build_retriever(retriever, model_dir, threads)
        self.counter = counter  # a Ray actor handle of o1e.progress.Counter, or None

    def encode_pairs(self, queries: list[str], thoughts: list[str]) -> np.ndarray:
        """One vector per (query, thought); an empty thought is the query without thinking."""
        return self.retriever.encode_pairs(queries, thoughts)

    def shard_vectors(self, task: ShardTask) -> tuple[np.ndarray, list[str], bool]:
        """The shard's document vectors and ids (rows in ``task.doc_numbers`` order), and whether the
        vectors were cached."""
        writer = cached = None
        if task.cache_url:
            writer = storage.DatasetWriter(task.cache_url, "embeddings", config_fingerprint=task.cache_fingerprint)
            cached = writer.read_shard(task.shard_id)
        columns = ("doc_id",) if cached is not None else ("doc_id", "title", "text")
        rows = corpus.read_rows(task.corpus_url, task.doc_numbers, columns)
        doc_ids = rows.column("doc_id").to_pylist()
        if cached is not None:
            if cached.column("doc_id").to_pylist() != doc_ids:
                raise storage.StorageError(f"embedding cache {task.cache_url} shard {task.shard_id} does not "
                                           "hold this shard's documents; delete that folder and rerun")
            if self.counter is not None:  # read from the cache: its documents are done
                self.counter.add.remote(len(doc_ids))
            return table_to_vectors(cached), doc_ids, True
        texts = corpus.passages(rows.column("title").to_pylist(), rows.column("text").to_pylist())
        del rows
        progress = self.counter.add.remote if self.counter is not None else None
        vectors = encode_in_batches(self.retriever.encode_documents, texts, task.batch_sizes, progress)
        if writer is not None:
            writer.commit_shard(task.shard_id, vectors_to_table(doc_ids, vectors))
        return vectors, doc_ids, False

    def run(self, task: ShardTask, query_sets: list[np.ndarray], k: int) -> ShardHits:
        """For each query matrix (one per variant), the top-``k`` (scores, global row numbers) of every
        query within this shard, with the ids of the documents hit."""
        started = time.perf_counter()
        vectors, doc_ids, cached = self.shard_vectors(task)
        encoded = time.perf_counter()
        index = flat_ip_index(vectors)
        hits, hit_local = [], []
        for query_vectors in query_sets:
            scores, local = flat_ip_search(index, query_vectors, k)
            hits.append((scores, np.where(local >= 0, task.doc_numbers[np.maximum(local, 0)], -1)))
            hit_local.append(local[local >= 0])
        local_rows = np.unique(np.concatenate(hit_local)) if hit_local else np.zeros(0, np.int64)
        hit_rows = task.doc_numbers[local_rows]
        order = np.argsort(hit_rows)
        info = {"shard": task.shard_id, "documents": len(doc_ids), "cached": cached,
                "encode_s": encoded - started, "search_s": time.perf_counter() - encoded}
        return ShardHits(hits, hit_rows[order], [doc_ids[i] for i in local_rows[order]], info)

    def shutdown(self) -> None:
        """Stop a vLLM pooling engine now rather than when the actor is killed."""
        pooler = getattr(self.retriever, "vllm", None)
        if pooler is not None:
            pooler.shutdown()


class BM25Worker:
    """BM25 over the corpus dataset: reads every passage, indexes them, ranks the queries."""

    def __init__(self, corpus_url: str, config, counter=None) -> None:
        table = corpus.read_rows(corpus_url)
        self.doc_ids = table.column("doc_id").to_pylist()
        texts = corpus.passages(table.column("title").to_pylist(), table.column("text").to_pylist())
        del table
        started = time.perf_counter()
        self.index = BM25Index(texts, config)
        self.index_s = time.perf_counter() - started
        self.counter = counter  # a Ray actor handle of o1e.progress.Counter, or None

    def search(self, queries: dict[str, str], per_query: list[list[str]], ks: list[int], top_k: int,
               drop_self_hits: bool) -> tuple[dict[int, Ranking], dict]:
        """Rankings per variant; with thoughts, variant k searches the query followed by its first k."""
        started = time.perf_counter()
        rankings: dict[int, Ranking] = {k: {} for k in ks}
        depth = search_depth(top_k, drop_self_hits)
        for (query_id, text), thoughts in zip(queries.items(), per_query):
            for k in ks:
                best, scores = self.index.top_k(expand_query_text(text, thoughts, k), depth)
                hits = [(self.doc_ids[i], float(s)) for i, s in zip(best, scores)]
                rankings[k][query_id] = rank_hits(query_id, hits, top_k, drop_self_hits)
            if self.counter is not None:
                self.counter.add.remote(1)
        return rankings, {"index_s": self.index_s, "search_s": time.perf_counter() - started}
