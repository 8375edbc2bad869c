"""Speed and driver memory of ``o1e synth run`` itself at scale: the HTTP engine (``engine.kind=openai``)
against ``bench/openai_stub.py`` (a deterministic endpoint answering in microseconds, in its own process),
so that what is measured is synth's own work: reading shards, drawing prompts, sending requests,
committing candidates.

    python bench/synth_http_bench.py --queries 10000 [--passage-chars 300] [--work DIR] [key=value ...]

Prints one line: queries, candidates, elapsed, queries/s and the driver's peak RSS (summary.json
``throughput``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def write_training_rows(url: str, queries: int, passage_chars: int) -> None:
    import pyarrow as pa

    from o1e import storage

    words = "protein cell river energy history answer cause effect gene water light heat".split()
    rows = {"query_id": [], "query": [], "positive_ids": [], "positives": [], "negative_ids": [], "negatives": []}
    for n in range(queries):
        rows["query_id"].append(f"q{n}")
        rows["query"].append(f"what is the {words[n % 12]} of {words[(n // 12) % 12]} number {n}")
        rows["positive_ids"].append([f"d{n}"])
        rows["positives"].append([(f"passage {n} " + " ".join(words) + " ") * (passage_chars // 80 + 1)][:1])
        rows["negative_ids"].append([])
        rows["negatives"].append([])
    rows["positives"] = [[p[0][:passage_chars]] for p in rows["positives"]]
    storage.write_table(url, pa.Table.from_pydict(rows), "training_rows", overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--passage-chars", type=int, default=300)
    parser.add_argument("--work", default=None)
    parser.add_argument("overrides", nargs="*", help="extra synth run settings, e.g. engine.concurrency=128")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="o1e-synth-http-bench-")
    rows = os.path.join(work, f"rows-{args.queries}")
    if not os.path.exists(os.path.join(rows, "_manifest.json")):
        write_training_rows(rows, args.queries, args.passage_chars)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stub = subprocess.Popen([sys.executable, os.path.join(REPO, "bench", "openai_stub.py"), "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        base_url = stub.stdout.readline().split()[-1]
        out = os.path.join(work, f"out-{args.queries}")
        subprocess.run([sys.executable, "-m", "o1e.pipeline.cli", "synth", "run", "-i", rows, "-e", "openai", "-m", "stub",
                        "--base-url", base_url, "-o", out, "overwrite=true", "progress=false", *args.overrides],
                       check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL)
    finally:
        stub.terminate()
        stub.wait()
    summary = json.load(open(os.path.join(out, "summary.json")))
    t = summary["throughput"]
    candidates = summary.get("candidates_written", summary.get("candidates"))
    print(f"queries={t['rows']} candidates={candidates} elapsed_s={t['elapsed_s']} queries_per_s={t['rows_per_s']} "
          f"driver_peak_rss_mb={t['driver_peak_rss_mb']}", flush=True)


if __name__ == "__main__":
    main()
