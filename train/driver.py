"""``o1e train``: check the inputs, put the usable training rows into the Ray object store (one copy per
node, shared by its workers), train with a Ray Train ``TorchTrainer`` whose workers run DeepSpeed over a
seeded order of those rows (``train.data.epoch_steps``), then record the merged model's lineage and a
summary."""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa

from o1e import cards, costs, runs, schemas, storage
from o1e.config import ConfigError
from o1e.encoders import check_model_dir
from o1e.models import resolve_model_dir
from o1e.progress import Show
from o1e.provenance import directory_fingerprint
from o1e.ray_utils import VERBOSE_ENV, init_ray, started_local_cluster
from o1e.schemas import Reject
from o1e.train.config import TrainConfig
from o1e.train.data import reject_reason, steps_per_epoch
from o1e.train.worker import deepspeed_config, train_loop


def check_config(cfg: TrainConfig) -> str:
    """Everything that can be checked before a worker starts; returns the local base-model folder."""
    if not cfg.data:
        raise ConfigError("data: the training dataset is required (-i PATH or data=PATH)")
    if not cfg.model:
        raise ConfigError("model: the base causal LM folder is required (model=PATH or -m PATH)")
    try:
        manifest = storage.read_manifest(cfg.data)
    except storage.StorageError as err:
        raise ConfigError(f"data: {err}") from None
    if manifest.schema != "training":
        raise ConfigError(f"data: {cfg.data} holds a {manifest.schema!r} dataset, not 'training'")
    if manifest.schema_version != schemas.TRAINING.version:
        raise ConfigError(f"data: {cfg.data} is a 'training' dataset of schema version {manifest.schema_version}; "
                          f"this code reads version {schemas.TRAINING.version} (rerun the committee stage)")
    if manifest.num_rows < cfg.num_workers:
        raise ConfigError(f"data: {manifest.num_rows} rows cannot feed {cfg.num_workers} workers")
    path = cfg.deepspeed.config_path()
    try:
        with open(path) as f:
            json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"deepspeed.config: cannot read DeepSpeed JSON {path}: {err}") from None
    deepspeed_config(cfg, cfg.num_workers)
    cfg.check_outputs()
    storage.check_rerun_record(runs.MODEL_LINEAGE.url(cfg.output), cfg.fingerprint(), cfg.overwrite)
    try:
        model_dir = resolve_model_dir(cfg.model)
    except FileNotFoundError as err:
        raise ConfigError(f"model: {err}") from None
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise ConfigError(f"model: {cfg.model} is not a Hugging Face model folder (no config.json)")
    check_model_dir(model_dir, "model")
    return model_dir


def split_rejects(cfg: TrainConfig, table: pa.Table) -> tuple[pa.Table, list[Reject], dict[str, list]]:
    """The usable rows, the rejected ones (with reasons) and a probe of usable rows."""
    keep, rejects = [], []
    probe: dict[str, list] = {"queries": [], "thoughts": [], "documents": []}
    columns = table.select(["query_id", "query", "thought", "positives"]).to_pylist()
    for row in columns:
        reason = reject_reason(row)
        keep.append(reason is None)
        if reason:
            rejects.append(Reject(cfg.data, row["query_id"], reason,
                                  "skipped: a training row needs a query and a non-empty positive"))
        elif len(probe["queries"]) < cfg.probe_size:
            probe["queries"].append(row["query"])
            probe["thoughts"].append(row["thought"] or "")
            probe["documents"].append(next(p for p in row["positives"] if p and p.strip()))
    return table.filter(pa.array(keep, type=pa.bool_())), rejects, probe


def plan_steps(cfg: TrainConfig, num_rows: int) -> int:
    """Optimiser steps: every usable row once per epoch, ``workers × batch_size_per_worker`` rows a step."""
    steps = cfg.optim.epochs * steps_per_epoch(num_rows, cfg.num_workers, cfg.optim.batch_size_per_worker)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def worker_resources(ray, cfg: TrainConfig) -> tuple[float, float]:
    """CPUs and GPUs per training worker (``o1e.ray_utils.training_worker_cpus`` of the free CPUs)."""
    from o1e.ray_utils import free_cpus, gpus_per_worker, largest_node_cpus, training_worker_cpus

    gpus = gpus_per_worker(ray, cfg.ray)
    if cfg.ray.num_cpus_per_worker is not None:  # without waiting for the free CPUs to settle
        return cfg.ray.num_cpus_per_worker, gpus
    return training_worker_cpus(cfg.ray, cfg.num_workers, free_cpus(ray), largest_node_cpus(ray)), gpus


