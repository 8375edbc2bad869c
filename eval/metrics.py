"""Retrieval metrics through pytrec_eval (the trec_eval implementation BEIR and MTEB use)."""

from __future__ import annotations

import numpy as np
import pytrec_eval

from o1e.retrievers import Ranking, trec_order

METRICS = ("ndcg@10", "mrr@10", "recall@100", "recall@1000")


def evaluate(qrels: dict[str, dict[str, int]], ranking: Ranking) -> tuple[dict[str, float], dict[str, dict]]:
    """Mean metrics over every judged query, and each query's own; a query with no hits scores 0."""
    run = {q: {d: float(s) for d, s in hits} for q, hits in ranking.items() if hits}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100,1000"}).evaluate(run)
    # MRR@10 is trec_eval's recip_rank over the top 10 only (as BEIR computes it).
    top10 = {q: dict(trec_order(list(hits.items()))[:10]) for q, hits in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)

    per_query: dict[str, dict] = {}
    for query_id, judged in qrels.items():
        scores = full.get(query_id, {})
        per_query[query_id] = {
            "ndcg@10": scores.get("ndcg_cut_10", 0.0),
            "mrr@10": mrr.get(query_id, {}).get("recip_rank", 0.0),
            "recall@100": scores.get("recall_100", 0.0),
            "recall@1000": scores.get("recall_1000", 0.0),
            "num_relevant": sum(1 for r in judged.values() if r > 0),
            "num_retrieved": len(ranking.get(query_id, [])),
        }
    means = {m: float(np.mean([row[m] for row in per_query.values()])) for m in METRICS}
    means["num_queries"] = len(per_query)
    return means, per_query
