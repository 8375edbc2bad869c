"""Every stage at three sizes 10x apart, on synthetic data: time per row and the driver's peak memory.

    .venv/bin/python bench/scale_bench.py [--scale full|quick] [--stages eval,prepare,vote,synth] [--work DIR]

Sizes (``full``; ``quick`` divides each by 10, for a look in a few minutes):

- eval: a tiny random BERT encoder (one layer, hidden 32; MiniLM's tokenizer) over 10k, 100k and 1M
  passages, 200 judged queries, 2 shards, the embedding cache off;
- prepare: 10k, 100k and 1M JSONL training rows without negatives, 15 BM25-mined negatives each from a
  fixed corpus of 20k passages (MS MARCO's corpus is fixed while the queries vary), with the bm25s
  backend (rank-bm25, the default, scores every document in Python: about 15 ms a query here);
- vote: 10k, 100k and 1M training rows with 3 candidate thoughts each and a BM25-only committee;
- synth: 1k, 10k and 100k queries, 3 candidates each, against a fast local OpenAI-compatible engine that
  answers eight words (``bench/openai_stub.py``), so the figure is synth's own cost.

Every other setting is the stage's default: what a user gets. The text is synthetic: words drawn from the
whole words of MiniLM's vocabulary (about 21,000, one token each) with Zipf frequencies, 60 words a passage and 6 a query (MS MARCO's passages
average 56 words, its queries 6), each query made from words of its relevant passage.

Each stage runs as its own process through the ``o1e`` command, joining one local Ray cluster this
script starts first (clusters outlive jobs; its start is not counted). For each size it prints rows,
the whole process's wall time, time per row, and the driver's peak RSS (``summary.json``'s
``throughput.driver_peak_rss_mb``, measured in the stage's own driver process; Ray's workers are other
processes). Per stage: the largest size's peak RSS over the next size's (target <= 1.5 while the rows
grow 10x) and its time per row over the middle size's (target <= 1.3). Results go to
``<work>/scale_bench.json``; a later run over the same work folder adds its stages to them.

Last line: ``ratio=<largest driver peak RSS / next size's>``, the worst stage's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from o1e import storage  # noqa: E402

console = Console()
SIZES = {
    "eval": [10_000, 100_000, 1_000_000],
    "prepare": [10_000, 100_000, 1_000_000],
    "vote": [10_000, 100_000, 1_000_000],
    "synth": [1_000, 10_000, 100_000],
}
UNITS = {"eval": "passages", "prepare": "rows", "vote": "rows", "synth": "queries"}
PASSAGE_WORDS, QUERY_WORDS = 60, 6
EVAL_QUERIES = 200
PREPARE_CORPUS = 20_000
PART_ROWS = 100_000


# ---------------------------------------------------------------------------------------------------
# synthetic text


class Words:
    """A fixed vocabulary with Zipf frequencies: the whole words of MiniLM's WordPiece vocabulary (each one
    token, so a passage is as many tokens as words). Every draw is seeded: each size's data is the same at
    every run."""

    def __init__(self) -> None:
        from o1e.models import resolve_model_dir

        with open(os.path.join(resolve_model_dir("all-MiniLM-L6-v2"), "vocab.txt"), encoding="utf-8") as f:
            words = [w.strip() for w in f if w.strip().isalpha() and w.strip().isascii() and len(w.strip()) >= 3]
        self.vocab = np.array(words, dtype=object)
        ranks = np.arange(1, len(self.vocab) + 1, dtype=np.float64)
        self.cdf = np.cumsum(1.0 / ranks) / np.sum(1.0 / ranks)

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(count)), len(self.vocab) - 1)

    def passages(self, seed: int, count: int) -> list[str]:
        ids = self.draw(np.random.default_rng(seed), count * PASSAGE_WORDS).reshape(count, PASSAGE_WORDS)
        return [" ".join(self.vocab[row]) for row in ids]

    def queries_of(self, seed: int, passages: list[str]) -> list[str]:
        """A query per passage: words picked from it (a retriever can find its passage)."""
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, PASSAGE_WORDS, size=(len(passages), QUERY_WORDS))
        return [" ".join(p.split(" ")[i] for i in row) for p, row in zip(passages, picks)]


def write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def beir_folder(folder: str, words: Words, passages: int, queries: int) -> str:
    """corpus.jsonl, queries.jsonl and qrels/test.tsv: each query judges the passage it was made from."""
    if os.path.isfile(os.path.join(folder, "qrels", "test.tsv")):
        return folder
    os.makedirs(os.path.join(folder, "qrels"), exist_ok=True)
    judged = np.random.default_rng(1).choice(passages, size=queries, replace=False)
    judged_texts = {}
    with open(os.path.join(folder, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for start in range(0, passages, PART_ROWS):
            texts = words.passages(start, min(PART_ROWS, passages - start))
            f.writelines(json.dumps({"_id": f"d{start + i}", "title": "", "text": t}) + "\n"
                         for i, t in enumerate(texts))
            judged_texts.update({int(d): texts[d - start] for d in judged if start <= d < start + len(texts)})
    texts = [judged_texts[int(d)] for d in judged]
    write_jsonl(os.path.join(folder, "queries.jsonl"),
                ({"_id": f"q{i}", "text": q} for i, q in enumerate(words.queries_of(2, texts))))
    with open(os.path.join(folder, "qrels", "test.tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"q{i}\td{d}\t1\n" for i, d in enumerate(judged))
    return folder


def prepare_inputs(folder: str, words: Words, rows: int) -> tuple[str, str]:
    """JSONL rows (query, pos, pos_id; no negatives) over a fixed BEIR corpus of PREPARE_CORPUS passages."""
    corpus = os.path.join(folder, "corpus", "corpus.jsonl")
    if not os.path.isfile(corpus):
        os.makedirs(os.path.dirname(corpus), exist_ok=True)
        write_jsonl(corpus, ({"_id": f"d{i}", "title": "", "text": t}
                             for i, t in enumerate(words.passages(0, PREPARE_CORPUS))))
    path = os.path.join(folder, f"rows-{rows}.jsonl")
    if not os.path.isfile(path):
        passages = words.passages(0, PREPARE_CORPUS)
        with open(path, "w", encoding="utf-8") as f:
            for start in range(0, rows, PART_ROWS):
                count = min(PART_ROWS, rows - start)
                gold = np.random.default_rng(10 + start).integers(0, PREPARE_CORPUS, size=count)
                queries = words.queries_of(20 + start, [passages[g] for g in gold])
                f.writelines(json.dumps({"query_id": f"q{start + i}", "query": q, "pos": [passages[g]],
                                         "pos_id": [f"d{g}"]}) + "\n" for i, (q, g) in enumerate(zip(queries, gold)))
    return path, corpus


def training_rows(folder: str, words: Words, rows: int, negatives: int, candidates: int) -> tuple[str, str]:
    """A ``training_rows`` dataset (1 positive, ``negatives`` negatives a row) and, when ``candidates``, a
    ``candidates`` dataset with that many thoughts a query, written part by part."""
    rows_url, cands_url = os.path.join(folder, "training_rows"), os.path.join(folder, "candidates")
    if storage.is_dataset(rows_url) and (not candidates or storage.is_dataset(cands_url)):
        return rows_url, cands_url
    row_writer = storage.DatasetWriter(rows_url, "training_rows", overwrite=True)
    cand_writer = storage.DatasetWriter(cands_url, "candidates", overwrite=True) if candidates else None
    for number, start in enumerate(range(0, rows, PART_ROWS)):
        count = min(PART_ROWS, rows - start)
        texts = words.passages(1_000_000 + start, count * (1 + negatives))
        pos = texts[:count]
        ids = [f"q{start + i}" for i in range(count)]
        neg = [texts[count + i * negatives: count + (i + 1) * negatives] for i in range(count)]
        row_writer.commit_shard(f"{number:05d}", pa.table({
            "query_id": ids, "query": words.queries_of(3 + start, pos),
            "positive_ids": [[f"p{start + i}"] for i in range(count)], "positives": [[p] for p in pos],
            "negative_ids": [[f"n{start + i}-{j}" for j in range(negatives)] for i in range(count)],
            "negatives": neg, "pos_scores": pa.nulls(count, pa.list_(pa.float32())),
            "neg_scores": pa.nulls(count, pa.list_(pa.float32())),
        }))
        if cand_writer is not None:
            thoughts = words.passages(5_000_000 + start, count * candidates)
            cand_writer.commit_shard(f"{number:05d}", pa.table({
                "query_id": [q for q in ids for _ in range(candidates)],
                "candidate_index": pa.array([c for _ in ids for c in range(candidates)], pa.int32()),
                "thought": [" ".join(t.split(" ")[:24]) for t in thoughts],
                "finish_reason": ["stop"] * (count * candidates),
                "prompt_tokens": pa.array([0] * (count * candidates), pa.int32()),
                "completion_tokens": pa.array([24] * (count * candidates), pa.int32()),
                "model": ["synthetic"] * (count * candidates),
                "prompt_fingerprint": [""] * (count * candidates),
            }))
    row_writer.finalize()
    if cand_writer is not None:
        cand_writer.finalize()
    return rows_url, cands_url


def tiny_encoder(folder: str) -> str:
    """A one-layer BERT with hidden size 32, randomly initialised, with MiniLM's tokenizer."""
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from o1e.models import resolve_model_dir

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------------
# running the stages


