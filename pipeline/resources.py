"""A dry run of a pipeline against a cluster definition: what each stage asks Ray for, and whether it fits.

Each stage places actors whose resources must fit on one node (a tensor-parallel-8 vLLM replica needs 8
GPUs on one node); stages run one after another, so each must fit the cluster by itself. Cluster
definitions are ``ray up`` files (``available_node_types``) or KubeRay ``RayJob``/``RayCronJob``/``RayCluster``
manifests (worker groups). Defaults that depend on the cluster (a GPU per actor when it has GPUs) are
resolved against it, as the stages resolve them at run time.
"""

from __future__ import annotations

from typing import Any

from o1e.pipeline.plan import Step
from o1e.pipeline.stages import STAGES
from o1e.placement import Cluster, NodeType, Request


def _quantity(value: Any) -> float:
    """A Kubernetes quantity as a number of CPUs/GPUs (``"90"``, ``"500m"``)."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _kuberay_groups(spec: dict[str, Any]) -> Cluster:
    nodes = []
    for group in spec.get("workerGroupSpecs", []):
        container = group["template"]["spec"]["containers"][0]
        limits = container.get("resources", {}).get("limits", {})
        nodes.append(NodeType(group["groupName"], _quantity(limits.get("cpu", 0)),
                              _quantity(limits.get("nvidia.com/gpu", 0)),
                              int(group.get("maxReplicas", group.get("replicas", 1)))))
    return Cluster(tuple(nodes))


def cluster_nodes(doc: dict[str, Any]) -> Cluster:
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
        return Cluster(tuple(nodes))
    raise ValueError("not a cluster definition: expected a ray up file (available_node_types) or a KubeRay "
                     "RayJob, RayCronJob or RayCluster")


def stage_requests(steps: list[Step], cluster: Cluster) -> dict[str, list[list[Request]]]:
    """Per step, what its stage asks Ray for on this cluster: phases (actors alive at the same time), each a
    list of requests."""
    return {step.name: STAGES[step.stage].requests(step.config, cluster) for step in steps}


def fits(requests: list[Request], cluster: Cluster) -> list[str]:
    """Problems placing every request at once on the cluster (first fit, largest first); empty if it fits."""
    free = [[n.cpus, n.gpus, n.name] for n in cluster.nodes for _ in range(n.count)]
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
