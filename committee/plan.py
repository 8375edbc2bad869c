"""From the input datasets to scoring work: rejects, shards and batches. Pure, no Ray.

A *group* is one query: its gold document (the first positive) and its non-empty candidate thoughts.
Queries that share a gold document form a *unit* that is never split across shards or batches, so
each member encodes a gold document once however many queries share it. Units keep the order in which
their gold documents first appear in ``training_rows``; shards and batches are consecutive runs of
units, so the plan (and every shard id) depends only on the inputs and the config, and a rerun after a
crash finds the same shards.

The plan is made from compact columns only (``TrainingIndex``, ``CandidateIndex``: ids, a hash of each
gold document, whether a thought is empty), so planning a million queries holds no passage or thought
text. A shard's texts are read when it is scored and made into groups by ``assemble_shard``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from o1e.schemas import Reject

from o1e.committee.members import ScoringBatch

NOT_VOTED = -1
"""``Plan.row_shard`` / ``Plan.candidate_row`` of a row that no shard scores."""


@dataclass
class Group:
    row: int
    """Row number in the shard's table of training rows."""
    query_id: str
    gold: str
    candidate_indices: list[int]
    thoughts: list[str]


@dataclass
class Shard:
    shard_id: str
    groups: list[Group]
    batches: list[ScoringBatch] = field(default_factory=list)
    rows: pa.Table | None = None
    """The shard's ``training_rows`` rows (``Group.row`` indexes them)."""

    @property
    def num_candidates(self) -> int:
        return sum(len(g.thoughts) for g in self.groups)


@dataclass
class TrainingIndex:
    """Per ``training_rows`` row: its query id, the first row of that query id, a hash of its gold
    document and whether it has one."""

    query_ids: pa.ChunkedArray
    distinct_ids: pa.Array
    """The distinct query ids, in order of first appearance."""
    first_row: np.ndarray
    """int64, per distinct query id: its first row."""
    gold_hash: np.ndarray
    """uint64; gold documents that hash alike are put in one shard (and told apart there by their text)."""
    has_gold: np.ndarray

    def row_of(self, query_ids: pa.Array) -> np.ndarray:
        """Each query id's first row in ``training_rows``, or ``NOT_VOTED`` where it has none."""
        code = pc.index_in(query_ids, value_set=self.distinct_ids)
        rows = self.first_row[pc.fill_null(code, 0).to_numpy(zero_copy_only=False)]
        rows[~pc.is_valid(code).to_numpy(zero_copy_only=False)] = NOT_VOTED
        return rows


@dataclass
class CandidateIndex:
    """Per ``candidates`` row: the ``training_rows`` row of its query (``NOT_VOTED``: unknown query), its
    candidate index and whether its thought is empty; and the rejects of unknown queries."""

    row: np.ndarray
    candidate_index: np.ndarray
    empty: np.ndarray
    unknown: list[tuple[int, Reject]]
    """(candidate row, reject) of each candidate whose query is not in ``training_rows``."""


@dataclass
class ShardPlan:
    shard_id: str
    rows: np.ndarray
    """``training_rows`` row numbers of the shard's queries, in the order they are voted and written."""
    num_candidates: int

    @property
    def num_queries(self) -> int:
        return len(self.rows)


@dataclass
class Plan:
    shards: list[ShardPlan]
    rejects: list[Reject]
    row_shard: np.ndarray
    """Per ``training_rows`` row: the position in ``shards`` of the shard that votes it, or ``NOT_VOTED``."""
    candidate_row: np.ndarray
    """Per ``candidates`` row: the ``training_rows`` row of the group that scores it, or ``NOT_VOTED``
    (rejected, a repeat, or an empty thought)."""

    @property
    def num_queries(self) -> int:
        return sum(s.num_queries for s in self.shards)


def gold_of(positives: list[str] | None) -> str | None:
    """A training row's gold document: its first positive, unless missing or blank."""
    gold = positives[0] if positives else None
    return gold if gold is not None and gold.strip() else None


def text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def index_training(query_ids: pa.ChunkedArray, positives: Iterable[pa.Array]) -> TrainingIndex:
    """``positives``: the ``positives`` column batch by batch, in row order."""
    hashes, present = [], []
    for batch in positives:
        golds = [gold_of(p) for p in batch.to_pylist()]
        present.append(np.array([g is not None for g in golds], dtype=bool))
        hashes.append(np.array([0 if g is None else text_hash(g) for g in golds], dtype=np.uint64))
    encoded = query_ids.combine_chunks().dictionary_encode()  # one hash pass: codes in order of first appearance
    distinct, code = encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)
    del encoded
    # So a query id's first row is where ``code`` first exceeds every code before it (no sort of the column).
    highest = np.maximum.accumulate(code)
    first_row = np.flatnonzero(np.concatenate([[True], highest[1:] > highest[:-1]]) if len(code) else highest)
    del code, highest
    return TrainingIndex(query_ids=query_ids, distinct_ids=distinct, first_row=first_row,
                         gold_hash=np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
                         has_gold=np.concatenate(present) if present else np.zeros(0, bool))


