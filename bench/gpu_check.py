"""A short device check of the training and inference paths at the paper's shapes, without Ray, vLLM,
faiss or DeepSpeed: what a bare GPU machine can run in a few minutes.

    python bench/gpu_check.py [--device cuda] [--steps 4] [--json PATH]
    python bench/gpu_check.py --device cpu --small        # the same code at toy sizes (the test suite runs it)

- The model: Qwen2.5-0.5B's shape (24 layers, hidden 896, 14 heads / 2 KV heads, vocab 151,936, tied
  embeddings) with random weights built from its config, and a made-up word-level tokenizer (so nothing is
  downloaded); made an O1 model (``o1e.o1model.O1Model``) and prepared for training by the Ray Train
  worker's own ``prepare_for_training`` (gradient checkpointing, LoRA r 32 on all projections).
- Training: ``train.step.step_losses``, the function the Ray Train worker calls, on batches that
  ``train.data.collate`` builds from made-up rows at the paper's shapes (PAPER.md §3: 8 queries per device,
  query side 256 tokens, 16 passages x 192 tokens), then backward and AdamW. bf16 weights (DeepSpeed's bf16
  mode also keeps an fp32 master copy of the trainable LoRA weights, a few MB here). Prints step time,
  tokens/s, peak memory and the losses, which must be finite; then the same with the two-pass alternative
  (generation and query embedding from separate forwards) for the single pass's saving.
- Inference: document encoding (``O1Model.embed_documents``, 192 tokens) and thought generation with
  transformers ``generate`` (``O1Model.generate_thoughts``: 16 queries, n = 3, 128 new tokens, temperature
  0.1, top-p 0.9), the reference implementation's way of writing thoughts.

One line per figure; ``--json`` also writes them for a program. Random weights: the figures measure speed
and memory, not quality. On a bare machine the project's configs need pydantic (and its small
dependencies), carried as wheels; torch, transformers and peft are there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from o1e.o1model import O1Model  # noqa: E402
from o1e.sequences import SequenceConfig  # noqa: E402
from o1e.train.config import TrainConfig  # noqa: E402
from o1e.train.data import collate  # noqa: E402
from o1e.train.step import step_losses  # noqa: E402
from o1e.train.worker import prepare_for_training  # noqa: E402


@dataclass(frozen=True)
class Shapes:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    """The model's embedding rows (Qwen2.5 pads its 151,665-token vocabulary to 151,936)."""
    words: int
    """The made-up tokenizer's words (its vocabulary, specials and the O1 tokens fit in ``vocab``)."""
    queries: int
    """Queries per device per step."""
    group_size: int
    query_tokens: int
    max_length: int
    doc_tokens: int
    lora_r: int
    documents: int
    """Documents encoded for the encoding figure."""
    thought_queries: int
    thought_tokens: int


PAPER = Shapes(layers=24, hidden=896, intermediate=4864, heads=14, kv_heads=2, vocab=151_936, words=151_600,
               queries=8, group_size=16, query_tokens=32, max_length=256, doc_tokens=192, lora_r=32,
               documents=2048, thought_queries=16, thought_tokens=128)
SMALL = Shapes(layers=2, hidden=64, intermediate=128, heads=4, kv_heads=2, vocab=1024, words=900,
               queries=2, group_size=4, query_tokens=8, max_length=32, doc_tokens=24, lora_r=4,
               documents=16, thought_queries=2, thought_tokens=8)


