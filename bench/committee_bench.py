"""Candidates scored per second through ``o1e vote`` against the bare cost of the same work.

Bare: the same encoder's ``encode`` over the same texts (each distinct gold document once, every
candidate thought once) plus rank-bm25 scoring of every group, in one process, models already loaded.
o1e: the whole ``o1e vote`` command on a running local Ray cluster (members as actor pools, model
loading in the actors, planning, voting, committing shards, diagnostics). Both in the same run
(interleaved repeats, the best of each), on the oracle inputs built from a BEIR split (default:
SciFact train, 809 queries x 3 candidates).

    .venv/bin/python bench/committee_bench.py [--beir DIR] [--split train] [--limit N] [--repeat 2]

Last line: ``ratio=<o1e/bare>`` (o1e's candidates per second over bare's; target >= 0.85 here).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", default=os.path.join(REPO, "..", "shared", "data", "beir", "scifact"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=256, help="MiniLM's own limit is 256 word pieces")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs of each side; the best counts")
    args = parser.parse_args()

    import torch

    from committee.config import BM25Member, DenseMember
    from committee.oracle import write_oracle_inputs
    from committee.plan import build_groups
    from o1e import storage
    from o1e.bm25 import BM25Index
    from o1e.cli import main as o1e_main
    from o1e.encoders import encode, load_encoder, resolve_model_dir
    from o1e.ray_utils import RayConfig, init_ray

    work = tempfile.mkdtemp(prefix="committee-bench-")
    write_oracle_inputs(args.beir, work, args.split, limit=args.limit)
    training_rows, candidates = os.path.join(work, "training_rows"), os.path.join(work, "candidates")
    groups, _ = build_groups(storage.read_table(training_rows), storage.read_table(candidates))
    golds = list(dict.fromkeys(g.gold for g in groups))
    thoughts = [t for g in groups for t in g.thoughts]
    num_candidates = len(thoughts)
    print(f"{len(groups)} queries, {len(golds)} distinct gold documents, {num_candidates} candidates; "
          f"{args.cpus} CPUs")

    torch.set_num_threads(args.cpus)
    dense = DenseMember(model="all-MiniLM-L6-v2", max_length=args.max_length)
    model = load_encoder(dense, resolve_model_dir(dense.model))
    bm25 = BM25Member()

    def bare() -> float:
        """The same encoder over the same texts plus BM25; the model is loaded before the clock starts."""
        started = time.perf_counter()
        encode(model, golds, dense)
        encode(model, thoughts, dense)
        for group in groups:
            BM25Index(group.thoughts, bm25).scores(group.gold)
        return time.perf_counter() - started

    # o1e joins a Ray cluster that is already running (clusters outlive jobs; its start is not counted).
    init_ray(RayConfig(num_cpus=args.cpus))
    members = (f"members=[{{kind: bm25, placement: {{num_cpus: 0}}}}, {{kind: dense, model: all-MiniLM-L6-v2, "
               f"max_length: {args.max_length}, placement: {{num_cpus: {args.cpus}}}}}]")

    def o1e(run: int) -> float:
        started = time.perf_counter()
        code = o1e_main(["vote", "-t", training_rows, "-i", candidates, "-o", os.path.join(work, f"out{run}"),
                         members, "progress=false"])
        if code != 0:
            raise SystemExit(f"o1e vote failed with exit code {code}")
        return time.perf_counter() - started

    # Interleaved repeats, best of each: other load on a shared machine hits both sides alike.
    bare_times, o1e_times = [], []
    for run in range(args.repeat):
        bare_times.append(bare())
        o1e_times.append(o1e(run))
        print(f"run {run}: bare {bare_times[-1]:.1f} s, o1e vote {o1e_times[-1]:.1f} s")
    bare_s, o1e_s = min(bare_times), min(o1e_times)

    bare_rate, o1e_rate = num_candidates / bare_s, num_candidates / o1e_s
    print(f"bare: {bare_s:.1f} s, {bare_rate:.1f} candidates/s")
    print(f"o1e vote: {o1e_s:.1f} s, {o1e_rate:.1f} candidates/s")
    print(f"ratio={o1e_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
