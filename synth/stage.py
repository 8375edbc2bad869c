"""The synth package's two stages, as the pipeline and the ``o1e`` command know them (``o1e.stage.Stage``):
``prepare`` (training rows with mined hard negatives) and ``synth`` (candidate thoughts from an expert LLM)."""

from __future__ import annotations

from o1e.placement import Cluster, engine_request, workers_request
from o1e.progress import Show
from o1e.stage import Flag, Input, Stage
from o1e.synth.config import PrepareConfig, SynthConfig


GROUP_HELP = "synthesise candidate thoughts with an expert LLM"
"""Help of ``o1e synth``, whose steps are ``prepare`` and ``run``."""


def _run_prepare(cfg: PrepareConfig, show: Show):
    from o1e.synth.prepare import run_prepare

    return run_prepare(cfg, show=show)


def _run_synth(cfg: SynthConfig, show: Show):
    from o1e.synth.driver import run_synth

    return run_synth(cfg, show=show)


def _prepare_requests(cfg: PrepareConfig, cluster: Cluster):
    dense = cfg.mining.method in ("dense", "o1")
    return [[workers_request("mining worker", cfg.ray, 1, cluster, use_gpus=dense)]]


def _synth_requests(cfg: SynthConfig, cluster: Cluster):
    return [engine_request("vLLM replica" if cfg.engine.kind == "vllm" else "replica", cfg.engine, cluster)]


PREPARE = Stage(
    name="prepare", command=("synth", "prepare"),
    help="training rows (query, positives, hard negatives) from a BEIR train split or JSONL rows",
    config=PrepareConfig, run=_run_prepare, output="training_rows",
    requests=_prepare_requests,
    flags=(
        Flag(("-d", "--dataset"), "dataset.path", "BEIR folder, JSONL rows file, or s3:// (default: bundled demo)"),
        Flag(("-s", "--split"), "dataset.split", "qrels split (default: train)"),
        Flag(("--mining",), "mining.method", "how hard negatives are mined", choices=("bm25", "dense", "o1", "none")),
        Flag(("--negatives",), "mining.count", "hard negatives per row (default: 15)"),
        Flag(("--depth",), "mining.depth", "mine from the top DEPTH passages (default: 100)"),
        Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
    ),
    example="o1e synth prepare -d ../shared/data/beir/scifact --negatives 15 -o runs/prepare",
)

SYNTH = Stage(
    name="synth", command=("synth", "run"),
    help="write N candidate thoughts per training query (vLLM on Ray, or an OpenAI-compatible endpoint)",
    config=SynthConfig, run=_run_synth, output="candidates",
    inputs=(Input("input", "prepare", "training_rows"),),
    rows_in="input",
    requests=_synth_requests,
    flags=(
        Flag(("-i", "--input"), "input", "training_rows dataset (folder or s3://)"),
        Flag(("-m", "--model"), "engine.model", "expert model directory (vllm) or served name (openai)"),
        Flag(("-e", "--engine"), "engine.kind", "what generates (default: vllm)",
             choices=("vllm", "openai", "transformers")),
        Flag(("--base-url",), "engine.base_url", "OpenAI-compatible endpoint", implies={"engine.kind": "openai"}),
        Flag(("--num-candidates",), "num_candidates", "thoughts per query (default: 3)"),
        Flag(("-n", "--replicas"), "engine.replicas", "engine replicas (Ray actors)"),
        Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
    ),
    example="o1e synth run -i runs/prepare/training_rows -m /models/Llama-3.1-70B-Instruct -n 4 -o runs/synth",
)
