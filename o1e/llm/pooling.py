"""Embed O1 token sequences with vLLM's pooling runner: last-token pooling, normalised.

A saved O1 model folder is a plain causal LM; every O1 sequence ends with ``<emb>``, so vLLM's last-token
pooling is the O1 embedding. ``LLM(...)`` starts an engine process: create a ``VllmPooler`` inside a Ray
actor or under ``if __name__ == "__main__"``, never at import time.
"""

from __future__ import annotations

import numpy as np


class VllmPooler:
    def __init__(self, model_dir: str, dtype: str = "float32", max_model_len: int = 512, **engine_kwargs) -> None:
        from o1e.llm.vllm_worker import quiet_vllm_import

        quiet_vllm_import()
        from vllm import LLM
        from vllm.config import PoolerConfig

        self.llm = LLM(model=model_dir, runner="pooling", dtype=dtype, enforce_eager=True,
                       max_model_len=max_model_len, seed=0,
                       pooler_config=PoolerConfig(pooling_type="LAST", use_activation=True), **engine_kwargs)

    def embed(self, sequences: list[list[int]]) -> np.ndarray:
        from vllm.inputs import TokensPrompt

        outputs = self.llm.embed([TokensPrompt(prompt_token_ids=s) for s in sequences], use_tqdm=False)
        return np.asarray([o.outputs.embedding for o in outputs], dtype=np.float32)

    def shutdown(self) -> None:
        from o1e.llm.vllm_worker import shutdown_llm

        shutdown_llm(self.llm)