def index_candidates(batches: Iterable[pa.RecordBatch], training: TrainingIndex, num_rows: int,
                     candidates_url: str = "candidates") -> CandidateIndex:
    """``batches``: the ``candidates`` rows in order (``query_id``, ``candidate_index``, ``thought``),
    ``num_rows`` of them (the arrays are filled in place: no list of parts joined at the end)."""
    rows = np.empty(num_rows, np.int32)
    indices = np.empty(num_rows, np.int32)
    empty = np.empty(num_rows, bool)
    unknown = []
    start = 0
    for batch in batches:
        stop = start + batch.num_rows
        if stop > num_rows:
            raise ValueError(f"{candidates_url}: more than the {num_rows} rows its manifest lists")
        row = rows[start:stop] = training.row_of(batch.column("query_id"))
        index = indices[start:stop] = batch.column("candidate_index").cast(pa.int32()).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(row == NOT_VOTED):
            query_id = batch.column("query_id")[i].as_py()
            unknown.append((start + i, Reject(candidates_url, f"{query_id}#{index[i]}", "unknown_query",
                                               f"candidate {index[i]} of query {query_id!r}: the query is not "
                                               "in training_rows")))
        blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(batch.column("thought"))), 0)
        empty[start:stop] = pc.fill_null(blank, True).to_numpy(zero_copy_only=False)
        start = stop
    return CandidateIndex(row=rows[:start], candidate_index=indices[:start], empty=empty[:start], unknown=unknown)


def plan_committee(training: TrainingIndex, candidates: CandidateIndex, shard_size: int,
                   training_url: str = "training_rows", candidates_url: str = "candidates") -> Plan:
    """Every usable query in a shard, and a reject for everything else (in the order: repeated queries,
    then candidates in their row order, then queries in theirs)."""
    num_rows = len(training.query_ids)
    is_first = np.zeros(num_rows, dtype=bool)
    is_first[training.first_row] = True
    repeated = np.flatnonzero(~is_first)
    rejects = []
    for row, first in zip(repeated, training.row_of(training.query_ids.take(pa.array(repeated)))):
        query_id = training.query_ids[row].as_py()
        rejects.append(Reject(training_url, query_id, "duplicate_query",
                               f"query {query_id!r} appears again at row {row} (first at row {first}); only the "
                               "first is used"))

    # The first of each (query, candidate index) is kept; later ones are repeats.
    candidate_row = candidates.row  # becomes the plan's: NOT_VOTED where no shard scores the candidate
    repeat_at = _repeats(candidate_row, candidates.candidate_index)
    known = candidate_row != NOT_VOTED
    first = known.copy()
    first[repeat_at] = False
    repeats = []
    for position in np.sort(repeat_at[known[repeat_at]]):
        query_id = training.query_ids[candidate_row[position]].as_py()
        index = int(candidates.candidate_index[position])
        repeats.append((position, Reject(candidates_url, f"{query_id}#{index}", "duplicate_candidate",
                                          f"query {query_id!r} has candidate_index {index} twice; the first is "
                                          "used")))
    rejects += [reject for _, reject in sorted(candidates.unknown + repeats, key=lambda x: x[0])]

    distinct = np.bincount(candidate_row[first], minlength=num_rows)
    usable = first & ~candidates.empty
    non_empty = np.bincount(candidate_row[usable], minlength=num_rows)
    query_rows = np.sort(training.first_row)
    has_gold = training.has_gold[query_rows]
    voted = query_rows[has_gold & (non_empty[query_rows] > 0)]
    for row in query_rows[~has_gold | (non_empty[query_rows] == 0)]:
        query_id = training.query_ids[row].as_py()
        if not training.has_gold[row]:
            rejects.append(Reject(training_url, query_id, "missing_positive",
                                   f"query {query_id!r} has no gold document (its first positive is missing "
                                   "or empty)"))
        elif not distinct[row]:
            rejects.append(Reject(candidates_url, query_id, "no_candidates",
                                   f"query {query_id!r} has no candidate thoughts"))
        else:
            rejects.append(Reject(candidates_url, query_id, "empty_candidates",
                                   f"all {distinct[row]} candidate thoughts of query {query_id!r} are empty"))

    # Units by gold document in order of first appearance (dictionary codes are), packed into shards.
    unit = pc.dictionary_encode(pa.array(training.gold_hash[voted])).indices.to_numpy(zero_copy_only=False)
    ordered_rows = voted[np.argsort(unit, kind="stable")]
    unit_sizes = np.bincount(unit)
    del unit
    row_shard = np.full(num_rows, NOT_VOTED, dtype=np.int32)
    shards: list[ShardPlan] = []
    start = first_unit = 0
    for units in units_per_pack(unit_sizes.tolist(), shard_size):
        count = int(unit_sizes[first_unit:first_unit + units].sum())
        shard_rows = ordered_rows[start:start + count]
        row_shard[shard_rows] = len(shards)
        shards.append(ShardPlan(f"{len(shards):05d}", shard_rows, int(non_empty[shard_rows].sum())))
        start, first_unit = start + count, first_unit + units
    scored = usable.copy()
    scored[scored] = row_shard[candidate_row[scored]] != NOT_VOTED
    candidate_row[~scored] = NOT_VOTED
    return Plan(shards=shards, rejects=rejects, row_shard=row_shard, candidate_row=candidate_row)


