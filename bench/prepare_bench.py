"""Driver memory and speed of ``o1e synth prepare`` as the rows grow while the corpus stays fixed (MS MARCO:
8.8M passages, ~500k training queries): synthetic JSONL rows without negatives, each query a few words of
its positive passage, hard negatives mined with BM25 from a fixed synthetic ``corpus.jsonl``.

    python bench/prepare_bench.py --rows 10000 100000 [--corpus 20000] [--work DIR]

Prints one line per size: rows, rows/s, elapsed, and the driver's peak RSS (summary.json ``throughput``);
each size runs in its own process so that one size's peak cannot hide another's. Target: the peak RSS at
10x the rows is at most 1.5x the smaller one's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCABULARY = 5_000
PASSAGE_WORDS = 40
QUERY_WORDS = 6


def passage(rng: np.random.Generator) -> str:
    return " ".join(f"w{w}" for w in rng.zipf(1.3, PASSAGE_WORDS) % VOCABULARY)


def write_corpus(path: str, size: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = [passage(rng) for _ in range(size)]
    with open(path, "w") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    return texts


def write_rows(path: str, texts: list[str], count: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for n in range(count):
            doc = int(rng.integers(len(texts)))
            words = texts[doc].split()
            query = " ".join(words[i] for i in sorted(rng.choice(len(words), QUERY_WORDS, replace=False)))
            f.write(json.dumps({"query_id": f"q{n}", "query": query, "pos": [texts[doc]], "pos_id": [f"d{doc}"]})
                    + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--corpus", type=int, default=20_000)
    parser.add_argument("--work", default=None, help="folder for the data and outputs (default: a new temp one)")
    parser.add_argument("--repo", default=REPO, help="the checkout whose o1e runs (compare two commits)")
    parser.add_argument("--tag", default="", help="added to the output folders' names")
    parser.add_argument("overrides", nargs="*", help="extra prepare settings, e.g. mining.count=15")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="o1e-prepare-bench-")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, f"corpus-{args.corpus}.jsonl")
    texts = write_corpus(corpus, args.corpus) if not os.path.exists(corpus) else None
    for count in args.rows:
        rows = os.path.join(work, f"rows-{count}.jsonl")
        if not os.path.exists(rows):
            if texts is None:
                texts = [json.loads(line)["text"] for line in open(corpus)]
            write_rows(rows, texts, count)
        out = os.path.join(work, f"out-{count}-{os.path.basename(os.path.abspath(args.repo))}{args.tag}")
        env = dict(os.environ, PYTHONPATH=args.repo)
        subprocess.run([sys.executable, "-m", "o1e.pipeline.cli", "synth", "prepare", "-d", rows, "-o", out,
                        f"dataset.corpus={corpus}", "overwrite=true", *args.overrides],
                       check=True, env=env, cwd=args.repo, stdout=subprocess.DEVNULL)
        summary = json.load(open(os.path.join(out, "summary.json")))
        t = summary["throughput"]
        print(f"rows={t['rows']} corpus={summary['corpus']} elapsed_s={t['elapsed_s']} rows_per_s={t['rows_per_s']} "
              f"driver_peak_rss_mb={t['driver_peak_rss_mb']} output={out}", flush=True)


if __name__ == "__main__":
    main()
