"""Cross-device negatives over 2 real worker processes (gloo), against one process on the combined batch.

``global`` (the default): the workers' losses average to the combined batch's loss and their averaged
gradients are that loss's gradients. ``local`` (the reference code): every worker computes the combined
loss itself with gradients only through its own embeddings, so the averaged update is 1/W of it."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from o1e.train.config import LossConfig
from o1e.train.data import PAD_KEY
from o1e.train.losses import info_nce

GROUP = 4
DIM = 16


def batches(n_per_rank: list[int]):
    torch.manual_seed(0)
    total = sum(n_per_rank)
    q = F.normalize(torch.randn(total, DIM), dim=-1)
    d = F.normalize(torch.randn(total * GROUP, DIM), dim=-1)
    return q, d


def shared_keys(n_per_rank: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Passage keys where query 1's second passage is query 0's positive (a shared positive to mask), and
    each worker's positive keys, the second worker's two wide (a second positive)."""
    total = sum(n_per_rank)
    doc_keys = torch.stack([torch.arange(total * GROUP), torch.full((total * GROUP,), -1)], dim=1)
    doc_keys[GROUP + 1] = doc_keys[0]
    positives = []
    for rank, n in enumerate(n_per_rank):
        start = sum(n_per_rank[:rank])
        own = [[tuple(doc_keys[(start + i) * GROUP].tolist())] for i in range(n)]
        if rank == 1:
            own = [k + [(10_000 + i, -1)] for i, k in enumerate(own)]
        positives.append(torch.tensor(own))
    return doc_keys, positives


def _worker(rank: int, world: int, port: int, n_per_rank: list[int], out_dir: str, rule: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    q, d = batches(n_per_rank)
    doc_keys, positives = shared_keys(n_per_rank)
    start = sum(n_per_rank[:rank])
    q_local = q[start:start + n_per_rank[rank]].clone().requires_grad_(True)
    d_local = d[start * GROUP:(start + n_per_rank[rank]) * GROUP].clone().requires_grad_(True)
    keys_local = doc_keys[start * GROUP:(start + n_per_rank[rank]) * GROUP]
    cfg = LossConfig(group_size=GROUP, cross_device_gradient=rule)
    out = info_nce(q_local, d_local, GROUP, cfg, keys_local, positives[rank])
    out.loss.backward()
    torch.save({"loss": out.loss.detach(), "acc": out.accuracy, "q_grad": q_local.grad, "d_grad": d_local.grad},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    # gloo's teardown (destroy_process_group, or its threads at interpreter exit) sometimes aborts with
    # "terminate called without an active exception" on this CPU build; the results are already saved, so
    # leave without running C++ destructors.
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_workers(n_per_rank, tmp_path, rule="global"):
    mp.start_processes(_worker, args=(2, _free_port(), n_per_rank, str(tmp_path), rule), nprocs=2, join=True,
                       start_method="spawn")
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


def single_process(n_per_rank: list[int]):
    """The combined batch in one process: its embeddings (with their gradients) and its loss, backward done."""
    q, d = batches(n_per_rank)
    q.requires_grad_(True)
    d.requires_grad_(True)
    doc_keys, positives = shared_keys(n_per_rank)
    combined = info_nce(q, d, GROUP, LossConfig(group_size=GROUP), doc_keys, padded_positives(positives))
    combined.loss.backward()
    return q, d, combined


def test_cross_device_loss_equals_single_process_loss(tmp_path):
    n_per_rank = [3, 3]
    ranks = run_two_workers(n_per_rank, tmp_path)
    q, d, combined = single_process(n_per_rank)
    # Equal local batches: the mean of the workers' losses is the combined batch's loss.
    torch.testing.assert_close((ranks[0]["loss"] + ranks[1]["loss"]) / 2, combined.loss.detach())
    torch.testing.assert_close((ranks[0]["acc"] + ranks[1]["acc"]) / 2, combined.accuracy)
    # Gradients flow through the gather: averaged over workers (as DeepSpeed/DDP do), each piece's
    # gradient is the combined loss's gradient for that piece.
    q_grad = torch.cat([r["q_grad"] for r in ranks]) / 2
    d_grad = torch.cat([r["d_grad"] for r in ranks]) / 2
    torch.testing.assert_close(q_grad, q.grad)
    torch.testing.assert_close(d_grad, d.grad)


def test_cross_device_loss_with_unequal_worker_batches(tmp_path):
    """Skipped rows leave workers with different batch sizes; every query still sees every passage."""
    n_per_rank = [2, 3]
    ranks = run_two_workers(n_per_rank, tmp_path)
    q, d = batches(n_per_rank)
    logits = q @ d.T / 0.02
    logits[0, GROUP + 1] = float("-inf")  # query 0's positive again, among query 1's passages
    targets = torch.arange(5) * GROUP
    per_query = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(ranks[0]["loss"], per_query[:2].mean())
    torch.testing.assert_close(ranks[1]["loss"], per_query[2:].mean())


def padded_positives(positives: list[torch.Tensor]) -> torch.Tensor:
    width = max(p.shape[1] for p in positives)
    return torch.cat([torch.cat([p, torch.full((p.shape[0], width - p.shape[1], 2), PAD_KEY)], dim=1)
                      for p in positives])


@pytest.mark.parametrize("n_per_rank", [[3, 3], [2, 3]])
def test_local_cross_device_gradient_is_the_reference_codes(tmp_path, n_per_rank):
    ranks = run_two_workers(n_per_rank, tmp_path, rule="local")
    q, d, combined = single_process(n_per_rank)
    split = n_per_rank[0]
    for r, rows in zip(ranks, [slice(0, split), slice(split, None)]):
        # Each worker's loss and accuracy are the combined batch's, and its gradients are the combined
        # loss's gradients for its own pieces only: the average over 2 workers is half the combined update.
        torch.testing.assert_close(r["loss"], combined.loss.detach())
        torch.testing.assert_close(r["acc"], combined.accuracy)
        torch.testing.assert_close(r["q_grad"], q.grad[rows])
        torch.testing.assert_close(r["d_grad"], d.grad[rows.start * GROUP:None if rows.stop is None
                                                        else rows.stop * GROUP])
