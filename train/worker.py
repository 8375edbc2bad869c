"""What each Ray Train worker runs: DeepSpeed around the O1 model, the joint loss, checkpoints, export.

Driven by ``train.driver``; everything the loop needs arrives in ``loop_config`` (plain data).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import tempfile
import time
from collections import Counter
from contextlib import nullcontext, redirect_stdout
from typing import Any

import torch

from o1e.o1model import O1Model
from o1e.provenance import fingerprint
from o1e.train.config import TrainConfig
from o1e.train.data import collate, training_steps
from o1e.train.step import lr_factor, step_losses

CKPT_TAG = "ds"
STATE_FILE = "o1e_train_state.json"


def deepspeed_config(cfg: TrainConfig, world_size: int) -> dict[str, Any]:
    """The shipped (or user's) ZeRO JSON with batch size, clipping and precision filled in."""
    with open(cfg.deepspeed.config_path()) as f:
        ds = json.load(f)
    ds["train_micro_batch_size_per_gpu"] = cfg.optim.batch_size_per_worker
    ds["gradient_accumulation_steps"] = ds.get("gradient_accumulation_steps", 1)
    ds["train_batch_size"] = cfg.optim.batch_size_per_worker * world_size * ds["gradient_accumulation_steps"]
    ds["gradient_clipping"] = cfg.optim.max_grad_norm
    ds["bf16"] = {"enabled": cfg.deepspeed.precision == "bf16"}
    ds.setdefault("zero_optimization", {})["stage"] = cfg.deepspeed.zero_stage
    return ds


def build_model(cfg: TrainConfig, model_dir: str) -> O1Model:
    return prepare_for_training(O1Model.from_pretrained(model_dir, seq=cfg.sequence), cfg)


def prepare_for_training(model: O1Model, cfg: TrainConfig) -> O1Model:
    """Gradient checkpointing and LoRA adapters (peft) as ``cfg`` says, on a loaded O1 model."""
    model.lm.config.use_cache = False
    if cfg.deepspeed.gradient_checkpointing:
        model.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.enabled:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        new_tokens = None
        if cfg.lora.train_new_tokens:
            names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.lm.named_modules()}
            ids = [model.ids.query_open, model.ids.query_close, model.ids.thought, model.ids.emb]
            new_tokens = {names[id(model.lm.get_input_embeddings())]: ids,
                          names[id(model.lm.get_output_embeddings())]: ids}
        model.lm = get_peft_model(model.lm, PeftLoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules, modules_to_save=cfg.lora.modules_to_save or None,
            trainable_token_indices=new_tokens, task_type="CAUSAL_LM",
        ))
    return model


