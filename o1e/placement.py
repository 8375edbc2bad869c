"""What a stage asks Ray for on a cluster, resolved as the stage resolves it at run time on an idle cluster.

Each stage's ``requests`` (``o1e.stage.Stage``) builds its requests from these; the pipeline's dry run
(``o1e run --dry-run --cluster FILE``) checks them against a cluster definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from o1e.ray_utils import RayConfig, worker_cpus, worker_gpus


@dataclass(frozen=True)
class NodeType:
    name: str
    cpus: float
    gpus: float
    count: int


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[NodeType, ...]

    @property
    def cpus(self) -> float:
        return sum(n.cpus * n.count for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus * n.count for n in self.nodes)

    @property
    def largest_node_cpus(self) -> float:
        return max((n.cpus for n in self.nodes), default=1.0)


@dataclass(frozen=True)
class Request:
    what: str
    cpus: float
    gpus: float
    count: int


def engine_request(what: str, engine, cluster: Cluster) -> list[Request]:
    """As ``o1e.llm.ray_engine.RayEngine`` places its replicas (an unset CPU share: on an idle cluster)."""
    if engine.kind == "openai":
        return []
    gpus = engine.num_gpus_per_replica
    if gpus is None:
        per_replica = 1 if engine.kind == "transformers" else engine.tensor_parallel_size * engine.pipeline_parallel_size
        gpus = float(per_replica) if cluster.gpus else 0.0
    cpus = engine.num_cpus_per_replica
    if cpus is None:
        cpus = worker_cpus(RayConfig(), engine.replicas, cluster.cpus, cluster.largest_node_cpus)
    return [Request(what, cpus, gpus, engine.replicas)]


def workers_request(what: str, ray_cfg: RayConfig, count: int, cluster: Cluster, use_gpus: bool = True,
                    share=worker_cpus) -> Request:
    """``count`` workers as the stages place them: ``share`` is their rule for the CPUs per worker
    (``o1e.ray_utils.worker_cpus``; ``training_worker_cpus`` for Ray Train workers); a GPU each when the
    cluster has GPUs and ``use_gpus``, unless the config says otherwise."""
    return Request(what, share(ray_cfg, count, cluster.cpus, cluster.largest_node_cpus),
                   worker_gpus(ray_cfg, 1.0 if use_gpus and cluster.gpus else 0.0), count)
