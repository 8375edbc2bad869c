"""An oracle check of a committee on a BEIR split: for each query, the candidates are one sentence of
its gold document, one sentence of a random other document and one generic sentence (in a random
order); a sound committee picks the gold-document sentence. Used by the tests and the benchmark.

``python -m o1e.committee.oracle BEIR_DIR OUT [--split train]`` writes ``OUT/training_rows`` and
``OUT/candidates`` (plus ``OUT/oracle.json``, each query's gold candidate index) for ``o1e vote``."""

from __future__ import annotations

import argparse
import random
import re

import pyarrow as pa

from o1e import beir, storage

GENERIC_SENTENCES = (
    "This is an interesting question that deserves a careful and thoughtful answer.",
    "There are many different factors to consider before reaching any conclusion here.",
    "Further research would be needed to say anything definite about this topic.",
    "The answer depends on the context in which the question is asked.",
    "Experts have discussed this for a long time without full agreement.",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def pick_sentence(text: str, rng: random.Random, min_words: int = 8) -> str:
    """A random sentence of ``text`` with at least ``min_words`` words (else its longest sentence)."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    long_enough = [s for s in sentences if len(s.split()) >= min_words]
    if long_enough:
        return rng.choice(long_enough)
    return max(sentences, key=len) if sentences else text


def oracle_inputs(data: beir.BeirDataset, seed: int = 13, limit: int | None = None
                  ) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """``training_rows`` and ``candidates`` tables, and each query's gold candidate index."""
    rng = random.Random(seed)
    position = {doc_id: i for i, doc_id in enumerate(data.corpus.ids)}
    passages = data.corpus.passages()
    training, candidates, gold_index = [], [], {}
    for query_id, text in list(data.queries.items())[:limit]:
        positive_ids = [d for d, score in data.qrels[query_id].items() if score > 0 and d in position]
        if not positive_ids:
            continue
        gold_doc = position[positive_ids[0]]
        other = gold_doc
        while data.corpus.ids[other] in positive_ids:
            other = rng.randrange(len(data.corpus))
        thoughts = [pick_sentence(data.corpus.texts[gold_doc], rng),
                    pick_sentence(data.corpus.texts[other], rng), rng.choice(GENERIC_SENTENCES)]
        order = list(range(3))
        rng.shuffle(order)
        gold_index[query_id] = order.index(0)
        training.append({"query_id": query_id, "query": text, "positive_ids": positive_ids,
                         "positives": [passages[position[d]] for d in positive_ids],
                         "negative_ids": [data.corpus.ids[other]], "negatives": [passages[other]]})
        for c, source in enumerate(order):
            candidates.append({"query_id": query_id, "candidate_index": c, "thought": thoughts[source],
                               "finish_reason": "stop", "prompt_tokens": 0,
                               "completion_tokens": len(thoughts[source].split()), "model": "oracle",
                               "prompt_fingerprint": ""})
    return pa.Table.from_pylist(training), pa.Table.from_pylist(candidates), gold_index


def write_oracle_inputs(beir_dir: str, out: str, split: str = "train", seed: int = 13,
                        limit: int | None = None) -> dict[str, int]:
    data = beir.load(beir_dir, split, drop_unknown_docs=True)
    training, candidates, gold_index = oracle_inputs(data, seed, limit)
    storage.write_table(storage.join(out, "training_rows"), training, "training_rows")
    storage.write_table(storage.join(out, "candidates"), candidates, "candidates")
    storage.write_json(storage.join(out, "oracle.json"), gold_index)
    return gold_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("beir_dir")
    parser.add_argument("out")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    gold = write_oracle_inputs(args.beir_dir, args.out, args.split, args.seed, args.limit)
    print(f"wrote {len(gold)} oracle queries under {args.out}")


if __name__ == "__main__":
    main()
