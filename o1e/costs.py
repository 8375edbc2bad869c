"""What a gain in retrieval quality cost: thought tokens per query and the gain per 1,000 of them, from the
counts an evaluation records (``metrics.json`` ``info.thoughts``)."""

from __future__ import annotations

from typing import Any


def thought_tokens_per_query(thoughts: dict[str, Any] | None, num_queries: int, k: int) -> float:
    """Generated thought tokens a query uses at ``k`` thoughts: k times the mean thought length."""
    if not thoughts or not k or not num_queries or not thoughts.get("generated_tokens"):
        return 0.0
    return k * thoughts["generated_tokens"] / (num_queries * thoughts["n"])


def thought_seconds_per_query(thoughts: dict[str, Any] | None, num_queries: int, k: int) -> float:
    """Generation seconds a query's ``k`` thoughts took: k times the mean time per thought."""
    if not thoughts or not k or not num_queries or not thoughts.get("generation_s"):
        return 0.0
    return k * thoughts["generation_s"] / (num_queries * thoughts["n"])


def gain_per_1k_tokens(ndcg: float, ndcg_k0: float | None, tokens: float) -> float | None:
    """nDCG@10 gained against k = 0 per 1,000 thought tokens a query uses."""
    if ndcg_k0 is None or tokens <= 0:
        return None
    return (ndcg - ndcg_k0) / (tokens / 1000)
