"""The train stage, as the pipeline and the ``o1e`` command know it (``o1e.stage.Stage``)."""

from __future__ import annotations

from o1e import runs
from o1e.placement import Cluster, workers_request
from o1e.progress import Show
from o1e.ray_utils import training_worker_cpus
from o1e.stage import Flag, Input, Stage, count_rows
from o1e.train.config import TrainConfig


def _run(cfg: TrainConfig, show: Show):
    from o1e.train.driver import run_train

    return run_train(cfg, show=show)


def _rows(cfg: TrainConfig) -> tuple[int | None, int | None]:
    """Rows in the training dataset, and those training used (its summary's ``rows``)."""
    summary = runs.read_summary(cfg.output)
    return count_rows(cfg.data), summary["rows"]["usable"] if summary else None


TRAIN = Stage(
    name="train", command=("train",),
    help="jointly fine-tune a causal LM to think (generate) and embed (Ray Train + DeepSpeed)",
    config=TrainConfig, run=_run, output="model", rows=_rows,
    inputs=(Input("data", "vote", "training"),), extra_paths=("storage_path",),
    requests=lambda cfg, cluster: [[workers_request("train worker", cfg.ray, cfg.num_workers, cluster,
                                                    share=training_worker_cpus)]],
    flags=(
        Flag(("-i", "--input"), "data", "the `training` dataset written by o1e vote (folder or s3://)"),
        Flag(("-m", "--model"), "model", "base causal LM folder (local or s3://)"),
        Flag(("-n", "--workers"), "num_workers", "Ray Train workers (one per GPU)"),
        Flag(("-z", "--zero"), "deepspeed.zero_stage", "DeepSpeed ZeRO stage", choices=("1", "2", "3")),
        Flag(("-o", "--output"), "output", "output folder or s3:// prefix (model/, metrics.jsonl, rejects/)"),
        Flag(("--storage",), "storage_path", "Ray Train checkpoint storage (local or s3://)"),
    ),
    example="o1e train -c train/configs/tiny_cpu.yaml -i runs/vote/training -m runs/base -o runs/train",
)
