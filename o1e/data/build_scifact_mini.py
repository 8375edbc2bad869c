"""Rebuild the bundled SciFact slice from a full BEIR SciFact folder (deterministic).

    python o1e/data/build_scifact_mini.py ../shared/data/beir/scifact o1e/data/scifact-mini

Keeps 100 test and 100 train queries (a seeded draw), every document they judge, and seeded random
distractors up to 400 documents, in BEIR layout. Query and document texts are unchanged.
"""

import json
import os
import random
import sys

TEST_QUERIES, TRAIN_QUERIES, DOCUMENTS, SEED = 100, 100, 400, 13


def read_qrels(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path)][1:]
    return [r for r in rows if len(r) == 3]


def main(source: str, target: str) -> None:
    rng = random.Random(SEED)
    qrels = {split: read_qrels(os.path.join(source, "qrels", f"{split}.tsv")) for split in ("train", "test")}
    keep = {}
    for split, count in (("test", TEST_QUERIES), ("train", TRAIN_QUERIES)):
        ids = sorted({q for q, _, _ in qrels[split]}, key=int)
        keep[split] = set(rng.sample(ids, count))
    docs = [json.loads(line) for line in open(os.path.join(source, "corpus.jsonl"))]
    judged = {d for split in keep for q, d, _ in qrels[split] if q in keep[split]}
    others = sorted((d["_id"] for d in docs if d["_id"] not in judged), key=int)
    chosen = judged | set(rng.sample(others, DOCUMENTS - len(judged)))
    queries = [json.loads(line) for line in open(os.path.join(source, "queries.jsonl"))]
    wanted = keep["test"] | keep["train"]

    os.makedirs(os.path.join(target, "qrels"), exist_ok=True)
    with open(os.path.join(target, "corpus.jsonl"), "w") as out:
        for doc in docs:
            if doc["_id"] in chosen:
                out.write(json.dumps({"_id": doc["_id"], "title": doc["title"], "text": doc["text"]}) + "\n")
    with open(os.path.join(target, "queries.jsonl"), "w") as out:
        for query in queries:
            if query["_id"] in wanted:
                out.write(json.dumps({"_id": query["_id"], "text": query["text"]}) + "\n")
    for split in ("train", "test"):
        with open(os.path.join(target, "qrels", f"{split}.tsv"), "w") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            for q, d, s in qrels[split]:
                if q in keep[split]:
                    out.write(f"{q}\t{d}\t{s}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
