"""Tiny randomly initialised causal LMs for tests and benchmarks (no pretrained LLM exists offline).

Outputs of these models are noise until trained; anything they "write" says nothing about the method.
The tokenizer is MiniLM's WordPiece (vocab 30,522) with ``[SEP]`` as eos, copied beside the weights.
"""

from __future__ import annotations

import os
import shutil

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def make_random_lm(path: str, arch: str = "llama", hidden: int = 64, layers: int = 2, heads: int = 4,
                   intermediate: int | None = None, seed: int = 0, tokenizer_dir: str | None = None) -> str:
    """Write a random ``arch`` (llama or qwen2) causal LM plus tokenizer to ``path``; returns ``path``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from o1e.encoders import resolve_model_dir

    tokenizer_dir = tokenizer_dir or resolve_model_dir("all-MiniLM-L6-v2")
    os.makedirs(path, exist_ok=True)
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(tokenizer_dir, name)):
            shutil.copy(os.path.join(tokenizer_dir, name), path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.eos_token = tokenizer.eos_token or tokenizer.sep_token
    tokenizer.save_pretrained(path)
    kwargs = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, intermediate_size=intermediate or hidden * 2, max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kwargs))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**kwargs))
    else:
        raise ValueError(f"unknown arch {arch!r}: llama or qwen2")
    model.save_pretrained(path)
    return path


def scifact_training_table(num_queries: int = 16, negatives: int = 7, seed: int = 0, doc_chars: int = 300):
    """A small ``training`` table from the bundled SciFact slice: real queries and gold passages, a short
    made-up thought (the gold passage's title, standing in for a committee-chosen thought) and random
    passages as negatives."""
    import random

    import pyarrow as pa

    from o1e import beir
    from o1e.paths import DEMO_DATA

    data = beir.load(DEMO_DATA, "train")
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    titles = dict(zip(data.corpus.ids, data.corpus.titles))
    rng = random.Random(seed)
    rows = []
    for query_id, judged in list(data.qrels.items())[:num_queries]:
        gold = [d for d, s in judged.items() if s > 0]
        others = [d for d in data.corpus.ids if d not in judged]
        rows.append({
            "query_id": query_id, "query": data.queries[query_id],
            "thought": f"The answer concerns {titles[gold[0]].lower()}",
            "positives": [passages[d][:doc_chars] for d in gold],
            "negatives": [passages[d][:doc_chars] for d in rng.sample(others, negatives)],
            "teacher_scores": None,
        })
    return pa.Table.from_pylist(rows)
