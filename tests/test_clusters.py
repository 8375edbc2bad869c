"""Every file in clusters/ parses and has what its tool needs; the paper's pipeline fits the clusters."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from o1e.config import load_config
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.plan import build_steps
from o1e.pipeline.resources import cluster_nodes, fits, stage_requests

CLUSTERS = os.path.join(REPO, "clusters")
PAPER = os.path.join(REPO, "pipeline", "configs", "paper.yaml")


def load(name: str) -> dict:
    with open(os.path.join(CLUSTERS, name)) as f:
        return yaml.safe_load(f)


def every_yaml() -> list[str]:
    return sorted(os.path.relpath(p, CLUSTERS) for p in glob.glob(os.path.join(CLUSTERS, "**", "*.yaml"), recursive=True))


def test_every_cluster_file_is_known_and_complete():
    cron = re.compile(r"^(\S+\s+){4}\S+$")
    for name in every_yaml():
        doc = load(name)
        kind = doc.get("kind")
        if name == "runtime_env.yaml":
            assert {".git/", ".venv/"} <= set(doc["excludes"]) and doc["env_vars"]["HF_HUB_OFFLINE"] == "1"
        elif "available_node_types" in doc:  # ray up
            assert doc["cluster_name"] and doc["provider"]["type"] and doc["head_node_type"] in doc["available_node_types"]
            assert doc["max_workers"] >= max(n.get("max_workers", 0) for n in doc["available_node_types"].values())
        elif kind == "RayJob":
            spec = doc["spec"]
            assert doc["apiVersion"] == "ray.io/v1" and spec["entrypoint"].startswith("python -m o1e.pipeline")
            assert spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
            assert spec["rayClusterSpec"]["workerGroupSpecs"] and spec["shutdownAfterJobFinishes"] is True
        elif kind == "RayCronJob":
            spec = doc["spec"]
            assert doc["apiVersion"] == "ray.io/v1" and cron.match(spec["schedule"])
            assert "incremental=true" in spec["jobTemplate"]["entrypoint"]
            assert spec["jobTemplate"]["rayClusterSpec"]["workerGroupSpecs"]
        elif kind == "CronJob":
            spec = doc["spec"]
            assert doc["apiVersion"] == "batch/v1" and cron.match(spec["schedule"])
            assert spec["concurrencyPolicy"] == "Forbid"
            args = " ".join(spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"])
            assert "ray job submit" in args and "incremental=true" in args
        else:
            pytest.fail(f"clusters/{name}: not a file this test knows how to check")
    with open(os.path.join(CLUSTERS, "Dockerfile")) as f:
        docker = f.read()
    import ray

    assert f"FROM rayproject/ray:{ray.__version__}-" in docker  # the image's Ray is the one that submits
    assert re.search(r'"vllm==[\d.]+"', docker) and re.search(r'"deepspeed==[\d.]+"', docker)


def test_paper_pipeline_fits_the_clusters_and_a_small_one_is_refused():
    cfg = load_config(PipelineConfig, PAPER)
    for name in ("gpu-8x.yaml", "kuberay/rayjob-pipeline.yaml", "kuberay/raycronjob-synth.yaml"):
        nodes = cluster_nodes(load(name))
        for step, phases in stage_requests(build_steps(cfg), nodes).items():
            if name.endswith("raycronjob-synth.yaml") and step != "synth":
                continue
            assert not [p for phase in phases for p in fits(phase, nodes)], (name, step)
    small = load("gpu-8x.yaml")
    small["available_node_types"]["gpu_8x"]["resources"] = {"CPU": 48, "GPU": 4}
    problems = fits(stage_requests(build_steps(cfg), cluster_nodes(small))["synth"][0], cluster_nodes(small))
    assert problems and "vLLM replica needs 8 GPU" in problems[0]


def test_print_config_and_dry_run_from_the_command_line(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "o1e.pipeline", "-c", PAPER, *args],  # noqa: E731
                                       capture_output=True, text=True, cwd=REPO)
    printed = run("--print-config")
    assert printed.returncode == 0, printed.stderr
    resolved = yaml.safe_load(printed.stdout)
    assert resolved["synth"]["input"] == "s3://my-bucket/o1e/paper/prepare/training_rows"
    assert resolved["train"]["lora"]["enabled"] is True and resolved["eval"]["thoughts"]["n"] == 3
    local = f"output={tmp_path}"  # records read from a local root: no network in the test
    fitting = run("--dry-run", "--cluster", os.path.join(CLUSTERS, "gpu-8x.yaml"), local)
    assert fitting.returncode == 0, fitting.stdout + fitting.stderr
    assert "4 x gpu_8x (8 GPU, 96 CPU)" in fitting.stdout and "does not fit" not in fitting.stdout
    too_big = run("--dry-run", "--cluster", os.path.join(CLUSTERS, "gpu-8x.yaml"), local, "train.num_workers=40")
    assert too_big.returncode == 1
    assert "does not fit: train: 40 x train worker (1 GPU + 8 CPU each): only 32 fit" in too_big.stdout


def test_the_dry_run_sizes_train_workers_as_train_does():
    """One rule (``o1e.ray_utils.training_worker_cpus``) for the dry run and the train stage: on a 2-CPU
    node, 2 workers get 0.5 CPU each (one CPU stays with Ray Train's controller and the driver)."""
    from o1e.placement import Cluster, NodeType
    from o1e.ray_utils import RayConfig, training_worker_cpus, worker_cpus

    cfg = load_config(PipelineConfig, None, ["output=/runs/p", "train.model=/m/base", "train.num_workers=2"])
    train = stage_requests(build_steps(cfg), Cluster((NodeType("head", 2, 0, 1),)))["train"][0][0]
    assert train.cpus == training_worker_cpus(RayConfig(), 2, 2, 2) == 0.5 < worker_cpus(RayConfig(), 2, 2, 2)
    assert training_worker_cpus(RayConfig(num_cpus_per_worker=3), 2, 2, 2) == 3
    assert training_worker_cpus(RayConfig(), 8, 64, 64) == 7.875 and training_worker_cpus(RayConfig(), 2, 64, 8) == 8
