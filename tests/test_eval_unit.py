import math

import numpy as np
import pytest

from o1e.eval.metrics import evaluate
from o1e.eval.search import assign_batches, plan_batches
from o1e.retrievers import flat_ip_index, flat_ip_search, merge_shards, trec_order
from o1e.bm25 import PAPER_TOKENIZER, BM25Config, BM25Index, Tokenizer, TokenizerConfig


def test_metrics_against_hand_computed_values():
    qrels = {"q1": {"a": 1, "b": 1, "z": 0}, "q2": {"c": 2}, "q3": {"d": 1}}
    ranking = {
        "q1": [("x", 4.0), ("a", 3.0), ("y", 2.0), ("b", 1.0)],
        "q2": [(f"n{i}", 20.0 - i) for i in range(10)] + [("c", 1.0)],
        "q3": [],
    }
    means, per_query = evaluate(qrels, ranking)
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert per_query["q1"]["ndcg@10"] == pytest.approx(ndcg_q1)
    assert per_query["q1"]["mrr@10"] == pytest.approx(0.5)
    assert per_query["q1"]["recall@100"] == 1.0 and per_query["q1"]["num_relevant"] == 2
    assert per_query["q2"]["ndcg@10"] == 0.0 and per_query["q2"]["mrr@10"] == 0.0  # found at rank 11
    assert per_query["q2"]["recall@100"] == 1.0
    assert per_query["q3"] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 0.0, "recall@1000": 0.0,
                               "num_relevant": 1, "num_retrieved": 0}
    assert means["num_queries"] == 3
    assert means["ndcg@10"] == pytest.approx(ndcg_q1 / 3)
    assert means["mrr@10"] == pytest.approx(0.5 / 3)
    assert means["recall@100"] == pytest.approx(2 / 3)


def test_trec_order_breaks_ties_by_document_id_descending():
    assert trec_order([("a", 1.0), ("c", 2.0), ("b", 1.0)]) == [("c", 2.0), ("b", 1.0), ("a", 1.0)]


def test_batch_plan_is_longest_first_and_independent_of_shards():
    lengths = [5, 9, 9, 1, 7, 3, 8]
    plan = plan_batches(lengths, batch_size=3)
    assert [list(b) for b in plan] == [[1, 2, 6], [4, 0, 5], [3]]
    assert assign_batches(3, 2) == [[0, 2], [1]]
    assert assign_batches(2, 3) == [[0], [1], []]


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_sharded_search_equals_unsharded(shards):
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((57, 8)).astype(np.float32)
    queries = rng.standard_normal((6, 8)).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(57)]
    query_ids = ["d3", "q1", "q2", "q3", "q4", "q5"]  # the first query shares an id with a document
    full = merge_shards([flat_ip_search(flat_ip_index(docs), queries, 11)], doc_ids, query_ids, k=10)
    parts = []
    for numbers in np.array_split(np.arange(57), shards):
        scores, local = flat_ip_search(flat_ip_index(docs[numbers]), queries, 11)
        parts.append((scores, numbers[local]))
    assert merge_shards(parts, doc_ids, query_ids, k=10) == full
    assert all(len(hits) == 10 for hits in full.values())
    assert "d3" not in [d for d, _ in full["d3"]]  # BEIR's self-hit rule
    exact = np.argsort(-(queries[1] @ docs.T))[:10]
    assert [d for d, _ in full["q1"]] == [doc_ids[i] for i in exact]


def test_tokenizers():
    lucene = Tokenizer(TokenizerConfig())
    assert lucene("The Running dogs, and CATS!") == ["run", "dog", "cat"]
    assert Tokenizer(PAPER_TOKENIZER)("The Running dogs, and CATS!") == ["the", "running", "dogs,", "and", "cats!"]
    # The reference committee code's strip().lower().split(" "): empty tokens between double spaces, newlines
    # kept inside tokens; str.split() would give ["a", "b", "c"].
    text = "  A  b\nC "
    assert Tokenizer(PAPER_TOKENIZER)(text) == text.strip().lower().split(" ") == ["a", "", "b\nc"]
    assert Tokenizer(TokenizerConfig(split="whitespace", stopwords="none", stemmer="none"))(text) == ["a", "b", "c"]


@pytest.mark.parametrize("backend", ["rank_bm25", "bm25s"])
def test_bm25_top_k_matches_full_scoring(backend):
    texts = ["cats purr softly", "dogs bark loudly at cats", "the stock market fell", "cats and dogs", "",
             "dogs", "rain in spain", "planes fly high", "bonds yield more", "tea is hot"]
    index = BM25Index(texts, BM25Config(backend=backend))
    scores = index.scores("cats dogs")
    assert scores[3] > scores[2] == 0.0 and scores[4] == 0.0
    best, top = index.top_k("cats dogs", 3)
    assert list(top) == sorted(scores, reverse=True)[:3]
    assert best[0] == 3
    assert index.scores("zebra").sum() == 0.0  # an unseen term scores nothing, without error


@pytest.mark.parametrize("backend", ["rank_bm25", "bm25s"])
def test_bm25_worker_reads_the_corpus_dataset_and_ranks_like_an_index_of_the_jsonl(tmp_path, backend):
    import json

    from o1e.eval.worker import BM25Worker
    from o1e import corpus

    docs = [{"_id": doc_id, "title": t, "text": x} for doc_id, t, x in [
        ("d0", "Cats", "purr softly"), ("d1", "", "dogs bark loudly at cats"), ("d2", "Market", "the stock market"),
        ("d3", "", "cats and dogs"), ("q1", "", "dogs dogs")]]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    converted = corpus.convert(str(tmp_path / "corpus.jsonl"), str(tmp_path / "corpus"), part_rows=2)
    config = BM25Config(backend=backend)
    worker = BM25Worker(converted.url, config)
    queries = {"q0": "cats dogs", "q1": "dogs"}
    rankings, _ = worker.search(queries, [[], ["cats market"]], [0, 1], top_k=3, drop_self_hits=True)
    index = BM25Index([(d["title"] + " " + d["text"]).strip() for d in docs], config)
    best, scores = index.top_k("cats dogs", 4)
    assert rankings[0]["q0"] == trec_order([(docs[i]["_id"], float(s)) for i, s in zip(best, scores)])[:3]
    assert "q1" not in [d for d, _ in rankings[0]["q1"]] and len(rankings[1]["q1"]) == 3  # BEIR's self-hit rule


def test_embedding_fingerprint_names_the_length_the_model_reads_at(minilm):
    """An explicit pooling with no max_length reads at the folder's own length (256 for MiniLM): the same
    vectors as naming 256, other vectors than 512, so the embedding cache keys them that way."""
    from o1e.retrievers import DenseRetrieverConfig, embedding_fingerprint

    mean = DenseRetrieverConfig(model=minilm, pooling="mean")
    assert embedding_fingerprint(mean, minilm) == embedding_fingerprint(mean.model_copy(update={"max_length": 256}),
                                                                        minilm)
    assert embedding_fingerprint(mean, minilm) != embedding_fingerprint(mean.model_copy(update={"max_length": 512}),
                                                                        minilm)
