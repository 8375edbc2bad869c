"""A dry run of a pipeline against a cluster definition: what each stage asks Ray for, and whether it fits.

Each stage places actors whose resources must fit on one node (a tensor-parallel-8 vLLM replica needs 8
GPUs on one node); stages run one after another, so each must fit the cluster by itself. Cluster
definitions are ``ray up`` files (``available_node_types``) or KubeRay ``RayJob``/``RayCronJob``/``RayCluster``
manifests (worker groups). Defaults that depend on the cluster (a GPU per actor when it has GPUs) are
resolved against it, as the stages resolve them at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from o1e.ray_utils import RayConfig, training_worker_cpus, worker_cpus, worker_gpus
from o1e.pipeline.config import PipelineConfig


@dataclass
class NodeType:
    name: str
    cpus: float
    gpus: float
    count: int


@dataclass
class Request:
    what: str
    cpus: float
    gpus: float
    count: int


def _quantity(value: Any) -> float:
    """A Kubernetes quantity as a number of CPUs/GPUs (``"90"``, ``"500m"``)."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _kuberay_groups(spec: dict[str, Any]) -> list[NodeType]:
    nodes = []
    for group in spec.get("workerGroupSpecs", []):
        container = group["template"]["spec"]["containers"][0]
        limits = container.get("resources", {}).get("limits", {})
        nodes.append(NodeType(group["groupName"], _quantity(limits.get("cpu", 0)),
                              _quantity(limits.get("nvidia.com/gpu", 0)),
                              int(group.get("maxReplicas", group.get("replicas", 1)))))
    return nodes


def cluster_nodes(doc: dict[str, Any]) -> list[NodeType]:
    """The worker node types a cluster definition can hold, at their maximum count."""
    kind = doc.get("kind")
    if kind == "RayJob":
        return _kuberay_groups(doc["spec"]["rayClusterSpec"])
    if kind == "RayCronJob":
        return _kuberay_groups(doc["spec"]["jobTemplate"]["rayClusterSpec"])
    if kind == "RayCluster":
        return _kuberay_groups(doc["spec"])
    if "available_node_types" in doc:
        nodes = []
        for name, node in doc["available_node_types"].items():
            if name == doc.get("head_node_type") and node.get("resources", {}).get("CPU", 1) == 0:
                continue  # a head that runs no work
            resources = node.get("resources", {})
            nodes.append(NodeType(name, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)),
                                  int(node.get("max_workers", doc.get("max_workers", 1)))))
        return nodes
    raise ValueError("not a cluster definition: expected a ray up file (available_node_types) or a KubeRay "
                     "RayJob, RayCronJob or RayCluster")


def _engine_request(what: str, engine, nodes: list[NodeType], gpus_available: bool) -> list[Request]:
    """As ``o1e.llm.ray_engine.RayEngine`` places its replicas (an unset CPU share: on an idle cluster)."""
    if engine.kind == "openai":
        return []
    gpus = engine.num_gpus_per_replica
    if gpus is None:
        per_replica = 1 if engine.kind == "transformers" else engine.tensor_parallel_size * engine.pipeline_parallel_size
        gpus = float(per_replica) if gpus_available else 0.0
    cpus = engine.num_cpus_per_replica
    if cpus is None:
        cpus = worker_cpus(RayConfig(), engine.replicas, sum(n.cpus * n.count for n in nodes),
                           max((n.cpus for n in nodes), default=1.0))
    return [Request(what, cpus, gpus, engine.replicas)]


def _workers(what: str, ray_cfg, count: int, nodes: list[NodeType], gpus_available: bool, share=worker_cpus
              ) -> Request:
    """As the stages place them at run time on an idle cluster: ``share`` is their rule for the CPUs per
    worker (``o1e.ray_utils.worker_cpus``; ``training_worker_cpus`` for Ray Train workers)."""
    cluster_cpus = sum(n.cpus * n.count for n in nodes)
    return Request(what, share(ray_cfg, count, cluster_cpus, max((n.cpus for n in nodes), default=1.0)),
                   worker_gpus(ray_cfg, float(gpus_available)), count)


def stage_requests(cfg: PipelineConfig, nodes: list[NodeType]) -> dict[str, list[list[Request]]]:
    """Per step, its phases (actors that live at the same time), each a list of requests."""
    gpus_available = any(n.gpus for n in nodes)
    cluster_cpus = sum(n.cpus * n.count for n in nodes)
    dense_mining = cfg.prepare.mining.method in ("dense", "o1")
    requests: dict[str, list[list[Request]]] = {
        "prepare": [[_workers("mining worker", cfg.prepare.ray, 1, nodes, gpus_available and dense_mining)]]}
    requests["synth"] = [_engine_request("vLLM replica" if cfg.synth.engine.kind == "vllm" else "replica",
                                         cfg.synth.engine, nodes, gpus_available)]
    cluster_gpus = sum(n.gpus * n.count for n in nodes)
    requests["vote"] = [[Request(f"member {m.name}", p.num_cpus, p.num_gpus, p.replicas)
                         for m, p in zip(cfg.vote.members, cfg.vote.placements(cluster_cpus, cluster_gpus))]]
    requests["train"] = [[_workers("train worker", cfg.train.ray, cfg.train.num_workers, nodes,
                                   gpus_available, training_worker_cpus)]]
    for name, ablation in cfg.ablations.items():
        requests[f"train:{name}"] = [[_workers("train worker", ablation.train.ray, ablation.train.num_workers, nodes,
                                               gpus_available, training_worker_cpus)]]
    evaluations = [("eval", cfg.eval), *((f"eval:{n}", a.eval) for n, a in cfg.ablations.items()),
                   *((f"baseline:{n}", b) for n, b in cfg.baselines.items())]
    for name, ecfg in evaluations:
        phases = []
        if ecfg.needs_thoughts and ecfg.thoughts.source is None:  # thoughts first, their engine closed before search
            phases.append(_engine_request("thought replica", ecfg.thoughts.engine, nodes, gpus_available))
        if ecfg.retriever.kind != "bm25":
            phases.append([_workers("eval shard", ecfg.ray, ecfg.shards, nodes, gpus_available)])
        requests[name] = phases
    return requests


def fits(requests: list[Request], nodes: list[NodeType]) -> list[str]:
    """Problems placing every request at once on the cluster (first fit, largest first); empty if it fits."""
    free = [[n.cpus, n.gpus, n.name] for n in nodes for _ in range(n.count)]
    problems = []
    for r in sorted(requests, key=lambda r: (r.gpus, r.cpus), reverse=True):
        if not any(r.cpus <= cpus and r.gpus <= gpus for cpus, gpus, _ in free):
            problems.append(f"{r.what} needs {r.gpus:g} GPU + {r.cpus:g} CPU on one node; no node type has that")
            continue
        for placed in range(r.count):
            node = next((n for n in free if r.cpus <= n[0] and r.gpus <= n[1]), None)
            if node is None:
                problems.append(f"{r.count} x {r.what} ({r.gpus:g} GPU + {r.cpus:g} CPU each): only {placed} fit")
                break
            node[0] -= r.cpus
            node[1] -= r.gpus
    return problems