def _url(storage_url: str, fs_path: str) -> str:
    return f"s3://{fs_path}" if storage.is_s3(storage_url) else fs_path


def run_train(cfg: TrainConfig, pid_file: str | None = None, show: bool | Show = True) -> dict[str, Any]:
    """Train (or resume) on Ray Train; returns the model's lineage. The training bar is drawn by the first
    worker; ``show`` says whether the driver shows the result table (``Show.TABLES``) or a line."""
    model_dir = check_config(cfg)
    record = runs.RunRecord("train", cfg, parents=[storage.dataset_ref(cfg.data)], views=(runs.MODEL_LINEAGE,))
    table, rejects, probe = split_rejects(cfg, storage.read_table(cfg.data, schema_name="training"))
    num_rows = table.num_rows + len(rejects)
    record.write_rejects(rejects)
    if table.num_rows < cfg.num_workers:
        raise ConfigError(f"data: {table.num_rows} usable of the {num_rows} rows of {cfg.data} cannot feed "
                          f"{cfg.num_workers} workers (see rejects)")
    total_steps = plan_steps(cfg, table.num_rows)

    ray = init_ray(cfg.ray)
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from o1e.train.failures import O1eTorchTrainer

    rows_ref = ray.put(table)  # the workers read this shared copy; the driver lets its own go
    del table
    storage_url = cfg.storage_path or storage.join(cfg.output, "ray")
    storage_fs, storage_path = storage.resolve(storage_url)
    run_name = f"o1e-train-{cfg.fingerprint()}"
    cpus, gpus = worker_resources(ray, cfg)
    threads = max(1, int(cpus))
    if started_local_cluster():
        # No node of a local cluster is ever drained: Ray Train's preemption watcher (its own switch) would
        # have nothing to watch, and its actor logs an error line as it starts.
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    worker_env = {"OMP_NUM_THREADS": str(threads)}
    if not gpus:  # what DeepSpeed would detect, after a warning that it found no accelerator
        worker_env["DS_ACCELERATOR"] = "cpu"
    trainer = O1eTorchTrainer(
        train_loop,
        train_loop_config={
            "config": cfg.model_dump(mode="json"),
            "model_dir": model_dir if not storage.is_s3(cfg.model) else cfg.model,
            "total_steps": total_steps, "threads": threads, "probe": probe, "pid_file": pid_file,
            "rows": rows_ref,
        },
        torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=gpus > 0,
            resources_per_worker={"CPU": cpus, **({"GPU": gpus} if gpus else {})},
        ),
        run_config=RunConfig(
            name=run_name, storage_path=storage_path, storage_filesystem=storage_fs,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            worker_runtime_env={"env_vars": worker_env},
            logging_config=LoggingConfig(log_level="INFO" if os.environ.get(VERBOSE_ENV) else "WARNING"),
        ),
    )
    with costs.held(cfg.num_workers, cpus, gpus):
        result = trainer.fit()

    model_url = storage.join(cfg.output, "model")
    summary = record.summary({
        "model": model_url, "training_dataset": storage.dataset_ref(cfg.data),
        "base_model": {"path": cfg.model, "fingerprint": directory_fingerprint(model_dir)},
        "config": cfg.model_dump(mode="json"),
        "checkpoint": _url(storage_url, result.checkpoint.path) if result.checkpoint else None,
        "ray_run": storage.join(storage_url, run_name), "final_metrics": result.metrics,
        "rows": {"total": num_rows, "usable": num_rows - len(rejects), "rejected": len(rejects)},
    }, rows=num_rows, unit="training row")
    lineage = runs.MODEL_LINEAGE.of(summary)
    name = f"{cfg.model.rstrip('/').rsplit('/', 1)[-1]}-o1e"
    storage.write_text(storage.join(model_url, cards.CARD), cards.model_card(lineage, name))
    record.write(summary)  # the model's lineage.json, then summary.json: the folder is complete
    from o1e.train import report

    show = Show.of(show)
    if show.tables:
        report.show_summary(cfg, lineage)
    elif show.progress:
        report.print_written(cfg, lineage)
    return lineage
