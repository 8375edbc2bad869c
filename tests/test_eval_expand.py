"""``-r expand`` with all-MiniLM-L6-v2 on BEIR SciFact test (../shared; skipped where absent).

The thoughts are given by ``thoughts.source``: three consecutive 12-word slices of each query's gold
document (first gold by sorted id; words split on white space), so the expansion is known to help. Every
variant's nDCG@10 must equal a plain in-process computation (sentence-transformers, exact search,
pytrec_eval) within 0.002, and k=0 must be the dense baseline (0.6451, MTEB).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pytrec_eval

from eval.config import EvalConfig
from eval.driver import run_eval
from o1e import beir, storage
from o1e.config import load_config

pytestmark = pytest.mark.slow


def gold_slices(data: beir.BeirDataset, n: int = 3, words: int = 12) -> dict[str, list[str]]:
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    out = {}
    for query_id, judged in data.qrels.items():
        gold = sorted(d for d, s in judged.items() if s > 0)[0]
        tokens = passages[gold].split()
        out[query_id] = [" ".join(tokens[i * words:(i + 1) * words]) for i in range(n)]
    return out


def reference_ndcg(data: beir.BeirDataset, model, docs: np.ndarray, thoughts: dict[str, list[str]], k: int
                   ) -> float:
    """sentence-transformers + exact inner-product search + pytrec_eval, in this process."""
    query_ids = list(data.queries)
    vectors = []
    for q in query_ids:
        texts = [data.queries[q]] if k == 0 else [f"{data.queries[q]} {t}" for t in thoughts[q][:k]]
        vectors.append(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).mean(axis=0))
    scores = np.asarray(vectors) @ docs.T
    run = {}
    for row, q in enumerate(query_ids):
        top = np.argsort(-scores[row])[:11]
        run[q] = {data.corpus.ids[i]: float(scores[row, i]) for i in top if data.corpus.ids[i] != q}
    result = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"}).evaluate(run)
    return float(np.mean([result.get(q, {}).get("ndcg_cut_10", 0.0) for q in data.qrels]))


def test_expand_with_gold_slices_matches_in_process_reference(ray_cluster, scifact, scifact_cache, minilm, tmp_path):
    from sentence_transformers import SentenceTransformer

    data = beir.load(scifact, "test")
    thoughts = gold_slices(data)
    rows = [{"query_id": q, "thought_index": i, "thought": t} for q, ts in thoughts.items() for i, t in enumerate(ts)]
    rows.append({"query_id": "not-a-test-query", "thought_index": 0, "thought": "ignored"})
    source = str(tmp_path / "slices.parquet")
    pq.write_table(pa.Table.from_pylist(rows), source)  # a plain Parquet file, not an o1e dataset

    cfg = load_config(EvalConfig, None, [
        f"dataset.path={scifact}", "retriever.kind=expand", f"thoughts.source={source}", "thoughts.k=[0,1,3]",
        "shards=2", f"output={tmp_path / 'out'}", f"cache_dir={scifact_cache}"])
    result = run_eval(cfg, show=False)

    ndcg = {k: m["ndcg@10"] for k, m in result.variants.items()}
    assert abs(ndcg[0] - 0.6451) <= 0.002  # k=0 is the dense baseline
    assert ndcg[1] > ndcg[0] + 0.05 and ndcg[3] > ndcg[0] + 0.05  # gold text in the query helps
    model = SentenceTransformer(minilm, device="cpu")
    docs = model.encode(data.corpus.passages(), batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    for k in (0, 1, 3):
        assert abs(ndcg[k] - reference_ndcg(data, model, docs, thoughts, k)) <= 0.002, k

    # The unknown query id is a counted reject; outside readers see every variant and the thoughts used.
    assert result.info["thoughts"]["unknown_query"] == 1
    rejects = storage.read_table(str(tmp_path / "out" / "rejects")).to_pylist()
    assert [(r["row"], r["reason"]) for r in rejects] == [("not-a-test-query/0", "unknown_query")]
    metrics = storage.read_json(str(tmp_path / "out" / "metrics.json"))
    assert set(metrics["variants"]) == {"k=0", "k=1", "k=3"} and metrics["k"] == 3
    assert metrics["ndcg@10"] == metrics["variants"]["k=3"]["ndcg@10"]
    import pandas as pd

    per_query = pd.read_parquet(str(tmp_path / "out" / "per_query"))
    assert sorted(per_query["k"].unique()) == [0, 1, 3] and len(per_query) == 3 * 300
    some = per_query[(per_query["k"] == 3)].iloc[0]
    assert list(some["thoughts"]) == thoughts[some["query_id"]]
    print({k: round(v, 4) for k, v in ndcg.items()})
