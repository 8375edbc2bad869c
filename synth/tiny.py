"""A tiny randomly initialised chat model, for the unit tests of the synth stage's machinery.

A 2-layer Llama with hidden size 128, MiniLM's WordPiece tokenizer (vocab 30,522, ``[SEP]`` as end of
sequence) and a minimal chat template, which starts in seconds. Whatever it "writes" is random word pieces:
it exercises the engine, never the method's quality, which the packaged SmolLM2-135M-Instruct shows
(``o1e.models``; ``o1e demo``).
"""

from __future__ import annotations

import os

from o1e.tiny import make_random_lm

# Role markers in plain words (the WordPiece vocabulary has no special chat tokens).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def make_tiny_chat_model(path: str, *, hidden: int = 128, layers: int = 2, heads: int = 4,
                         max_positions: int = 4096, seed: int = 0) -> str:
    """Write a random float32 Llama causal LM with tokenizer and chat template to ``path``; returns ``path``
    (float32: bfloat16 runs about 75x slower on CPUs without AVX-512/AMX)."""
    import json

    from transformers import AutoTokenizer, GenerationConfig

    make_random_lm(path, "llama", hidden=hidden, layers=layers, heads=heads, seed=seed,
                   max_positions=max_positions)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
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
