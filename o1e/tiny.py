"""Tiny randomly initialised causal LMs for the unit tests of the machinery, and benchmarks that ask for one
(the real pretrained model is the packaged SmolLM2-135M-Instruct: ``o1e.models``).

Outputs of these models are noise until trained; anything they "write" says nothing about the method.
The tokenizer is MiniLM's WordPiece (vocab 30,522) with ``[SEP]`` as eos, copied beside the weights.
Real models load through the same code from their own directories.
"""

from __future__ import annotations

import os
import shutil

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def make_random_lm(path: str, arch: str = "llama", hidden: int = 64, layers: int = 2, heads: int = 4,
                   intermediate: int | None = None, seed: int = 0, tokenizer_dir: str | None = None,
                   max_positions: int = 512, dtype: str = "float32") -> str:
    """Write a random ``arch`` (llama or qwen2) causal LM plus tokenizer to ``path``; returns ``path``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from o1e.models import resolve_model_dir

    tokenizer_dir = tokenizer_dir or resolve_model_dir("all-MiniLM-L6-v2")
    os.makedirs(path, exist_ok=True)
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(tokenizer_dir, name)):
            shutil.copy(os.path.join(tokenizer_dir, name), path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.eos_token = tokenizer.eos_token or tokenizer.sep_token
    tokenizer.model_max_length = max_positions
    tokenizer.save_pretrained(path)
    kwargs = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, intermediate_size=intermediate or hidden * 2,
        max_position_embeddings=max_positions, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kwargs))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**kwargs))
    else:
        raise ValueError(f"unknown arch {arch!r}: llama or qwen2")
    model.to(getattr(torch, dtype)).save_pretrained(path)
    return path