def _gather_objects(obj: Any) -> list[Any]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def train_loop(loop_config: dict[str, Any]) -> None:
    from o1e.ray_utils import VERBOSE_ENV

    quiet = not os.environ.get(VERBOSE_ENV)
    if quiet:
        # Ray Train sets this worker's root logger to INFO, and RunConfig's log level filters only loggers
        # named ray.train*: Ray Train's own line for every reported step (its logger is named by a file
        # path) would pass.
        logging.getLogger().setLevel(logging.WARNING)

    import deepspeed
    import ray.train
    from deepspeed.utils import logger as deepspeed_logger

    from o1e.progress import bar as progress_bar

    if quiet:  # its info lines would reach the terminal through Ray
        deepspeed_logger.setLevel(logging.WARNING)

    cfg = TrainConfig.model_validate(loop_config["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(loop_config.get("threads", 1))))
    torch.manual_seed(cfg.optim.seed)
    model = build_model(cfg, loop_config["model_dir"])
    total_steps = loop_config["total_steps"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(total_steps, cfg.optim))
    # Quiet, what DeepSpeed prints as it starts (that it built its shared-memory op) stays off the terminal.
    with redirect_stdout(io.StringIO()) if quiet else nullcontext():
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=deepspeed_config(cfg, world))

    state: dict[str, Any] = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "rows_seen": 0,
                             "history": [], "resumed_from_step": None}
    stats: Counter = Counter()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as path:
            engine.load_checkpoint(path, tag=CKPT_TAG)
            with open(os.path.join(path, STATE_FILE)) as f:
                state = json.load(f)
        state["resumed_from_step"] = state["step"]
        stats = Counter(state.pop("stats_by_rank")[rank])
    if rank == 0 and loop_config.get("pid_file"):  # lets an operator (or a test) find the worker to kill
        with open(loop_config["pid_file"], "w") as f:
            f.write(str(os.getpid()))

    def save_and_report(metrics: dict[str, Any]) -> None:
        stats_by_rank = _gather_objects(dict(stats))
        with tempfile.TemporaryDirectory(prefix="o1e-ckpt-") as tmp:
            engine.save_checkpoint(tmp, tag=CKPT_TAG)
            if rank == 0:
                with open(os.path.join(tmp, STATE_FILE), "w") as f:
                    json.dump({**state, "stats_by_rank": stats_by_rank}, f)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    table = ray.get(loop_config["rows"])
    bar = progress_bar(total=total_steps, initial=state["step"], desc="train", unit="step", disable=rank != 0)
    done = state["step"] >= total_steps
    # Resumed: the same order again, from the first step the checkpoint has not trained on.
    for epoch, index, positions in training_steps(table.num_rows, cfg.optim.seed, world,
                                                  cfg.optim.batch_size_per_worker, cfg.optim.epochs,
                                                  state["epoch"], state["batches_in_epoch"]):
        if done:
            break
        started = time.perf_counter()
        # Each step's sampling depends only on (seed, step, rank): a resumed run draws the same groups.
        rng = random.Random(hash((cfg.optim.seed, state["step"], rank)))
        rows = table.take(positions[rank]).to_pylist()
        tb = collate(rows, model.tokenizer, cfg.sequence, cfg.loss.group_size, rng)
        state["epoch"], state["batches_in_epoch"] = epoch, index + 1
        state["rows_seen"] += len(rows)
        stats.update(tb.stats)
        engine.train()
        out = step_losses(engine, tb, cfg.loss, engine.device)
        engine.backward(out.loss)
        engine.step()
        state["step"] += 1
        seconds = time.perf_counter() - started
        tokens = tb.num_tokens
        metrics = {
            "step": state["step"], "epoch": state["epoch"], "loss": out.loss.item(),
            "contrastive_loss": out.contrastive.item(), "generation_loss": out.generation.item(),
            "contrastive_accuracy": out.accuracy.item(), "tokens_per_s": tokens * world / seconds,
            "lr": scheduler.get_last_lr()[0], "rows_seen": state["rows_seen"],
            "resumed_from_step": state["resumed_from_step"],
            "batch_rows": fingerprint([r["query_id"] for r in rows], 12),
        }
        if out.distill is not None:
            metrics["distill_loss"] = out.distill.item()
        state["history"].append(metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['contrastive_accuracy']:.2f}", refresh=False)
        bar.update(1)
        done = state["step"] >= total_steps
        if done or state["step"] % cfg.checkpoint_every == 0:
            save_and_report(metrics)
        else:
            ray.train.report(metrics)
    bar.close()
    export(engine, model, cfg, loop_config, state, stats, rank)


def export(engine, model: O1Model, cfg: TrainConfig, loop_config: dict[str, Any], state: dict[str, Any],
           stats: Counter, rank: int) -> None:
    """Probe embeddings from the trained in-memory model, then (rank 0) the merged HF folder + history."""
    import deepspeed

    from o1e import storage

    probe = loop_config.get("probe") or {}
    module: O1Model = engine.module
    module.eval()
    gathered = (deepspeed.zero.GatheredParameters(list(module.parameters()))
                if cfg.deepspeed.zero_stage == 3 else nullcontext())
    with gathered:  # ZeRO-3: whole weights, taken before any forward re-partitions them
        state_dict = {k: v.detach().float().cpu().clone() for k, v in module.lm.state_dict().items()} \
            if rank == 0 else None
    probe_out = {}
    if probe.get("queries"):  # every rank runs it: under ZeRO-3 the forward itself is collective
        with torch.no_grad():
            probe_out = {
                "queries": module.embed_queries(probe["queries"], probe["thoughts"]).float().tolist(),
                "documents": module.embed_documents(probe["documents"]).float().tolist(),
            }
    every_rank = _gather_objects(dict(stats))
    if rank != 0:
        return
    stats = sum((Counter(s) for s in every_rank), Counter())
    fresh = build_model(cfg.model_copy(update={"deepspeed": cfg.deepspeed.model_copy(
        update={"gradient_checkpointing": False})}), loop_config["model_dir"])
    missing, unexpected = fresh.lm.load_state_dict(state_dict, strict=False)
    if unexpected or [k for k in missing if "lora_" in k]:
        raise RuntimeError(f"trained weights do not fit the export model: missing {missing}, unexpected {unexpected}")
    fresh.lm.config.use_cache = True
    out_url = storage.join(cfg.output, "model")
    with tempfile.TemporaryDirectory(prefix="o1e-export-") as tmp:
        fresh.save_pretrained(tmp, extra={"base_model": loop_config["model_dir"]})
        with open(os.path.join(tmp, "probe_embeddings.json"), "w") as f:
            json.dump({"probe": probe, **probe_out}, f)
        for root, _, files in os.walk(tmp):
            for name in files:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    storage.write_bytes(storage.join(out_url, os.path.relpath(path, tmp)), f.read())
    storage.write_text(storage.join(cfg.output, "metrics.jsonl"),
                       "".join(json.dumps(m) + "\n" for m in state["history"]))
    storage.write_json(storage.join(cfg.output, "data_stats.json"), dict(stats))