def word_tokenizer(words: int):
    """A word-level tokenizer over ``w0 … w{words-1}`` with bos, eos and unk: real token ids without a
    download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + [f"w{i}" for i in range(words - len(specials))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def build(shapes: Shapes, device: str, dtype: torch.dtype) -> tuple[O1Model, TrainConfig]:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=shapes.vocab, hidden_size=shapes.hidden, intermediate_size=shapes.intermediate,
                         num_hidden_layers=shapes.layers, num_attention_heads=shapes.heads,
                         num_key_value_heads=shapes.kv_heads, max_position_embeddings=32_768, rope_theta=1e6,
                         rms_norm_eps=1e-6, tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device(device):
        lm = Qwen2ForCausalLM(config).to(dtype)
    cfg = TrainConfig(sequence=SequenceConfig(query_max_tokens=shapes.query_tokens, max_length=shapes.max_length,
                                              doc_max_tokens=shapes.doc_tokens, thought_dropout=0.0),
                      loss={"group_size": shapes.group_size}, lora={"r": shapes.lora_r, "alpha": 2 * shapes.lora_r},
                      optim={"batch_size_per_worker": shapes.queries})
    model = prepare_for_training(O1Model(lm, word_tokenizer(shapes.words), cfg.sequence), cfg)
    return model.to(device=device, dtype=dtype), cfg


def words(rng: random.Random, count: int, vocab_words: int) -> str:
    return " ".join(f"w{rng.randrange(vocab_words - 3)}" for _ in range(count))


def training_rows(shapes: Shapes, rng: random.Random) -> list[dict]:
    """Made-up rows long enough to fill every length: the query and passages are cut to their limits and
    the thought fills the query side."""
    w = shapes.words
    return [{"query_id": f"q{i}", "query": words(rng, shapes.query_tokens + 8, w),
             "thought": words(rng, shapes.max_length, w), "positives": [words(rng, shapes.doc_tokens + 8, w)],
             "negatives": [words(rng, shapes.doc_tokens + 8, w) for _ in range(shapes.group_size - 1)]}
            for i in range(shapes.queries)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def train_figures(model: O1Model, cfg: TrainConfig, shapes: Shapes, device: str, steps: int,
                  two_pass: bool) -> dict:
    """``steps`` optimiser steps after one warm-up step; the losses of every step must be finite."""
    rng = random.Random(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds, tokens, losses = 0.0, 0, []
    for step in range(steps + 1):
        batch = collate(training_rows(shapes, rng), model.tokenizer, cfg.sequence, shapes.group_size, rng)
        sync(device)
        started = time.perf_counter()
        out = step_losses(model, batch, cfg.loss, device, two_pass=two_pass)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        values = {"loss": out.loss.item(), "contrastive": out.contrastive.item(), "generation": out.generation.item()}
        if not all(math.isfinite(v) for v in values.values()):
            raise SystemExit(f"gpu_check: step {step} ({'two' if two_pass else 'single'} pass) gave {values}")
        losses.append(values)
        if step:  # the first step pays for kernel selection and allocator growth
            seconds += time.perf_counter() - started
            tokens += batch.num_tokens
    return {"step_s": seconds / steps, "tokens_per_s": tokens / seconds, "peak_gib": peak_gib(device),
            "query_tokens": int(batch.query["input_ids"].numel()), "doc_tokens": int(batch.docs["input_ids"].numel()),
            "losses": losses}


@torch.no_grad()
def encode_figures(model: O1Model, shapes: Shapes, device: str) -> dict:
    model.eval()
    rng = random.Random(1)
    docs = [words(rng, shapes.doc_tokens + 8, shapes.words) for _ in range(shapes.documents)]
    model.embed_documents(docs[:64], batch_size=64)
    sync(device)
    started = time.perf_counter()
    vectors = model.embed_documents(docs, batch_size=64)
    sync(device)
    seconds = time.perf_counter() - started
    if not torch.isfinite(vectors).all():
        raise SystemExit("gpu_check: document embeddings are not finite")
    return {"docs_per_s": len(docs) / seconds, "tokens_per_s": len(docs) * (shapes.doc_tokens + 2) / seconds}


@torch.no_grad()
def generate_figures(model: O1Model, shapes: Shapes, device: str) -> dict:
    """Thoughts as the reference writes them; tokens counted back from the text (one word, one token)."""
    model.eval()
    model.lm.config.use_cache = True
    rng = random.Random(2)
    queries = [words(rng, shapes.query_tokens, shapes.words) for _ in range(shapes.thought_queries)]
    sync(device)
    started = time.perf_counter()
    thoughts = model.generate_thoughts(queries, n=3, max_new_tokens=shapes.thought_tokens, batch_size=16, seed=0)
    sync(device)
    seconds = time.perf_counter() - started
    tokens = sum(len(t.split()) + 1 for per_query in thoughts for t in per_query)  # + eos or the cut
    return {"tokens_per_s": tokens / seconds, "seconds": seconds, "thoughts": 3 * len(queries)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="toy sizes (CPU, the test suite)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 4, --small 2)")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default=None,
                        help="default: bfloat16 on a GPU (the paper), float32 on a CPU")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    shapes = SMALL if args.small else PAPER
    steps = args.steps or (2 if args.small else 4)
    dtype_name = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; use --device cpu --small")
    import peft
    import transformers

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}; torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    started = time.perf_counter()
    model, cfg = build(shapes, args.device, getattr(torch, dtype_name))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model: Qwen2.5-0.5B shape{' (small)' if args.small else ''}, {shapes.layers} layers, hidden "
          f"{shapes.hidden}, {total / 1e6:.1f}M parameters, LoRA r {shapes.lora_r}: {trainable / 1e6:.2f}M "
          f"trainable, {dtype_name}, gradient checkpointing; built in {time.perf_counter() - started:.1f} s")
    figures: dict = {"device": name, "dtype": dtype_name, "shapes": shapes.__dict__, "steps": steps}
    for label, two_pass in (("single_pass", False), ("two_pass", True)):
        f = train_figures(model, cfg, shapes, args.device, steps, two_pass)
        figures[label] = f
        first, last = f["losses"][0], f["losses"][-1]
        peak = "n/a" if f["peak_gib"] is None else f"{f['peak_gib']:.1f} GiB"
        print(f"train {label.replace('_', ' ')}: {shapes.queries} queries x {shapes.max_length} + "
              f"{shapes.queries * shapes.group_size} passages x {shapes.doc_tokens + 2} tokens: step "
              f"{f['step_s']:.3f} s, {f['tokens_per_s']:,.0f} tokens/s, peak {peak}; losses finite, contrastive "
              f"{first['contrastive']:.3f} -> {last['contrastive']:.3f}, generation {first['generation']:.3f} -> "
              f"{last['generation']:.3f}")
    single, double = figures["single_pass"], figures["two_pass"]
    memory = "" if single["peak_gib"] is None else f", peak memory x{single['peak_gib'] / double['peak_gib']:.2f}"
    print(f"single pass against two passes: step time x{single['step_s'] / double['step_s']:.2f}{memory}")
    figures["encode"] = encode_figures(model, shapes, args.device)
    print(f"document encoding: {shapes.documents} documents x {shapes.doc_tokens + 2} tokens, batch 64: "
          f"{figures['encode']['docs_per_s']:,.0f} documents/s ({figures['encode']['tokens_per_s']:,.0f} tokens/s)")
    figures["generate"] = generate_figures(model, shapes, args.device)
    print(f"thought generation (transformers generate, {shapes.thought_queries} queries x 3, up to "
          f"{shapes.thought_tokens} tokens): {figures['generate']['tokens_per_s']:,.0f} tokens/s in "
          f"{figures['generate']['seconds']:.1f} s")
    print(f"gpu_check: done in {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return figures


if __name__ == "__main__":
    main()
