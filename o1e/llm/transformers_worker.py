"""One transformers ``generate`` replica: the fallback engine where vLLM is not installed.

Same contract as ``VllmWorker``: a shard of requests in, one ``GenerationResult`` per request out, the
renderer deciding the prompt. Requests are generated ``batch_size`` at a time, left padded. transformers
samples a batch from one random stream, so a batch is seeded from its requests' seeds: reruns of the same
config give the same thoughts, but a request's thought depends on the batch it falls in (vLLM seeds each
request on its own).
"""

from __future__ import annotations

import hashlib
import os
import time

from o1e.llm.base import GenerationResult, Renderer, ShardWork, prompt_fingerprint, token_fingerprint
from o1e.llm.config import SamplingConfig, TransformersEngineConfig


class TransformersWorker:
    def __init__(self, engine: TransformersEngineConfig, model_dir: str, renderer: Renderer,
                 sampling: SamplingConfig) -> None:
        started = time.perf_counter()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        from o1e.encoders import pick_device

        torch.set_num_threads(max(1, int(engine.num_cpus_per_replica)))
        self.torch = torch
        self.engine, self.renderer, self.sampling_cfg = engine, renderer, sampling
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.device = pick_device(engine.device)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, engine.dtype))
        self.model.to(self.device).eval()
        self.max_model_len = getattr(self.model.config, "max_position_embeddings", None) or 2048
        try:
            defaults = GenerationConfig.from_pretrained(model_dir)
        except OSError:
            defaults = GenerationConfig()
        self.temperature = sampling.temperature if sampling.temperature is not None else (defaults.temperature or 1.0)
        self.top_p = sampling.top_p if sampling.top_p is not None else (defaults.top_p or 1.0)
        self.eos = self.tokenizer.eos_token_id
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos
        self.load_s = time.perf_counter() - started

    def ready(self) -> dict:
        return {"load_s": self.load_s, "max_model_len": self.max_model_len, "pid": os.getpid(),
                "temperature": self.temperature, "top_p": self.top_p}

    def _prompt(self, payload) -> tuple[list[int], str, int] | None:
        """(ids, fingerprint, fallbacks used) of the first prompt form that fits, or None."""
        budget = self.max_model_len - self.sampling_cfg.max_tokens
        if self.renderer.kind == "tokens":
            ids = self.renderer.token_ids(payload, self.tokenizer)
            return (ids, token_fingerprint(ids), 0) if len(ids) <= budget else None
        for used, chat in enumerate(self.renderer.variants(payload)):
            text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if len(ids) <= budget:
                return ids, prompt_fingerprint(chat), used
        return None

    def generate(self, work: ShardWork) -> tuple[str, list[GenerationResult]]:
        results: list[GenerationResult] = []
        todo: list[tuple[GenerationResult, list[int], int | None]] = []
        for request in work.requests:
            prompt = self._prompt(request.payload)
            if prompt is None:
                results.append(GenerationResult(
                    key=request.key, error="query_too_long",
                    detail=f"the prompt does not fit the model's {self.max_model_len} positions with "
                           f"max_tokens={self.sampling_cfg.max_tokens}"))
                continue
            ids, fp, used = prompt
            result = GenerationResult(key=request.key, prompt_tokens=len(ids), prompt_fingerprint=fp,
                                      fallbacks_used=used)
            results.append(result)
            todo.append((result, ids, request.seed))
        for start in range(0, len(todo), self.engine.batch_size):
            self._generate_batch(todo[start:start + self.engine.batch_size])
        return work.shard_id, results

    def _generate_batch(self, batch) -> None:
        torch = self.torch
        width = max(len(ids) for _, ids, _ in batch)
        input_ids = torch.tensor([[self.pad] * (width - len(ids)) + ids for _, ids, _ in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids, _ in batch], device=self.device)
        seeds = [s for _, _, s in batch if s is not None]
        if seeds:
            digest = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
            torch.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        sample = self.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=self.sampling_cfg.max_tokens,
                do_sample=sample, temperature=self.temperature if sample else None,
                top_p=self.top_p if sample else None, eos_token_id=self.eos, pad_token_id=self.pad)
        for (result, _, _), row in zip(batch, out[:, width:].tolist()):
            stopped = self.eos in row
            tokens = row[:row.index(self.eos) + 1] if stopped else row
            result.text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            result.finish_reason = "stop" if stopped else "length"
            result.completion_tokens = len(tokens)

    def shutdown(self) -> None:
        self.model = None
