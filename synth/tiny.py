"""A tiny randomly initialised chat model, for tests, the benchmark and offline demos of the synth stage.

No pretrained generative LLM is available offline, so LLM code paths run on this model: a 2-layer Llama
with hidden size 128, MiniLM's WordPiece tokenizer (vocab 30,522, ``[SEP]`` as end of sequence) and a
minimal chat template. Whatever it "writes" is random word pieces: it exercises the engine, never the
method's quality. Real experts load through the same code from their own directories.
"""

from __future__ import annotations

import os
import shutil

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

# Role markers in plain words (the WordPiece vocabulary has no special chat tokens).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def make_tiny_chat_model(path: str, *, hidden: int = 128, layers: int = 2, heads: int = 4,
                         max_positions: int = 4096, seed: int = 0) -> str:
    """Write a random Llama causal LM with tokenizer and chat template to ``path``; returns ``path``."""
    import json

    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from o1e.encoders import resolve_model_dir

    tokenizer_dir = resolve_model_dir("all-MiniLM-L6-v2")
    os.makedirs(path, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(tokenizer_dir, name), path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.model_max_length = max_positions
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False, torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    # No sampling defaults: the engine's own (temperature 1, top-p 1) apply, as with the paper's server.
    GenerationConfig(eos_token_id=tokenizer.eos_token_id).save_pretrained(path)
    # Saved tokenizers of this kind may not carry the chat template in tokenizer_config.json everywhere;
    # make sure every loader (transformers, vLLM) finds it.
    cfg_path = os.path.join(path, "tokenizer_config.json")
    with open(cfg_path) as f:
        tok_cfg = json.load(f)
    tok_cfg["chat_template"] = CHAT_TEMPLATE
    with open(cfg_path, "w") as f:
        json.dump(tok_cfg, f, indent=2)
    return path
