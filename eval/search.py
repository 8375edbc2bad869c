"""Sharded exact search: plan which documents each shard encodes, search each shard, merge the top-k.

Pure functions (numpy and FAISS, no Ray) so that tests call them directly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from o1e.eval.metrics import Ranking, trec_order
from o1e.retrievers import flat_ip_index


def plan_batches(lengths: list[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Encoding batches: documents longest first (as sentence-transformers orders them), cut every
    ``batch_size``. The plan does not depend on the shard count, so every document is encoded in the
    same batch, and gets bit-identical embeddings, whether the corpus runs on 1 shard or 16."""
    order = np.lexsort((np.arange(len(lengths)), -np.asarray(lengths)))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def assign_batches(num_batches: int, shards: int) -> list[list[int]]:
    """Batch numbers for each shard, dealt round-robin so that every shard gets long and short texts."""
    return [list(range(shard, num_batches, shards)) for shard in range(shards)]


def shard_plans(lengths: np.ndarray, batch_size: int, shards: int) -> list[tuple[np.ndarray, list[int]]]:
    """Per shard: the global row numbers it encodes, in encoding order, and the sizes of its batches."""
    plan = plan_batches(lengths, batch_size)
    plans = []
    for batch_numbers in assign_batches(len(plan), shards):
        numbers = np.concatenate([plan[b] for b in batch_numbers]) if batch_numbers else np.zeros(0, np.int64)
        plans.append((numbers, [len(plan[b]) for b in batch_numbers]))
    return plans


def search_shard(doc_vectors: np.ndarray, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of one shard: scores and row numbers within the shard."""
    return flat_ip_index(doc_vectors).search(query_vectors, min(k, doc_vectors.shape[0]))


def merge_shards(
    shard_hits: list[tuple[np.ndarray, np.ndarray]],
    doc_ids: Sequence[str] | Mapping[int, str],
    query_ids: list[str],
    k: int,
    drop_self_hits: bool = True,
) -> Ranking:
    """Merge per-shard hits (scores, global document numbers) into each query's top ``k``; ``doc_ids``
    maps a document number to its id (the whole corpus's list, or just the numbers hit).

    Ties are ordered as trec_eval orders them (document id descending), so the ranking does not
    depend on how the corpus was sharded. With ``drop_self_hits`` a document whose id equals the query
    id is dropped (BEIR's convention; shards search ``k + 1`` to make up for it).
    """
    scores = np.concatenate([s for s, _ in shard_hits], axis=1)
    numbers = np.concatenate([n for _, n in shard_hits], axis=1)
    ranking: Ranking = {}
    for row, query_id in enumerate(query_ids):
        hits = [(doc_ids[n], float(s)) for n, s in zip(numbers[row], scores[row]) if n >= 0]
        if drop_self_hits:
            hits = [h for h in hits if h[0] != query_id]
        ranking[query_id] = trec_order(hits)[:k]
    return ranking
