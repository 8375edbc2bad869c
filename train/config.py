"""The train stage's config (``o1e train``). Every default is the paper's recipe (../shared/PAPER.md §3)."""

from __future__ import annotations

import os
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from o1e.config import Section, StageConfig, added
from o1e.ray_utils import RayConfig
from o1e.sequences import SequenceConfig

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


class LossConfig(Section):
    temperature: float = Field(0.02, gt=0)
    group_size: int = Field(16, ge=1)
    """Passages per query: 1 positive + (group_size - 1) hard negatives, sampled with repetition when short."""
    in_batch_negatives: bool = True
    cross_device_negatives: bool = True
    """Gather every worker's passage embeddings as extra negatives."""
    cross_device_gradient: Literal["global", "local"] = added("global", since="0.2.0")
    """How gradients cross the gather. ``global``: through every worker's passages, so the update is exactly
    that of ``λ·contrastive + (1−λ)·generation`` over the combined batch, whatever the number of workers W.
    ``local`` (the reference code, ``train/configs/paper_qwen2.5-7b.yaml``): each worker scores every
    query of the step against every passage with gradients only through its own embeddings; after the
    optimiser averages over workers the contrastive term weighs λ/W against 1−λ (0.1 : 0.2 on 8 GPUs)."""
    contrastive_weight: float = Field(0.8, ge=0.0, le=1.0)
    """λ in ``λ·contrastive + (1−λ)·generation``."""
    mask_shared_positives: bool = True
    """Leave out of a query's negatives every passage with the text or id of one of its positives (queries
    sharing a gold passage, repeats). The reference code does not (``false`` reproduces it)."""
    distill_weight: float = Field(1.0, ge=0.0)
    """Weight ``w`` of the KL distillation term, used when the rows carry ``teacher_scores`` (0: off). The
    reference recipe trains with distillation on, ``w`` 1, inside ``λ·(contrastive + w·distill)``."""
    distill_temperature: float = Field(1.0, gt=0)
    """Softmax temperature of the teacher scores (the reference code: 1, the raw scores)."""


class LoraConfig(Section):
    enabled: bool = True
    """LoRA through peft (merged at the end); ``false``: full fine-tuning."""
    r: int = Field(32, ge=1)
    alpha: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    modules_to_save: list[str] = []
    """Modules trained in full beside the adapters (e.g. ``embed_tokens``, ``lm_head``)."""
    train_new_tokens: bool = False
    """Also train the embedding and LM-head rows of the four O1 tokens (peft trainable tokens; nothing else
    of those matrices). ``false``, as the reference code: they keep the rows resizing gave them
    (transformers' mean-resizing initialisation) and only the adapters learn."""


class OptimConfig(Section):
    lr: float = Field(1e-4, gt=0)
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup: Literal["linear", "log"] = added("linear", since="0.2.0")
    """Warm-up curve. ``linear``, as the paper says; ``log``: what the reference code's DeepSpeed
    ``WarmupDecayLR`` does by default (its first step at lr 0). Both decay linearly afterwards."""
    weight_decay: float = Field(0.0, ge=0.0)
    epochs: int = Field(1, ge=1)
    batch_size_per_worker: int = Field(8, ge=1)
    """Queries per worker per step (the paper: 8 on each of 8 GPUs)."""
    max_grad_norm: float = Field(1.0, ge=0.0)
    seed: int = 42


class DeepSpeedSection(Section):
    zero_stage: Literal[1, 2, 3] = 1
    """ZeRO stage; the JSON config shipped in train/configs/ds_zero<stage>.json is used unless ``config`` is set."""
    config: str | None = None
    """A DeepSpeed JSON config of your own (local path); batch sizes and precision are filled in from here."""
    precision: Literal["bf16", "fp32"] = "bf16"
    gradient_checkpointing: bool = True

    def config_path(self) -> str:
        return self.config or os.path.join(CONFIG_DIR, f"ds_zero{self.zero_stage}.json")


class TrainConfig(StageConfig):
    """Jointly fine-tune a causal LM to write thoughts and embed query + thought (O1 Embedder)."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + (
        "num_workers", "storage_path", "checkpoint_every", "max_failures", "probe_size")

    data: str = ""
    """The ``training`` dataset (local folder or s3:// prefix) written by the committee stage."""
    model: str = ""
    """Base causal LM: a Hugging Face folder (local or s3://)."""
    sequence: SequenceConfig = SequenceConfig()
    loss: LossConfig = LossConfig()
    lora: LoraConfig = LoraConfig()
    optim: OptimConfig = OptimConfig()
    deepspeed: DeepSpeedSection = DeepSpeedSection()
    num_workers: int = Field(2, ge=1)
    """Ray Train workers (one per GPU on a GPU cluster)."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimiser steps (``None``: the epochs decide)."""
    checkpoint_every: int = Field(100, ge=1)
    """Report a checkpoint to Ray Train storage every this many steps (and at the end)."""
    max_failures: int = Field(3, ge=0)
    """Worker failures (a lost worker or node, a crash) survived by restarting from the latest checkpoint.
    A worker's config, data, storage or model-folder error is not retried: it would fail the same way."""
    storage_path: str | None = None
    """Ray Train storage for checkpoints (local or s3://); ``None``: ``<output>/ray``."""
    probe_size: int = Field(4, ge=0)
    """Queries and passages embedded by the final in-memory model and saved beside it, to check reloads."""
    output: str = "outputs/train"
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if not self.loss.in_batch_negatives and self.loss.cross_device_negatives:
            raise ValueError("loss.cross_device_negatives needs loss.in_batch_negatives")
        if self.lora.train_new_tokens and {"embed_tokens", "lm_head"} & set(self.lora.modules_to_save):
            raise ValueError("lora.train_new_tokens trains rows of matrices lora.modules_to_save already trains whole")
        if self.sequence.max_length < self.sequence.query_max_tokens + 6:
            raise ValueError("sequence.max_length must leave room for the query and the special tokens")
        return self

    def output_urls(self) -> list[str]:
        return [self.output] + ([self.storage_path] if self.storage_path else [])
