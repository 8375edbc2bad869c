"""One shard's work: encode (or load from cache) its documents with a vector retriever, then search them
for every query variant. Ray-free: the driver runs it as a Ray actor, tests may run it in-process."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from eval.search import search_shard
from o1e import storage
from o1e.retrievers import build_retriever


@dataclass
class ShardTask:
    shard_id: str
    doc_numbers: np.ndarray  # global row numbers in the corpus, in encoding order
    doc_ids: list[str]
    texts: list[str]
    batch_sizes: list[int]  # the shard's batches, consecutive in ``texts``
    cache_url: str | None
    cache_fingerprint: str


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

    def shard_vectors(self, task: ShardTask) -> tuple[np.ndarray, bool]:
        """The shard's document vectors (rows in ``task.doc_numbers`` order) and whether they were cached."""
        writer = None
        if task.cache_url:
            writer = storage.DatasetWriter(task.cache_url, "embeddings", config_fingerprint=task.cache_fingerprint)
            cached = writer.read_shard(task.shard_id)
            if cached is not None:
                if cached.column("doc_id").to_pylist() != task.doc_ids:
                    raise storage.StorageError(f"embedding cache {task.cache_url} shard {task.shard_id} does not "
                                               "hold this shard's documents; delete that folder and rerun")
                return table_to_vectors(cached), True
        parts, start = [], 0
        for size in task.batch_sizes:
            batch = task.texts[start:start + size]
            parts.append(self.retriever.encode_documents(batch))
            start += size
            if self.counter is not None:
                self.counter.add.remote(size)
        vectors = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        if writer is not None:
            writer.commit_shard(task.shard_id, vectors_to_table(task.doc_ids, vectors))
        return vectors, False

    def run(self, task: ShardTask, query_sets: list[np.ndarray], k: int
            ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
        """For each query matrix (one per variant), the top-``k`` (scores, global document numbers) of
        every query within this shard."""
        started = time.perf_counter()
        vectors, cached = self.shard_vectors(task)
        encoded = time.perf_counter()
        hits = []
        for query_vectors in query_sets:
            scores, local = search_shard(vectors, query_vectors, k)
            hits.append((scores, np.where(local >= 0, task.doc_numbers[np.maximum(local, 0)], -1)))
        info = {"shard": task.shard_id, "documents": len(task.doc_ids), "cached": cached,
                "encode_s": encoded - started, "search_s": time.perf_counter() - encoded}
        return hits, info

    def shutdown(self) -> None:
        """Stop a vLLM pooling engine now rather than when the actor is killed."""
        pooler = getattr(self.retriever, "vllm", None)
        if pooler is not None:
            pooler.shutdown()
