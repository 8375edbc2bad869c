"""Sizing CPU shares on a real local Ray cluster (``o1e.ray_utils``)."""

from __future__ import annotations

from o1e.ray_utils import free_cpus


def test_free_cpus_counts_what_a_finished_task_is_about_to_return(ray_cluster):
    """Ray returns a finished task's CPUs a moment after its result: a share sized right then must still see
    them (the eval stage sized its encoders just after its planning task, and computed on one core of two)."""
    ray = ray_cluster
    total = ray.cluster_resources()["CPU"]
    task = ray.remote(lambda: 1).options(num_cpus=total)
    for _ in range(3):
        ray.get(task.remote())
        assert free_cpus(ray) == total
