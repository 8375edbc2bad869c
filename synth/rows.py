"""Reading training rows for synthesis: row checks, the example pool and stable shards (no Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from o1e import storage
from o1e.provenance import stable_seed
from o1e.synth.prompts import ExamplePool


def row_problem(query: str | None, positives: list[str] | None) -> tuple[str, str] | None:
    """(reason, detail) when a training row cannot be synthesised, else ``None``."""
    if query is None or not query.strip():
        return "empty_query", "the query text is empty"
    if not positives or not any(p and p.strip() for p in positives):
        return "missing_positive", "the row has no positive passage (needed as an in-context example response)"
    return None


def first_positive(positives: list[str]) -> str:
    return next(p for p in positives if p and p.strip())


class Reservoir:
    """A seeded uniform sample of at most ``capacity`` items of a stream (Algorithm R): the first
    ``capacity`` items fill the slots in order; item ``t`` after that replaces a random slot with
    probability ``capacity / (t + 1)``. Holds only the slots, never the stream."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.seen = 0

    def slots(self, count: int) -> np.ndarray:
        """The slot of each of the next ``count`` items (-1: not kept); a later item in the same call
        overwrites an earlier one in the same slot."""
        stream = np.arange(self.seen, self.seen + count, dtype=np.int64)
        slots = stream.copy()
        late = stream >= self.capacity
        if late.any():
            drawn = np.array([self.rng.integers(t + 1) for t in stream[late].tolist()], dtype=np.int64)
            slots[late] = np.where(drawn < self.capacity, drawn, -1)
        self.seen += count
        return slots


def load_pool(url: str, max_rows: int, seed: int, batch_rows: int = 8_192) -> ExamplePool:
    """The usable rows' query and first positive, in input order. When more than ``max_rows`` rows are
    usable, a seeded uniform sample of ``max_rows`` of them (still in input order): the pool, not the
    input, bounds the driver's memory. Up to ``max_rows`` every usable row is kept, so the pool (and every
    prompt) is the same as with no bound at all.

    Two passes over the columns, batch by batch: the first draws which rows the pool keeps and holds only
    their positions; the second reads those rows' texts into Arrow columns, so no Python string outlives
    its batch."""
    reservoir = Reservoir(max_rows, stable_seed(seed, "example pool"))
    kept = np.zeros(0, dtype=np.int64)
    position = 0
    for batch in storage.iter_batches(url, batch_rows, columns=["query", "positives"]):
        usable = position + np.array([offset for offset, (query, positives)
                                      in enumerate(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()))
                                      if row_problem(query, positives) is None], dtype=np.int64)
        position += batch.num_rows
        slots = reservoir.slots(len(usable))
        filling = max(0, min(len(usable), max_rows - len(kept)))  # the stream's first max_rows items, in order
        kept = np.concatenate([kept, usable[:filling]])
        for slot, row in zip(slots[filling:].tolist(), usable[filling:].tolist()):  # in stream order
            if slot >= 0:
                kept[slot] = row
    kept.sort()

    columns: list[list[pa.Array]] = [[], [], []]
    position = 0
    for batch in storage.iter_batches(url, batch_rows, columns=["query_id", "query", "positives"]):
        first, last = np.searchsorted(kept, [position, position + batch.num_rows])
        if last > first:
            rows = batch.take(pa.array(kept[first:last] - position))
            responses = pa.array([first_positive(p) for p in rows.column(2).to_pylist()], pa.large_string())
            for column, values in zip(columns, (rows.column(0), rows.column(1), responses)):
                column.append(values.cast(pa.large_string()))
        position += batch.num_rows
    # Kept as the batches' chunks: concatenating them would hold the pool twice at the peak.
    return ExamplePool(*(pa.chunked_array(c, type=pa.large_string()) for c in columns))


@dataclass
class Shard:
    shard_id: str
    first_row: int
    rows: pa.Table  # query_id, query, positives
    row_numbers: list[int] | None = None
    """Each row's position in the input when the shard's rows are not consecutive (incremental runs)."""

    def row_number(self, offset: int) -> int:
        return self.row_numbers[offset] if self.row_numbers is not None else self.first_row + offset


def shard_id(number: int) -> str:
    return f"{number:06d}"


def iter_shards(url: str, shard_size: int, skip: set[str] | frozenset = frozenset()) -> Iterator[Shard]:
    """The dataset cut into consecutive ``shard_size``-row shards, in manifest order (stable ids);
    shards named in ``skip`` are read past without being materialised."""
    columns = ["query_id", "query", "positives"]
    pending: list[pa.RecordBatch] = []
    pending_rows = number = first = 0
    for batch in storage.iter_batches(url, shard_size, columns=columns):
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= shard_size:
            table = pa.Table.from_batches(pending)
            head, tail = table.slice(0, shard_size), table.slice(shard_size)
            if shard_id(number) not in skip:
                yield Shard(shard_id(number), first, head.combine_chunks())
            number, first = number + 1, first + shard_size
            pending, pending_rows = tail.to_batches(), tail.num_rows
    if pending_rows:
        if shard_id(number) not in skip:
            yield Shard(shard_id(number), first, pa.Table.from_batches(pending).combine_chunks())


def count_shards(num_rows: int, shard_size: int) -> int:
    return -(-num_rows // shard_size)


def duplicate_first_rows(url: str) -> dict[str, int]:
    """Query ids that occur more than once -> the row number of their first occurrence (candidates are
    keyed by query id, so later occurrences are rejected)."""
    ids = pa.chunked_array([b.column(0) for b in storage.iter_batches(url, 1 << 18, columns=["query_id"])],
                           type=pa.string())
    counts = pc.value_counts(ids)
    dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(dup) == 0:
        return {}
    rows = pc.indices_nonzero(pc.is_in(ids, value_set=dup)).to_pylist()
    first: dict[str, int] = {}
    flat = ids.combine_chunks()
    for row in rows:
        first.setdefault(flat[row].as_py(), row)
    return first


def iter_new_shards(url: str, shard_size: int, known: pa.Array, prefix: str) -> Iterator[Shard]:
    """The rows whose query id is not in ``known``, in input order, cut into ``shard_size``-row shards
    named ``<prefix>-<number>``."""
    columns = ["query_id", "query", "positives"]
    rows: list[pa.Table] = []
    numbers: list[int] = []
    position = count = 0
    for batch in storage.iter_batches(url, shard_size, columns=columns):
        new = pc.invert(pc.is_in(batch.column(0), value_set=known.cast(batch.column(0).type)))
        keep = pc.indices_nonzero(new)
        if len(keep):
            rows.append(pa.Table.from_batches([batch]).take(keep))
            numbers.extend(position + i for i in keep.to_pylist())
        position += batch.num_rows
        while len(numbers) >= shard_size:
            table = pa.concat_tables(rows).combine_chunks()
            yield Shard(f"{prefix}-{shard_id(count)}", numbers[0], table.slice(0, shard_size), numbers[:shard_size])
            rows, numbers, count = [table.slice(shard_size)], numbers[shard_size:], count + 1
    if numbers:
        yield Shard(f"{prefix}-{shard_id(count)}", numbers[0], pa.concat_tables(rows).combine_chunks(), numbers)


def count_known(url: str, known: pa.Array) -> int:
    """How many of the dataset's rows have a query id in ``known``."""
    return sum(pc.sum(pc.is_in(batch.column(0), value_set=known.cast(batch.column(0).type))).as_py() or 0
               for batch in storage.iter_batches(url, 1 << 16, columns=["query_id"]))
