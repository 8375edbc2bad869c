"""Sharded exact search: plan which documents each shard encodes (searching and merging the shards is
``o1e.retrievers``'s ``flat_ip_search`` and ``merge_shards``).

Pure functions (numpy, no Ray) so that tests call them directly.
"""

from __future__ import annotations

import numpy as np


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

