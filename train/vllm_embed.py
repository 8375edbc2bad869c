"""Embed O1 token sequences with vLLM (``runner="pooling"``, last-token pooling, normalised).

A saved O1 model folder is a plain causal LM; vLLM serves it for generation as is, and for embeddings
with last-token pooling, since every O1 sequence ends with ``<emb>``.

    python -m train.vllm_embed MODEL_DIR SEQUENCES.json OUT.json    # SEQUENCES.json: lists of token ids

vLLM starts its engine in a child process, so keep this under ``__main__`` (it is a script for that
reason); environment for CPU machines: ``VLLM_CPU_KVCACHE_SPACE=1 VLLM_HOST_IP=127.0.0.1``.
"""

from __future__ import annotations

import json
import sys


def embed_token_ids(model_dir: str, sequences: list[list[int]], dtype: str = "float32") -> list[list[float]]:
    from vllm import LLM
    from vllm.config import PoolerConfig
    from vllm.inputs import TokensPrompt

    llm = LLM(model=model_dir, runner="pooling", dtype=dtype, enforce_eager=True, max_model_len=512,
              pooler_config=PoolerConfig(pooling_type="LAST", use_activation=True))
    outputs = llm.embed([TokensPrompt(prompt_token_ids=s) for s in sequences], use_tqdm=False)
    return [list(map(float, o.outputs.embedding)) for o in outputs]


if __name__ == "__main__":
    model_dir, seq_file, out_file = sys.argv[1:4]
    with open(seq_file) as f:
        sequences = json.load(f)
    with open(out_file, "w") as f:
        json.dump(embed_token_ids(model_dir, sequences), f)
