"""From the input datasets to scoring work: groups, rejects, shards and batches. Pure, no Ray.

A *group* is one query: its gold document (the first positive) and its non-empty candidate thoughts.
Queries that share a gold document form a *unit* that is never split across shards or batches, so
each member encodes a gold document once however many queries share it. Units keep the order in which
their gold documents first appear in ``training_rows``; shards and batches are consecutive runs of
units, so the plan (and every shard id) depends only on the inputs and the config, and a rerun after a
crash finds the same shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from o1e import runs

from committee.members import ScoringBatch


@dataclass
class Group:
    row: int
    """Row number in the ``training_rows`` table."""
    query_id: str
    gold: str
    candidate_indices: list[int]
    thoughts: list[str]


@dataclass
class Shard:
    shard_id: str
    groups: list[Group]
    batches: list[ScoringBatch] = field(default_factory=list)

    @property
    def num_candidates(self) -> int:
        return sum(len(g.thoughts) for g in self.groups)


def _reject(source: str, row: str, reason: str, detail: str) -> dict:
    return runs.reject("committee", source, row, reason, detail)


def build_groups(training: pa.Table, candidates: pa.Table, training_url: str = "training_rows",
                 candidates_url: str = "candidates") -> tuple[list[Group], list[dict]]:
    """Every usable query as a group, in ``training_rows`` order, and a reject for everything else."""
    rejects: list[dict] = []
    query_ids = training.column("query_id").to_pylist()
    row_of: dict[str, int] = {}
    for row, query_id in enumerate(query_ids):
        if query_id in row_of:
            rejects.append(_reject(training_url, query_id, "duplicate_query",
                                   f"query {query_id!r} appears again at row {row} (first at row "
                                   f"{row_of[query_id]}); only the first is used"))
        else:
            row_of[query_id] = row

    by_query: dict[str, dict[int, str]] = {}
    for query_id, index, thought in zip(candidates.column("query_id").to_pylist(),
                                        candidates.column("candidate_index").to_pylist(),
                                        candidates.column("thought").to_pylist()):
        key = f"{query_id}#{index}"
        if query_id not in row_of:
            rejects.append(_reject(candidates_url, key, "unknown_query",
                                   f"candidate {index} of query {query_id!r}: the query is not in training_rows"))
            continue
        thoughts = by_query.setdefault(query_id, {})
        if index in thoughts:
            rejects.append(_reject(candidates_url, key, "duplicate_candidate",
                                   f"query {query_id!r} has candidate_index {index} twice; the first is used"))
            continue
        thoughts[index] = thought or ""

    positives = training.column("positives").to_pylist()
    groups = []
    for query_id, row in row_of.items():
        gold = positives[row][0] if positives[row] else None
        if gold is None or not gold.strip():
            rejects.append(_reject(training_url, query_id, "missing_gold",
                                   f"query {query_id!r} has no gold document (its first positive is missing "
                                   "or empty)"))
            continue
        thoughts = by_query.get(query_id)
        if not thoughts:
            rejects.append(_reject(candidates_url, query_id, "no_candidates",
                                   f"query {query_id!r} has no candidate thoughts"))
            continue
        kept = [(i, t) for i, t in sorted(thoughts.items()) if t.strip()]
        if not kept:
            rejects.append(_reject(candidates_url, query_id, "empty_candidates",
                                   f"all {len(thoughts)} candidate thoughts of query {query_id!r} are empty"))
            continue
        groups.append(Group(row=row, query_id=query_id, gold=gold,
                            candidate_indices=[i for i, _ in kept], thoughts=[t for _, t in kept]))
    return groups, rejects


def gold_units(groups: list[Group]) -> list[list[Group]]:
    """Groups gathered by gold document, units in order of the gold document's first appearance."""
    units: dict[str, list[Group]] = {}
    for group in groups:
        units.setdefault(group.gold, []).append(group)
    return list(units.values())


def _pack(units: list[list[Group]], size: int) -> list[list[list[Group]]]:
    """Consecutive runs of units holding up to ``size`` groups (a unit larger than that stays whole)."""
    packs: list[list[list[Group]]] = []
    current: list[list[Group]] = []
    count = 0
    for unit in units:
        if current and count + len(unit) > size:
            packs.append(current)
            current, count = [], 0
        current.append(unit)
        count += len(unit)
    if current:
        packs.append(current)
    return packs


def make_batch(batch_id: str, units: list[list[Group]]) -> ScoringBatch:
    golds, gold_of_group, thoughts = [], [], []
    for unit in units:
        golds.append(unit[0].gold)
        for group in unit:
            gold_of_group.append(len(golds) - 1)
            thoughts.append(group.thoughts)
    return ScoringBatch(batch_id=batch_id, golds=golds, gold_of_group=gold_of_group, thoughts=thoughts)


def plan_shards(groups: list[Group], shard_size: int, batch_size: int) -> list[Shard]:
    shards = []
    for number, shard_units in enumerate(_pack(gold_units(groups), shard_size)):
        shard_id = f"{number:05d}"
        packs = _pack(shard_units, batch_size)
        batches = [make_batch(f"{shard_id}-{b:04d}", batch_units) for b, batch_units in enumerate(packs)]
        shard_groups = [group for batch_units in packs for unit in batch_units for group in unit]
        shards.append(Shard(shard_id=shard_id, groups=shard_groups, batches=batches))
    return shards
