"""An OpenAI-compatible chat endpoint (``vllm serve``, or any hosted API) as a generation engine.

Requests run on one asyncio loop in a background thread, at most ``concurrency`` at a time across all
shards in flight. The ``openai`` client retries connection errors, timeouts, 408/409/429 and 5xx answers
with exponential back-off; a request that still fails becomes a reject, and the shard goes on. Each request
sends its renderer's chat variants in order, the next one only when the endpoint refuses the prompt as too
long: the same fallback the vLLM engine applies by counting tokens (counted in ``fallbacks_used``; no variant
accepted: ``query_too_long``). An endpoint takes messages, so token renderers are refused.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Iterable, Iterator

from o1e.llm.base import EngineError, GenerationResult, Renderer, Request, ShardWork, classify_error, prompt_fingerprint
from o1e.llm.config import OpenAIEngineConfig, SamplingConfig


class OpenAIEngine:
    def __init__(self, engine: OpenAIEngineConfig, renderer: Renderer, sampling: SamplingConfig) -> None:
        if not engine.model:
            raise EngineError("engine.model is empty: name the model the endpoint serves")
        if renderer.kind != "chat":
            raise EngineError(f"a {renderer.kind!r} renderer needs engine.kind=vllm: an OpenAI-compatible endpoint "
                              "takes chat messages, not token ids")
        self.cfg, self.renderer, self.sampling = engine, renderer, sampling
        self.model_name = engine.model
        self.info: dict = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from openai import AsyncOpenAI

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="o1e-openai", daemon=True)
        self._thread.start()
        api_key = os.environ.get(self.cfg.api_key_env) or "EMPTY"

        async def make_client():
            self._semaphore = asyncio.Semaphore(self.cfg.concurrency)
            return AsyncOpenAI(base_url=self.cfg.base_url, api_key=api_key, max_retries=self.cfg.max_retries,
                               timeout=self.cfg.timeout_s)

        self.client = self._run(make_client()).result()
        async def served_models() -> list[str]:
            return [m.id async for m in self.client.models.list()]

        try:  # fail before any work when the endpoint is unreachable or does not serve the model
            served = self._run(served_models()).result(timeout=self.cfg.timeout_s)
        except Exception as err:  # noqa: BLE001
            self.close()
            raise EngineError(f"cannot reach the endpoint {self.cfg.base_url}: {err}") from err
        if served and self.cfg.model not in served:
            self.close()
            raise EngineError(f"{self.cfg.base_url} serves {served}, not {self.cfg.model!r}")
        self.info = {"base_url": self.cfg.base_url, "concurrency": self.cfg.concurrency, "served": served}

    def _run(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _one(self, request: Request) -> GenerationResult:
        extra = {}
        if self.sampling.temperature is not None:
            extra["temperature"] = self.sampling.temperature
        if self.sampling.top_p is not None:
            extra["top_p"] = self.sampling.top_p
        if request.seed is not None:
            extra["seed"] = request.seed
        result = None
        for fallbacks, chat in enumerate(self.renderer.variants(request.payload)):
            result = GenerationResult(key=request.key, prompt_fingerprint=prompt_fingerprint(chat),
                                      fallbacks_used=fallbacks)
            async with self._semaphore:
                try:
                    response = await self.client.chat.completions.create(
                        model=self.cfg.model, messages=chat, max_tokens=self.sampling.max_tokens, **extra)
                except Exception as err:  # noqa: BLE001 - after the client's retries, the request is a reject
                    message = getattr(err, "message", None) or str(err)
                    result.error = classify_error(message)
                    result.detail = f"{type(err).__name__}: {message}"[:2000]
                    if result.error == "query_too_long":  # a shorter form of the prompt may fit
                        continue
                    return result
            choice = response.choices[0]
            result.text = choice.message.content or ""
            result.finish_reason = choice.finish_reason or "stop"
            if response.usage is not None:
                result.prompt_tokens = response.usage.prompt_tokens or 0
                result.completion_tokens = response.usage.completion_tokens or 0
            return result
        if result is None:
            raise ValueError(f"the renderer gave no prompt for request {request.key!r}")
        result.error = "query_too_long"  # even the shortest variant does not fit, as the vLLM engine says it
        return result

    async def _shard(self, work: ShardWork) -> tuple[str, list[GenerationResult]]:
        results = await asyncio.gather(*(self._one(r) for r in work.requests))
        return work.shard_id, list(results)

    def stream(self, work: Iterable[ShardWork]) -> Iterator[tuple[str, list[GenerationResult]]]:
        source = iter(work)
        pending: set[Future] = set()
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.cfg.shards_in_flight:
                item = next(source, None)
                if item is None:
                    exhausted = True
                else:
                    pending.add(self._run(self._shard(item)))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self.client.close()).result(timeout=10)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