def _repeats(row: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Positions of (row, index) pairs seen at an earlier position. Repeats are rare: a sort of the pairs as
    one int64 key says whether there are any before the pairs are sorted with their positions."""
    if len(row) < 2:
        return np.zeros(0, np.int64)
    low = int(index.min())
    width = int(index.max()) - low + 1
    key = row.astype(np.int64) * width + (index - low)
    key.sort()
    if not (key[1:] == key[:-1]).any():
        return np.zeros(0, np.int64)
    del key
    order = np.lexsort((index, row))  # stable: a repeat sorts after its first
    same = row[order[1:]] == row[order[:-1]]
    same &= index[order[1:]] == index[order[:-1]]
    return order[1:][same]


def units_per_pack(sizes: list[int], limit: int) -> list[int]:
    """How many units each pack takes when consecutive units of these sizes are packed up to ``limit``
    groups (a unit larger than that stays whole)."""
    packs, units, count = [], 0, 0
    for size in sizes:
        if units and count + size > limit:
            packs.append(units)
            units, count = 0, 0
        units += 1
        count += size
    if units:
        packs.append(units)
    return packs


def assemble_shard(plan: ShardPlan, training: pa.Table, candidates: pa.Table, batch_size: int) -> Shard:
    """The shard's groups and scoring batches from its texts.

    ``training``: the shard's ``training_rows`` rows in ``plan.rows`` order (``query_id``, ``positives``);
    ``candidates``: its scored candidates (``row``: the training row, ``candidate_index``, ``thought``)
    in any order."""
    query_ids = training.column("query_id").to_pylist()
    golds = [gold_of(p) for p in training.column("positives").to_pylist()]
    position = {int(row): i for i, row in enumerate(plan.rows)}
    thoughts: list[list[tuple[int, str]]] = [[] for _ in query_ids]
    for row, index, thought in zip(candidates.column("row").to_pylist(),
                                   candidates.column("candidate_index").to_pylist(),
                                   candidates.column("thought").to_pylist()):
        thoughts[position[row]].append((index, thought))
    groups = []
    for i, (query_id, gold, kept) in enumerate(zip(query_ids, golds, thoughts)):
        kept.sort()
        groups.append(Group(row=i, query_id=query_id, gold=gold, candidate_indices=[c for c, _ in kept],
                            thoughts=[t for _, t in kept]))
    units = gold_units(groups)
    packs = _pack(units, batch_size)
    batches = [make_batch(f"{plan.shard_id}-{b:04d}", batch_units) for b, batch_units in enumerate(packs)]
    return Shard(shard_id=plan.shard_id, groups=[g for unit in units for g in unit], batches=batches,
                 rows=training)


def gold_units(groups: list[Group]) -> list[list[Group]]:
    """Groups gathered by gold document, units in order of the gold document's first appearance."""
    units: dict[str, list[Group]] = {}
    for group in groups:
        units.setdefault(group.gold, []).append(group)
    return list(units.values())


def _pack(units: list[list[Group]], size: int) -> list[list[list[Group]]]:
    """Consecutive runs of units holding up to ``size`` groups (a unit larger than that stays whole)."""
    packs, start = [], 0
    for count in units_per_pack([len(unit) for unit in units], size):
        packs.append(units[start:start + count])
        start += count
    return packs


def make_batch(batch_id: str, units: list[list[Group]]) -> ScoringBatch:
    golds, gold_of_group, thoughts = [], [], []
    for unit in units:
        golds.append(unit[0].gold)
        for group in unit:
            gold_of_group.append(len(golds) - 1)
            thoughts.append(group.thoughts)
    return ScoringBatch(batch_id=batch_id, golds=golds, gold_of_group=gold_of_group, thoughts=thoughts)
