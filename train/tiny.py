"""Training data for tests and benchmarks of the train stage (tiny random models: ``o1e.tiny``)."""

from __future__ import annotations

def scifact_training_table(num_queries: int = 16, negatives: int = 7, seed: int = 0, doc_chars: int = 300):
    """A small ``training`` table from the bundled SciFact slice: real queries and gold passages, a short
    made-up thought (the gold passage's title, standing in for a committee-chosen thought) and random
    passages as negatives."""
    import random

    import pyarrow as pa

    from o1e import beir
    from o1e.paths import DEMO_DATA

    data = beir.load(DEMO_DATA, "train", drop_unknown_docs=True)
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    titles = dict(zip(data.corpus.ids, data.corpus.titles))
    rng = random.Random(seed)
    rows = []
    for query_id, judged in list(data.qrels.items())[:num_queries]:
        gold = [d for d, s in judged.items() if s > 0]
        others = [d for d in data.corpus.ids if d not in judged]
        picked = rng.sample(others, negatives)
        rows.append({
            "query_id": query_id, "query": data.queries[query_id],
            "thought": f"The answer concerns {titles[gold[0]].lower()}",
            "positive_ids": gold, "positives": [passages[d][:doc_chars] for d in gold],
            "negative_ids": picked, "negatives": [passages[d][:doc_chars] for d in picked],
            "teacher_scores": None,
        })
    return pa.Table.from_pylist(rows)
