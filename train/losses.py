"""The joint loss of O1 Embedder: InfoNCE over groups + in-batch + cross-device negatives, generation loss,
optional KL distillation. Pure torch; ``torch.distributed`` only when a process group is running."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from train.config import LossConfig


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every worker's ``x`` concatenated along dim 0 in rank order, with gradients flowing back to each;
    also where this worker's rows start. Workers may hold different row counts (skipped rows).

    The backward of ``torch.distributed.nn.all_gather`` sums the gradients every rank computes for a
    piece; with the optimiser averaging gradients across ranks, the update equals that of the mean loss
    over the combined batch (tests/test_train_losses.py checks this against one process).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    counts = [int(s.item()) for s in sizes]
    padded = F.pad(x.contiguous(), (0, 0, 0, max(counts) - x.shape[0]))
    pieces = all_gather(padded)
    offset = sum(counts[: dist.get_rank()])
    return torch.cat([p[:c] for p, c in zip(pieces, counts)], dim=0), offset


@dataclass
class ContrastiveOutput:
    loss: torch.Tensor
    accuracy: torch.Tensor
    """Share of queries whose positive scores highest among every passage they are compared with."""
    group_scores: torch.Tensor
    """(queries, group_size) similarity / temperature of each query to its own group."""


def info_nce(query: torch.Tensor, docs: torch.Tensor, group_size: int, cfg: LossConfig) -> ContrastiveOutput:
    """InfoNCE on cosine similarity (inputs are L2-normalised), temperature ``cfg.temperature``.

    ``docs`` holds ``group_size`` passages per query, the positive first. With in-batch negatives every
    query is scored against every passage of the batch (and, cross-device, of every worker's batch).
    """
    n = query.shape[0]
    if docs.shape[0] != n * group_size:
        raise ValueError(f"{docs.shape[0]} passages for {n} queries of group size {group_size}")
    own = torch.einsum("qd,qgd->qg", query, docs.view(n, group_size, -1)) / cfg.temperature
    if not cfg.in_batch_negatives:
        logits, target = own, torch.zeros(n, dtype=torch.long, device=query.device)
    else:
        all_docs, offset = gather_with_grad(docs) if cfg.cross_device_negatives else (docs, 0)
        logits = query @ all_docs.T / cfg.temperature
        target = offset + torch.arange(n, device=query.device) * group_size
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    return ContrastiveOutput(loss, accuracy, own)


def distillation(group_scores: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) over each query's group, both softmaxed (teacher at ``temperature``)."""
    target = F.softmax(teacher.to(group_scores.dtype) / temperature, dim=-1)
    return F.kl_div(F.log_softmax(group_scores, dim=-1), target, reduction="batchmean")


def generation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions (thought + eos)."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                           ignore_index=-100)


@dataclass
class JointOutput:
    loss: torch.Tensor
    contrastive: torch.Tensor
    generation: torch.Tensor
    accuracy: torch.Tensor
    distill: torch.Tensor | None = None


def joint_loss(query_embeddings: list[torch.Tensor], doc_embeddings: torch.Tensor, gen_loss: torch.Tensor,
               group_size: int, cfg: LossConfig, teacher: torch.Tensor | None = None) -> JointOutput:
    """``λ·contrastive + (1−λ)·generation`` (+ distillation); several query embeddings (the two-``<emb>``
    variant) each get their own InfoNCE term, averaged."""
    outs = [info_nce(q, doc_embeddings, group_size, cfg) for q in query_embeddings]
    contrastive = torch.stack([o.loss for o in outs]).mean()
    lam = cfg.contrastive_weight
    loss = lam * contrastive + (1 - lam) * gen_loss
    distill = None
    if teacher is not None and cfg.distill_weight > 0:
        distill = torch.stack([distillation(o.group_scores, teacher, cfg.distill_temperature) for o in outs]).mean()
        loss = loss + cfg.distill_weight * distill
    return JointOutput(loss, contrastive, gen_loss, outs[-1].accuracy, distill)
