"""Joint single pass vs the naive two passes (generation pass + separate embedding pass over the same
query + thought): peak memory and step time, on the same random-initialised model and batch, at the
paper's group size 16 and at group size 2.

    .venv/bin/python bench/train_bench.py                       # CPU, tiny Llama (hidden 128, 2 layers)
    .venv/bin/python bench/train_bench.py --device cuda --hidden 896 --layers 24 --heads 14   # ~0.5B

Each (variant, group size) runs in its own process. Peak memory is measured two ways: the bytes of tensors
autograd holds for backward at the end of the forward (activation memory, what the theory is about),
and the process's peak memory above the loaded model (RSS on CPU, ``max_memory_allocated`` on CUDA).
Step time (forward + backward) alternates both variants in one process, median of ``--reps``.
Theory: the single pass holds the query-side transformer activations Q once instead of twice; the
generation head H (logits at the labelled positions) and the document side D are the same in both, so
its activation memory should be ``(Q + H + D) / (2Q + H + D)`` of the two-pass one, with Q, H and D
measured from a query-only, a query + generation-head and a document-only pass. The last line is ``ratio=<single/two-pass peak memory at group size 2>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(args) -> dict:
    import torch

    from o1e.o1model import O1Model
    from o1e.sequences import SequenceConfig
    from o1e.train import data as train_data
    from o1e.train.config import LossConfig
    from o1e.train.losses import joint_loss
    from o1e.train.tiny import scifact_training_table

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = O1Model.from_pretrained(args.model_dir).to(device)
    model.train()
    rows = scifact_training_table(num_queries=args.batch, negatives=max(15, args.group), doc_chars=2000).to_pylist()
    for r in rows:  # thoughts as long as the paper allows, so the query side is realistic
        r["thought"] = " ".join([r["thought"]] * 30)
    seq = SequenceConfig(thought_dropout=0.0)
    batch = train_data.collate(rows, model.tokenizer, seq, args.group, random.Random(0))
    q_in = {k: v.to(device) for k, v in batch.query.items()}
    d_in = {k: v.to(device) for k, v in batch.docs.items()}
    loss_cfg = LossConfig(group_size=args.group)

    held: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:  # weights are memory either way; count what the forward creates
            held[ptr] = t.untyped_storage().nbytes()
        return t

    def step(variant: str, track: bool = False) -> float:
        held.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if track else _null():
            if variant == "query_hidden":
                loss = model.hidden(q_in["input_ids"], q_in["attention_mask"])[:, -1].sum()
            elif variant == "query_only":
                gen, q = model.query_pass(q_in)
                loss = gen + q[-1].sum()
            elif variant == "docs_only":
                loss = model.doc_pass(d_in).sum()
            else:
                gen, q = model.query_pass(q_in) if variant == "single" else model.two_pass_query(q_in)
                loss = joint_loss(q, model.doc_pass(d_in), gen, args.group, loss_cfg).loss
        activation = sum(held.values())
        loss.backward()
        model.zero_grad(set_to_none=True)
        return activation

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    activation = step(args.variant, track=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times: dict[str, list[float]] = {"single": [], "two_pass": []}
    for _ in range(args.reps):  # both variants alternate in one process: equal conditions on a shared machine
        for name in times:
            started = time.perf_counter()
            step(name)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    return {"variant": args.variant, "group": args.group, "activation_bytes": activation, "peak_bytes": peak,
            "step_s": {k: statistics.median(v) for k, v in times.items() if v},
            "query_tokens": int(batch.query["attention_mask"].sum()),
            "doc_tokens": int(batch.docs["attention_mask"].sum())}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_child(args, variant: str, group: int, reps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--variant", variant, "--group", str(group),
           "--model-dir", args.model_dir, "--batch", str(args.batch), "--device", args.device,
           "--reps", str(reps), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        raise SystemExit(f"bench child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="single")
    p.add_argument("--group", type=int, default=16)
    p.add_argument("--model-dir")
    p.add_argument("--arch", default="llama")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=2, help="queries per step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return

    from rich.console import Console
    from rich.table import Table

    from o1e.tiny import make_random_lm

    with tempfile.TemporaryDirectory() as tmp:
        if not args.model_dir:
            args.model_dir = make_random_lm(os.path.join(tmp, "lm"), arch=args.arch, hidden=args.hidden,
                                            layers=args.layers, heads=args.heads)
        results = {}
        for group in (16, 2):
            for variant in ("single", "two_pass", "query_hidden", "query_only", "docs_only"):
                reps = args.reps if variant == "single" else 0
                results[variant, group] = run_child(args, variant, group, reps)

    table = Table(title=f"joint single pass vs two passes ({args.arch} hidden {args.hidden}, {args.layers} layers, "
                        f"{args.batch} queries, {args.device}; random weights)")
    for col in ("group", "variant", "activation MiB", "peak MiB", "step ms"):
        table.add_column(col, justify="right")
    summary = {}
    for group in (16, 2):
        for variant in ("single", "two_pass"):
            r = results[variant, group]
            table.add_row(str(group), variant, f"{r['activation_bytes'] / 2**20:.1f}", f"{r['peak_bytes'] / 2**20:.1f}",
                          f"{results['single', group]['step_s'][variant] * 1000:.0f}")
        s, t = results["single", group], results["two_pass", group]
        q = results["query_hidden", group]["activation_bytes"]  # one query-side activation set
        head = results["query_only", group]["activation_bytes"] - q  # generation head (computed once in both)
        d = results["docs_only", group]["activation_bytes"]
        summary[group] = {
            "activation_ratio": s["activation_bytes"] / t["activation_bytes"],
            "theory_ratio": (q + head + d) / (2 * q + head + d),
            "peak_ratio": s["peak_bytes"] / t["peak_bytes"],
            "time_ratio": s["step_s"]["single"] / s["step_s"]["two_pass"],
        }
    Console().print(table)
    for group, m in summary.items():
        print(f"group {group}: single/two-pass activation memory {m['activation_ratio']:.3f} "
              f"(theory {m['theory_ratio']:.3f}), peak memory {m['peak_ratio']:.3f}, step time {m['time_ratio']:.3f}")
    print(json.dumps({"summary": {str(k): v for k, v in summary.items()}}))
    print(f"ratio={summary[2]['peak_ratio']:.3f}")


if __name__ == "__main__":
    main()