def run_stage(argv: list[str], output: str, log: str) -> dict:
    """One ``o1e`` command as its own process; its wall time and its summary's throughput."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "o1e.pipeline.cli", *argv], stdout=out, stderr=subprocess.STDOUT,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"{' '.join(argv[:2])} failed (exit {proc.returncode}); log {log}:\n{tail}")
    summary = storage.read_json(os.path.join(output, "summary.json"))
    return {"wall_s": wall, "peak_rss_mb": summary["throughput"]["driver_peak_rss_mb"],
            "stage_rows_per_s": summary["throughput"]["rows_per_s"]}


def bench_eval(work: str, words: Words, size: int) -> dict:
    data = beir_folder(os.path.join(work, "data", f"eval-{size}"), words, size, EVAL_QUERIES)
    model = tiny_encoder(os.path.join(work, "models", "tiny-bert"))
    out = os.path.join(work, "out", f"eval-{size}")
    return run_stage(["eval", "-d", data, "-s", "test", "-m", model, "-n", "2", "--cache-dir", "null",
                      "-o", out, "overwrite=true"], out, out + ".log")


def bench_prepare(work: str, words: Words, size: int) -> dict:
    rows, corpus = prepare_inputs(os.path.join(work, "data", "prepare"), words, size)
    out = os.path.join(work, "out", f"prepare-{size}")
    return run_stage(["synth", "prepare", "-d", rows, f"dataset.corpus={corpus}", "mining.bm25.backend=bm25s",
                      "-o", out, "overwrite=true"], out, out + ".log")


def bench_vote(work: str, words: Words, size: int) -> dict:
    rows, cands = training_rows(os.path.join(work, "data", f"vote-{size}"), words, size, negatives=3, candidates=3)
    out = os.path.join(work, "out", f"vote-{size}")
    return run_stage(["vote", "-t", rows, "-i", cands, "members=[{kind: bm25}]", "-o", out, "overwrite=true"],
                     out, out + ".log")


def bench_synth(work: str, words: Words, size: int) -> dict:
    rows, _ = training_rows(os.path.join(work, "data", f"synth-{size}"), words, size, negatives=0, candidates=0)
    out = os.path.join(work, "out", f"synth-{size}")
    # The endpoint is its own process, so that it does not share the driver's interpreter.
    stub = subprocess.Popen([sys.executable, os.path.join(REPO, "bench", "openai_stub.py"), "--port", "0",
                             "--words", "8"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = stub.stdout.readline().split()[-1]
        return run_stage(["synth", "run", "-i", rows, "--base-url", base_url, "-m", "stub", "-o", out,
                          "overwrite=true"], out, out + ".log")
    finally:
        stub.terminate()
        stub.wait()


BENCHES = {"eval": bench_eval, "prepare": bench_prepare, "vote": bench_vote, "synth": bench_synth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("full", "quick"), default="full")
    parser.add_argument("--stages", default=",".join(BENCHES))
    parser.add_argument("--work", default=None, help="data, models and outputs (default: a temporary folder)")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(BENCHES))
    if unknown:
        parser.error(f"unknown stages {unknown}: choose from {sorted(BENCHES)}")
    work = args.work or tempfile.mkdtemp(prefix="o1e-scale-")
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    divide = 10 if args.scale == "quick" else 1

    from o1e.ray_utils import RayConfig, init_ray

    ray = init_ray(RayConfig())
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    words = Words()
    report = os.path.join(work, "scale_bench.json")
    results: dict[str, list[dict]] = {}
    if os.path.isfile(report):  # stages benchmarked earlier in this work folder stay in the table
        with open(report) as f:
            earlier = json.load(f)
        if earlier["scale"] == args.scale:
            results = {stage: runs for stage, runs in earlier["results"].items() if stage not in stages}
    for stage in stages:
        results[stage] = []
        for size in (s // divide for s in SIZES[stage]):
            console.print(f"[bold]{stage}[/bold] {size:,} {UNITS[stage]} ...")
            figures = BENCHES[stage](work, words, size)
            figures.update(rows=size, ms_per_row=1000 * figures["wall_s"] / size)
            results[stage].append(figures)
            console.print(f"  {figures['wall_s']:.1f} s, {figures['ms_per_row']:.3f} ms per row, "
                          f"driver peak RSS {figures['peak_rss_mb']:.0f} MiB")

    table = Table(title=f"o1e at three sizes ({os.cpu_count()} CPUs; whole processes)")
    for column in ("stage", "rows", "wall s", "ms / row", "driver peak RSS MiB", "RSS vs previous size"):
        table.add_column(column, justify="right")
    ratios = {}
    for stage, runs in results.items():
        for i, r in enumerate(runs):
            previous = f"{r['peak_rss_mb'] / runs[i - 1]['peak_rss_mb']:.2f}x" if i else ""
            table.add_row(stage, f"{r['rows']:,} {UNITS[stage]}", f"{r['wall_s']:.1f}", f"{r['ms_per_row']:.3f}",
                          f"{r['peak_rss_mb']:.0f}", previous)
        if len(runs) >= 2:
            ratios[stage] = {"rss": runs[-1]["peak_rss_mb"] / runs[-2]["peak_rss_mb"],
                             "time_per_row": runs[-1]["ms_per_row"] / runs[-2]["ms_per_row"]}
    console.print(table)
    for stage, r in ratios.items():
        console.print(f"{stage}: largest size's driver peak RSS / next size's = {r['rss']:.2f} (target <= 1.5); "
                      f"time per row, largest / middle = {r['time_per_row']:.2f} (target <= 1.3)")
    with open(report, "w") as f:
        json.dump({"scale": args.scale, "cpus": os.cpu_count(), "results": results, "ratios": ratios}, f, indent=1)
    console.print(f"results: {report}")
    if args.work is None:
        shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
    if ratios:
        print(f"ratio={max(r['rss'] for r in ratios.values()):.3f}")


if __name__ == "__main__":
    main()
