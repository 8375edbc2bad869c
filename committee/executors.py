"""Where the members score: in this process (``local``) or each member as its own Ray actor pool.

Both executors run the same planned shards and yield ``(shard, scores)`` where ``scores[m][g]`` is
member ``m``'s score vector for the shard's group ``g``. They run the same batches through the same
scorer code, so their results are identical row for row.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Iterable, Iterator

import numpy as np

from o1e import costs
from o1e.committee.config import CommitteeConfig, Placement
from o1e.committee.members import ScoringBatch, build_member
from o1e.committee.plan import Shard
from o1e.progress import bar as progress_bar
from o1e.ray_utils import InFlight, free_cpus, init_ray

ShardScores = list[list[np.ndarray]]


def _threads(placement: Placement) -> int:
    return max(1, int(placement.num_cpus))


def _join(shard: Shard, per_batch: dict[str, list[list[np.ndarray]]], num_members: int) -> ShardScores:
    """Per member, the batches' group scores concatenated in the shard's group order."""
    return [[vec for batch in shard.batches for vec in per_batch[batch.batch_id][m]] for m in range(num_members)]


class LocalExecutor:
    """Every member in this process, one after the other."""

    def __init__(self, cfg: CommitteeConfig) -> None:
        self.cfg = cfg
        # One process: the members run one after another, each may use every core.
        cores = float(os.cpu_count() or 1)
        self.placements = [Placement(replicas=1, num_cpus=cores if m.placement.num_cpus is None else m.placement.num_cpus,
                                     num_gpus=0.0) for m in cfg.members]
        self.members = [build_member(m, _threads(p)) for m, p in zip(cfg.members, self.placements)]
        self.ready_at = time.time()

    def members_ready_at(self) -> float:
        """Wall-clock time at which the last member had loaded its model."""
        return self.ready_at

    def run(self, shards: Iterable[Shard], total: int) -> Iterator[tuple[Shard, ShardScores]]:
        """``shards``: loaded one at a time as they are scored; ``total``: their queries (for progress)."""
        with progress_bar(total=total, desc="committee (local)", unit="query", disable=not self.cfg.progress) as bar:
            for shard in shards:
                per_batch = {}
                for batch in shard.batches:
                    per_batch[batch.batch_id] = [member.score(batch) for member in self.members]
                    bar.update(len(batch.thoughts))
                yield shard, _join(shard, per_batch, len(self.members))

    def close(self) -> None:
        self.members = []


class MemberActor:
    """A Ray actor holding one member's scorer (model loaded once, reused for every batch)."""

    def __init__(self, member_config, threads: int) -> None:
        self.member = build_member(member_config, threads)
        self.ready_at = time.time()

    def score(self, batch: ScoringBatch) -> list[np.ndarray]:
        return self.member.score(batch)

    def get_ready_at(self) -> float:
        return self.ready_at


class RayExecutor:
    """Every member as its own actor pool. The actors start (and load their models) as soon as the
    executor is made, while the driver reads and plans. Batches go to whichever actor of a pool has room
    (``calls_per_actor`` outstanding each, so an actor never waits on the driver), and
    ``shards_in_flight`` shards are queued at once so every pool keeps working while the driver votes and
    commits a finished shard."""

    calls_per_actor = 2

    def __init__(self, cfg: CommitteeConfig) -> None:
        self.cfg = cfg
        self.ray = ray = init_ray(cfg.ray)
        self.placements = cfg.placements(free_cpus(ray), ray.cluster_resources().get("GPU", 0))
        self.pools = []
        self.holdings = []
        for member, placement in zip(cfg.members, self.placements):
            actor = ray.remote(MemberActor).options(
                num_cpus=placement.num_cpus, num_gpus=placement.num_gpus, max_restarts=1, max_task_retries=1,
            )
            self.pools.append([actor.remote(member, _threads(placement)) for _ in range(placement.replicas)])
            self.holdings.append(costs.hold(placement.replicas, placement.num_cpus, placement.num_gpus))

    def run(self, shards: Iterable[Shard], total: int) -> Iterator[tuple[Shard, ShardScores]]:
        """``shards``: loaded one at a time, ``shards_in_flight`` ahead of the one being voted; ``total``:
        their queries (for progress)."""
        ray, pools = self.ray, self.pools
        num_members = len(pools)
        upcoming = enumerate(shards)
        queues = [deque() for _ in pools]  # per member: (shard index, batch id, batch ref) not yet sent
        calls = InFlight(ray, [len(pool) for pool in pools], self.calls_per_actor)
        in_flight: dict[int, Shard] = {}
        received: dict[int, dict[str, list]] = {}
        sizes: dict[str, int] = {}

        def submit() -> None:
            shard_index, shard = next(upcoming, (None, None))
            if shard is None:
                return
            in_flight[shard_index] = shard
            received[shard_index] = {b.batch_id: [None] * num_members for b in shard.batches}
            for batch in shard.batches:
                sizes[batch.batch_id] = len(batch.thoughts)
                batch_ref = ray.put(batch)  # sent once, read by every member
                for queue in queues:
                    queue.append((shard_index, batch.batch_id, batch_ref))

        def dispatch() -> None:
            for m, pool in enumerate(pools):
                while queues[m] and calls.room(m):
                    shard_index, batch_id, batch_ref = queues[m].popleft()
                    calls.submit(lambda a: pool[a].score.remote(batch_ref), (shard_index, batch_id, m), m)

        def shard_done(shard_index: int) -> bool:
            return all(all(r is not None for r in per) for per in received[shard_index].values())

        for _ in range(self.cfg.shards_in_flight):
            submit()
        dispatch()
        with progress_bar(total=total, desc=f"committee ({num_members} member pools)", unit="query",
                          disable=not self.cfg.progress) as bar:
            while calls:
                (shard_index, batch_id, m), _, ref = calls.next_done()
                slots = received[shard_index][batch_id]
                slots[m] = ray.get(ref)
                if all(r is not None for r in slots):
                    bar.update(sizes.pop(batch_id))
                finished = shard_done(shard_index)
                if finished:
                    submit()
                dispatch()
                if finished:
                    shard = in_flight.pop(shard_index)
                    yield shard, _join(shard, received.pop(shard_index), num_members)

    def members_ready_at(self) -> float:
        """Wall-clock time at which the last member actor had loaded its model."""
        return max(self.ray.get([actor.get_ready_at.remote() for pool in self.pools for actor in pool]))

    def close(self) -> None:
        for pool in self.pools:
            for actor in pool:
                self.ray.kill(actor)
        self.pools = []
        for holding in self.holdings:
            costs.release(holding)


def make_executor(cfg: CommitteeConfig):
    return RayExecutor(cfg) if cfg.executor == "ray" else LocalExecutor(cfg)
