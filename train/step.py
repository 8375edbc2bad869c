"""One training step, Ray-free: its losses ((model, batch, loss config) -> losses) and its learning rate.

The Ray Train worker (``train/worker.py``) calls it with the DeepSpeed engine as ``forward``;
``bench/gpu_check.py`` calls it with a bare ``O1Model`` on a GPU machine without Ray or DeepSpeed.
"""

from __future__ import annotations

from typing import Callable

import math

import torch

from o1e.train.config import LossConfig, OptimConfig
from o1e.train.data import TrainingBatch
from o1e.train.losses import JointOutput, joint_loss

Forward = Callable[..., tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]]
"""(query batch, document batch) -> (generation loss, query embedding(s), document embeddings):
``O1Model.forward`` or the DeepSpeed engine around it."""


def step_losses(forward: Forward, batch: TrainingBatch, cfg: LossConfig, device: torch.device | str,
                two_pass: bool = False) -> JointOutput:
    """The joint loss of one batch: the batch moved to ``device`` (where the model is), one forward, the
    losses. ``two_pass``: the generation and the query embedding from two forwards (the naive alternative
    the single joint pass replaces; benchmarks only)."""
    batch = batch.to(device)
    gen, query, docs = forward(batch.query, batch.docs, two_pass=two_pass)
    return joint_loss(query, docs, gen, batch.group_size, cfg, batch.teacher, batch.doc_keys, batch.positive_keys)


def lr_factor(total_steps: int, optim: OptimConfig) -> Callable[[int], float]:
    """The multiplier of ``optim.lr`` at each optimiser step (0-based): warm-up over ``warmup_ratio`` of the
    steps, then linear decay to 0.

    ``optim.warmup`` ``linear``: (step + 1) / (warm-up + 1) while warming up. ``log``: the learning rates
    the reference code's DeepSpeed ``WarmupDecayLR`` (default curve) gives its steps, which run one step
    behind its formula: 0 at the first step, then log(s + 1) / log(warm-up) and the decay at s = step − 1
    (tests/test_train_model.py checks them against DeepSpeed's scheduler).
    """
    warmup = int(total_steps * optim.warmup_ratio)

    def linear(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    def log(step: int) -> float:
        s, steps = step - 1, max(2, warmup)
        if s < 0:
            return 0.0
        if s < steps:
            return math.log(s + 1) / math.log(steps)
        return max(0.0, (total_steps - s) / max(1, total_steps - steps))

    return log if optim.warmup == "log" else linear
