"""Eval-time thought generation: generated tokens/s of ``o1e eval -r o1``'s thought stage against the
reference implementation's way of writing thoughts, on the same model and the same queries, in the same run.

    python bench/thoughts_bench.py [--model SmolLM2-135M-Instruct | --random [--hidden 256] [--layers 4]]
                                   [--queries 32] [--compiled] [--set thoughts.engine.engine_kwargs={...}]
                                   [--json PATH]

- The model: the packaged SmolLM2-135M-Instruct (``o1e.models``) turned into an O1 model folder by
  ``O1Model`` (its four O1 tokens added, untrained), or with ``--random`` a tiny randomly initialised Llama
  (its thoughts are noise). Either way the figures measure generation throughput, not thought quality.
- o1e: ``eval.thoughts.generate`` exactly as ``o1e eval -r o1`` runs it: ``thoughts.engine.kind=vllm``, one
  vLLM replica (a Ray actor owning all the machine's CPUs) on a local Ray cluster with o1e's CPU settings
  (float32, eager, ``o1e.llm.ray_engine.CPU_VLLM_ENV``), n = 3 per query, default sampling (PAPER.md §4:
  128 new tokens, temperature 0.1, top-p 0.9, per-request seeds), every shard committed to Parquet.
  tokens/s = ``generated_tokens / generation_s`` (engine start excluded, shown on its own).
- reference: the official implementation's way: transformers ``model.generate`` in this process, 16 queries a
  batch, ``num_return_sequences=3``, ``do_sample`` with temperature 0.1 / top-p 0.9, ``max_new_tokens=128``,
  left-padded prompts from ``o1e.sequences.encode_prompts``, float32, torch threads = the machine's CPUs.
  tokens/s = generated tokens / wall time of the ``generate`` calls (model load excluded). Like the official
  code (and ``O1Model.generate_thoughts``) it leaves ``top_k`` unset, so transformers adds its default top-k 50
  before top-p; ``--reference-top-k 0`` samples with top-p alone, exactly what o1e's vLLM requests do.
Both sides count a thought's tokens the same way: new tokens up to and including eos.

Target (the issue's): ratio >= 5 on this 2-core CPU machine, >= 10 on a GPU; printed, not enforced.
The last line is ``ratio=<o1e tokens/s / reference tokens/s>``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

# vLLM on this CPU machine, and temp files in a folder this run owns (removed at the end); set before
# ray, vllm or torch are imported.
WORK = tempfile.mkdtemp(prefix="o1e-thoughts-bench-")
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
for _name, _value in {"VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                      "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
    os.environ.setdefault(_name, _value)
os.environ["TMPDIR"] = WORK
tempfile.tempdir = None  # recomputed from TMPDIR
os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(WORK, "vllm-cache"))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from o1e.paths import DEMO_DATA  # noqa: E402

TARGET_CPU, TARGET_GPU = 5.0, 10.0
REFERENCE_BATCH = 16  # queries per generate call in the reference implementation


def make_model(args) -> tuple[str, dict]:
    """The O1 model folder (the packaged model or a random one, O1 tokens added); returns (path, its shape)."""
    from o1e.o1model import O1Model
    from o1e.tiny import make_random_lm

    if args.random:
        heads = args.heads or max(1, args.hidden // 64)
        base = make_random_lm(os.path.join(WORK, "base"), hidden=args.hidden, layers=args.layers, heads=heads,
                              max_positions=args.max_positions)
    else:
        base = args.model
    o1_dir = os.path.join(WORK, "o1-model")
    model = O1Model.from_pretrained(base)
    model.save_pretrained(o1_dir)
    config = model.lm.config
    params = sum(p.numel() for p in model.lm.parameters())
    del model
    return o1_dir, {"name": "random Llama" if args.random else args.model, "hidden": config.hidden_size,
                    "layers": config.num_hidden_layers, "heads": config.num_attention_heads, "parameters": params,
                    "random": args.random}


def reference(o1_dir: str, queries: list[str], args, cpus: int) -> dict:
    """transformers ``generate`` in this process, as the reference implementation writes thoughts."""
    import torch

    from o1e.o1model import O1Model
    from o1e.sequences import encode_prompts

    torch.set_num_threads(cpus)
    started = time.perf_counter()
    model = O1Model.from_pretrained(o1_dir)
    model.lm.eval()
    load_s = time.perf_counter() - started
    eos, pad = model.ids.eos, model.ids.pad
    top_k = {} if args.reference_top_k is None else {"top_k": args.reference_top_k}
    torch.manual_seed(0)
    tokens = thoughts = stopped = 0
    seconds = 0.0
    for start in range(0, len(queries), args.batch_size):
        enc = encode_prompts(model.tokenizer, queries[start:start + args.batch_size], model.seq)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.lm.generate(**enc, do_sample=True, temperature=args.temperature, top_p=args.top_p,
                                    max_new_tokens=args.max_tokens, num_return_sequences=args.n,
                                    eos_token_id=eos, pad_token_id=pad, **top_k)
        seconds += time.perf_counter() - t0
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            thoughts += 1
            if eos in row:
                stopped += 1
                tokens += row.index(eos) + 1
            else:
                tokens += len(row)
    del model
    return {"thoughts": thoughts, "tokens": tokens, "seconds": seconds, "start_s": load_s,
            "stopped_at_eos": stopped, "dtype": "float32", "batch": f"{args.batch_size} queries x {args.n}",
            "top_k": "unset (transformers' default, 50)" if args.reference_top_k is None else args.reference_top_k}


def o1e_side(o1_dir: str, data, args, cpus: int) -> dict:
    """``eval.thoughts.generate`` as ``o1e eval -r o1`` runs it (vLLM replica on the local Ray cluster)."""
    import pyarrow.compute as pc

    from o1e.eval.config import EvalConfig
    from o1e.eval.thoughts import generate
    from o1e import storage
    from o1e.config import load_config

    # thoughts.engine.max_model_len=null: ThoughtsConfig's default engine leaves the context to the model,
    # but an override under thoughts.engine builds the engine section anew from VllmEngineConfig's
    # defaults (8192), which a model of 512 positions refuses.
    cfg = load_config(EvalConfig, None, [
        f"dataset.path={args.dataset}", f"dataset.split={args.split}", "retriever.kind=o1",
        f"retriever.model={o1_dir}", "thoughts.engine.kind=vllm", "thoughts.engine.replicas=1",
        "thoughts.engine.max_model_len=null",
        f"thoughts.engine.num_cpus_per_replica={cpus}",
        *(["thoughts.engine.enforce_eager=false"] if args.compiled else []),
        f"thoughts.n={args.n}", f"thoughts.sampling.max_tokens={args.max_tokens}",
        f"thoughts.sampling.temperature={args.temperature}", f"thoughts.sampling.top_p={args.top_p}",
        f"ray.num_cpus={cpus}", "cache_dir=null", f"output={os.path.join(WORK, 'eval')}", *args.set,
    ])
    result = generate(cfg, data, o1_dir, show=False)
    stats = result.stats
    if "generation_s" not in stats:
        raise SystemExit(f"the thought stage generated nothing (stats {dict(stats)})")
    failed = {k: v for k, v in stats.items() if k.startswith("failed_")}
    if failed:
        raise SystemExit(f"the thought stage failed requests: {failed}")
    table = storage.read_table(result.url, columns=["finish_reason"])
    stopped = int(pc.sum(pc.equal(table.column("finish_reason"), "stop")).as_py() or 0)
    engine = cfg.thoughts.engine
    return {"thoughts": sum(len(t) for t in result.by_query.values()), "tokens": int(stats["generated_tokens"]),
            "seconds": float(stats["generation_s"]), "start_s": float(stats["engine_start_s"]),
            "stopped_at_eos": stopped, "dtype": "float32 (the CPU default)" if engine.dtype == "auto" else engine.dtype,
            "enforce_eager": engine.enforce_eager is not False,
            "engine_kwargs": engine.engine_kwargs, "shards": int(stats["shards_generated"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DEMO_DATA, help="BEIR folder (default: the bundled SciFact slice)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--queries", type=int, default=32, help="use the first N queries (sorted ids; 0: all)")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct", help="a causal LM folder or packaged name")
    parser.add_argument("--random", action="store_true", help="a tiny random Llama instead (the options below)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=None, help="default: hidden / 64")
    parser.add_argument("--max-positions", type=int, default=512)
    parser.add_argument("-n", type=int, default=3, help="thoughts per query (PAPER.md §4: 3)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=REFERENCE_BATCH, help="reference: queries per generate")
    parser.add_argument("--reference-top-k", type=int, default=None,
                        help="reference: pass top_k to generate (default: unset, i.e. transformers' top-k 50, as "
                             "the official code; 0: top-p alone, as o1e samples)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs of the Ray cluster and the vLLM replica; torch threads of the reference")
    parser.add_argument("--compiled", action="store_true",
                        help="thoughts.engine.enforce_eager=false (o1e's CPU default is eager)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any further EvalConfig override for the o1e side, e.g. "
                             "'thoughts.engine.engine_kwargs={max_num_seqs: 128}' (repeatable)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    console = Console()
    vllm_env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("VLLM_") and k != "VLLM_CACHE_ROOT"}

    from o1e import beir
    from o1e.ray_utils import RayConfig, init_ray

    data = beir.load(args.dataset, args.split)
    ids = sorted(data.queries)[:args.queries] if args.queries else sorted(data.queries)
    data = dataclasses.replace(data, queries={q: data.queries[q] for q in ids})
    queries = [data.queries[q] for q in ids]
    load_before = os.getloadavg()
    try:
        o1_dir, shape = make_model(args)
        what = ("[bold]RANDOM MODEL[/bold]: a randomly initialised Llama" if args.random else
                f"{args.model}, its O1 tokens added (untrained)")
        console.print(f"{what} (hidden {shape['hidden']}, {shape['layers']} layers, {shape['heads']} heads, "
                      f"{shape['parameters'] / 1e6:.1f} M parameters): this measures generation throughput only.")
        console.print(f"{len(queries)} queries of {args.dataset} ({args.split}) x n={args.n}, max {args.max_tokens} "
                      f"new tokens, temperature {args.temperature}, top-p {args.top_p}; {args.cpus} CPUs; "
                      f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

        ref = reference(o1_dir, queries, args, args.cpus)
        console.print(f"reference: {ref['tokens']:,} tokens in {ref['seconds']:.1f} s", highlight=False)
        ray_started = time.perf_counter()
        ray = init_ray(RayConfig(num_cpus=args.cpus))
        ray_s = time.perf_counter() - ray_started
        try:
            ours = o1e_side(o1_dir, data, args, args.cpus)
        finally:
            ray.shutdown()
        console.print(f"o1e: {ours['tokens']:,} tokens in {ours['seconds']:.1f} s", highlight=False)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    load_after = os.getloadavg()

    for side in (ref, ours):
        side["tokens_per_s"] = side["tokens"] / side["seconds"]
        side["tokens_per_thought"] = side["tokens"] / max(side["thoughts"], 1)
    ratio = ours["tokens_per_s"] / ref["tokens_per_s"]

    table = Table(title=f"thought generation, {shape['name']} ({shape['parameters'] / 1e6:.1f} M parameters): "
                        "throughput only")
    for column in ("side", "thoughts", "tokens", "seconds", "tokens/s", "tokens per thought", "engine start s"):
        table.add_column(column, justify="left" if column == "side" else "right")
    for name, side in (("reference", ref), ("o1e", ours)):
        table.add_row(name, f"{side['thoughts']:,}", f"{side['tokens']:,}", f"{side['seconds']:.1f}",
                      f"{side['tokens_per_s']:,.0f}", f"{side['tokens_per_thought']:.1f}", f"{side['start_s']:.1f}")
    console.print(table)
    eager = "eager" if ours["enforce_eager"] else "compiled"
    knobs = {k: v for k, v in vllm_env.items() if k != "VLLM_NO_USAGE_STATS"}
    console.print(f"reference: transformers generate in this process, {args.batch_size} queries x {args.n} a batch, "
                  f"{ref['dtype']}, {args.cpus} torch threads, top_k {ref['top_k']}; engine start = model load",
                  highlight=False)
    console.print(f"o1e: eval.thoughts.generate, vLLM on Ray, 1 replica x {args.cpus} CPUs ({eager}, dtype "
                  f"{ours['dtype']}, engine_kwargs {ours['engine_kwargs'] or '{}'}, environment "
                  f"{knobs or 'default'}), {ours['shards']} shard(s) committed to Parquet", highlight=False)
    console.print(f"ended at eos: reference {ref['stopped_at_eos']} of {ref['thoughts']}, "
                  f"o1e {ours['stopped_at_eos']} of {ours['thoughts']} thoughts; Ray cluster start (not counted) "
                  f"{ray_s:.1f} s; load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}",
                  highlight=False)
    console.print(f"target: ratio >= {TARGET_CPU:g} on this CPU, >= {TARGET_GPU:g} on a GPU; "
                  f"measured {ratio:.3f} ({'met' if ratio >= TARGET_CPU else 'not met'} for the CPU target)",
                  highlight=False)
    if args.json:
        figures = {"model": shape, "queries": len(queries), "n": args.n,
                   "max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": args.top_p,
                   "cpus": args.cpus, "load_average_before": load_before, "load_average_after": load_after,
                   "ray_start_s": ray_s, "reference": ref, "o1e": ours, "ratio": ratio,
                   "target": {"cpu": TARGET_CPU, "gpu": TARGET_GPU}, "overrides": args.set,
                   "vllm_env": vllm_env}
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2, default=str)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
