"""The joint loss of O1 Embedder: InfoNCE over groups + in-batch + cross-device negatives, generation loss,
KL distillation when the rows carry teacher scores. Pure torch; ``torch.distributed`` only when a process
group is running."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from o1e.train.config import LossConfig


def gather_rows(x: torch.Tensor, grad: Literal["global", "local", "none"] = "global") -> tuple[torch.Tensor, int]:
    """Every worker's ``x`` concatenated along dim 0 in rank order, and where this worker's rows start.
    Workers may hold different row counts (an epoch's last step).

    ``grad`` says where gradients flow back:
    - ``global``: to every worker's piece. The backward of ``torch.distributed.nn.all_gather`` sums what
      every rank computes for a piece; with the optimiser averaging gradients over ranks, the update equals
      that of the mean loss over the combined batch.
    - ``local``: only to this worker's own piece (the others are copies), as the reference code gathers.
    - ``none``: nowhere (keys, labels).
    tests/test_train_losses.py checks both gradient rules against one process.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    counts = [int(s.item()) for s in sizes]
    rank = dist.get_rank()
    padded = torch.cat([x, x.new_zeros((max(counts) - x.shape[0], *x.shape[1:]))]).contiguous()
    if grad == "global":
        from torch.distributed.nn.functional import all_gather

        pieces = list(all_gather(padded))
    else:
        pieces = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(pieces, padded.detach())
        if grad == "local":
            pieces[rank] = padded
    return torch.cat([p[:c] for p, c in zip(pieces, counts)], dim=0), sum(counts[:rank])


def gather_positive_keys(positive_keys: torch.Tensor) -> torch.Tensor:
    """Every worker's (queries, positives, 2) keys, the positives padded with ``PAD_KEY`` to the widest."""
    import torch.distributed as dist

    from o1e.train.data import PAD_KEY

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return positive_keys
    width = torch.tensor([positive_keys.shape[1]], device=positive_keys.device)
    dist.all_reduce(width, op=dist.ReduceOp.MAX)
    short = int(width.item()) - positive_keys.shape[1]
    if short:
        pad = positive_keys.new_full((positive_keys.shape[0], short, positive_keys.shape[2]), PAD_KEY)
        positive_keys = torch.cat([positive_keys, pad], dim=1)
    return gather_rows(positive_keys, grad="none")[0]


@dataclass
class ContrastiveOutput:
    loss: torch.Tensor
    accuracy: torch.Tensor
    """Share of queries whose positive scores highest among every passage they are compared with."""
    group_scores: torch.Tensor
    """(queries, group_size) similarity / temperature of each query to its own group."""


def shared_positive_mask(doc_keys: torch.Tensor, positive_keys: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(queries, passages) True where a passage has the text or id of one of the query's positives but is
    not its target: the query's own positive again (another query's copy, or a repeat in a group), never a
    negative. ``doc_keys``: (passages, 2) text and id keys; ``positive_keys``: (queries, k, 2)."""
    from o1e.train.data import NO_ID

    equal = positive_keys[:, :, None, :] == doc_keys[None, None, :, :]
    equal[..., 1] &= doc_keys[None, None, :, 1] != NO_ID  # two passages without ids are not the same passage
    same = equal.any(dim=-1).any(dim=1)
    same[torch.arange(target.shape[0], device=target.device), target] = False
    return same


def info_nce(query: torch.Tensor, docs: torch.Tensor, group_size: int, cfg: LossConfig,
             doc_keys: torch.Tensor | None = None, positive_keys: torch.Tensor | None = None) -> ContrastiveOutput:
    """InfoNCE on cosine similarity (inputs are L2-normalised), temperature ``cfg.temperature``.

    ``docs`` holds ``group_size`` passages per query, the positive first. With in-batch negatives every
    query is scored against every passage of the batch (and, cross-device, of every worker's batch, with
    gradients by ``cfg.cross_device_gradient``; ``local`` also scores every worker's queries). With
    keys (``train.data.TrainingBatch``) and ``cfg.mask_shared_positives``, a passage with the text or id of
    one of the query's positives is left out of its negatives.
    """
    n = query.shape[0]
    if docs.shape[0] != n * group_size:
        raise ValueError(f"{docs.shape[0]} passages for {n} queries of group size {group_size}")
    own = torch.einsum("qd,qgd->qg", query, docs.view(n, group_size, -1)) / cfg.temperature
    if not cfg.in_batch_negatives:
        logits, target = own, torch.zeros(n, dtype=torch.long, device=query.device)
        keys = None if doc_keys is None else doc_keys.view(n, group_size, -1)
    else:
        keys = doc_keys
        if not cfg.cross_device_negatives:
            all_docs, offset = docs, 0
        elif cfg.cross_device_gradient == "global":
            all_docs, offset = gather_rows(docs, grad="global")
            keys = None if doc_keys is None else gather_rows(doc_keys, grad="none")[0]
        else:
            # The reference's rule: every worker scores every query of the step against every passage, with
            # gradients only through its own pieces; averaged over W workers, that is 1/W of the combined
            # loss's gradient.
            query, _ = gather_rows(query, grad="local")
            all_docs, _ = gather_rows(docs, grad="local")
            keys = None if doc_keys is None else gather_rows(doc_keys, grad="none")[0]
            positive_keys = None if positive_keys is None else gather_positive_keys(positive_keys)
            n, offset = query.shape[0], 0
        logits = query @ all_docs.T / cfg.temperature
        target = offset + torch.arange(n, device=query.device) * group_size
    if cfg.mask_shared_positives and keys is not None and positive_keys is not None:
        if not cfg.in_batch_negatives:  # each query against its own group only
            mask = torch.stack([shared_positive_mask(k, p[None], t[None])[0]
                                for k, p, t in zip(keys, positive_keys, target)])
        else:
            mask = shared_positive_mask(keys, positive_keys, target)
        logits = logits.masked_fill(mask, float("-inf"))
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    return ContrastiveOutput(loss, accuracy, own)


def distillation(group_scores: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """The reference code's ``kl_div`` term: ``-mean_q Σ_g softmax(teacher/T) · log_softmax(student)`` over
    each query's own group (student scores = cosine / loss temperature). It is KL(teacher ‖ student) plus the
    teacher's entropy, a constant: the same gradient as the KL."""
    target = F.softmax(teacher.to(group_scores.dtype) / temperature, dim=-1)
    return -(target * F.log_softmax(group_scores, dim=-1)).sum(dim=-1).mean()


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
               group_size: int, cfg: LossConfig, teacher: torch.Tensor | None = None,
               doc_keys: torch.Tensor | None = None, positive_keys: torch.Tensor | None = None) -> JointOutput:
    """``λ·(contrastive + w·distillation) + (1−λ)·generation``, as the reference code adds its distillation
    term to the retrieval loss; distillation only with ``teacher`` scores and ``w = cfg.distill_weight > 0``.
    Several query embeddings (the two-``<emb>`` variant) each get their own terms, averaged."""
    outs = [info_nce(q, doc_embeddings, group_size, cfg, doc_keys, positive_keys) for q in query_embeddings]
    contrastive = torch.stack([o.loss for o in outs]).mean()
    retrieval = contrastive
    distill = None
    if teacher is not None and cfg.distill_weight > 0:
        distill = torch.stack([distillation(o.group_scores, teacher, cfg.distill_temperature) for o in outs]).mean()
        retrieval = contrastive + cfg.distill_weight * distill
    lam = cfg.contrastive_weight
    loss = lam * retrieval + (1 - lam) * gen_loss
    return JointOutput(loss, contrastive, gen_loss, outs[-1].accuracy, distill)
