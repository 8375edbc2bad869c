"""A BEIR ``corpus.jsonl`` as a Parquet dataset (schema ``corpus``), converted once and reused.

Stages that read a large corpus read this dataset instead of holding the JSONL in Python lists: row by
row, part by part, or only the columns they need. ``convert`` streams the JSONL (local or s3://) into
parts of ``part_rows`` rows, so its memory is bounded by one part, and checks what ``o1e.beir`` checks:
malformed lines and invalid UTF-8 (named by file and line, or rejects with ``on_bad_line="skip"``),
duplicate document ids (found with Arrow after the parse; the first copy is kept) and an empty corpus.

``prepare`` keeps the dataset under ``<cache_dir>/corpus/<key>``, where the key is the sha256 of the
file's bytes (and the bad-line policy): a later run on the same content finds it there and does not
convert again. The corpus fingerprint (``beir.Corpus.fingerprint``: sha256 over ``json.dumps([id,
title, text])`` per kept document) is computed during the conversion and kept in the manifest.

Ray-free: callers run these functions in a Ray task so that their memory is a worker's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from o1e import beir, schemas, storage
from o1e.beir import DatasetError, OnBadLine
from o1e.schemas import Reject

FORMAT_VERSION = 1
"""Part of the cache key: bump it when the conversion's output changes for the same input."""
PART_ROWS = 200_000
"""Documents per Parquet part (about 70 MB of MS MARCO text): the conversion's memory bound."""
READ_BATCH_ROWS = 50_000


@dataclass
class CorpusDataset:
    """A converted corpus: where its Parquet dataset is, how many documents, and its fingerprint."""

    url: str
    num_docs: int
    fingerprint: str
    source: str
    rejects: list[Reject] = field(default_factory=list)
    cached: bool = False
    """Found already converted (by an earlier run)."""

    def __len__(self) -> int:
        return self.num_docs


def file_sha256(url: str) -> str:
    digest = hashlib.sha256()
    with storage.open_input(url) as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(content_sha256: str, on_bad_line: OnBadLine) -> str:
    """The cache folder's name: the file's content plus what changes the conversion of that content."""
    return hashlib.sha256(json.dumps([FORMAT_VERSION, content_sha256, on_bad_line]).encode()).hexdigest()[:16]


def _part(rows: list[tuple[int, str, str, str]], first_row: int) -> pa.Table:
    lines, ids, titles, texts = zip(*rows)
    return pa.table({"row": np.arange(first_row, first_row + len(rows), dtype=np.int64),
                     "doc_id": pa.array(ids, pa.string()), "title": pa.array(titles, pa.string()),
                     "text": pa.array(texts, pa.string()), "line": pa.array(lines, pa.int64())})


def _part_ids(writer: storage.DatasetWriter) -> list[str]:
    return sorted(writer.committed())


def _duplicates(writer: storage.DatasetWriter) -> pa.Table:
    """(doc_id, line) of every copy after the first of a repeated id, in line order (Arrow group-by)."""
    ids = pa.concat_tables([writer.read_shard(s, ["doc_id", "line"]) for s in _part_ids(writer)])
    firsts = ids.group_by("doc_id", use_threads=False).aggregate([("line", "min"), ("line", "count")])
    repeated = firsts.filter(pc.greater(firsts.column("line_count"), 1))
    if repeated.num_rows == 0:
        return ids.schema.empty_table()
    copies = ids.filter(pc.is_in(ids.column("doc_id"), value_set=repeated.column("doc_id")))
    copies = copies.filter(pc.invert(pc.is_in(copies.column("line"), value_set=repeated.column("line_min"))))
    return copies.sort_by("line")


def _drop_rows(writer: storage.DatasetWriter, drop_lines: pa.Array) -> tuple[int, str]:
    """Rewrite the parts without the lines in ``drop_lines``, numbering rows anew; (documents, fingerprint)."""
    digest = hashlib.sha256()
    row = 0
    for shard_id in _part_ids(writer):
        table = writer.read_shard(shard_id)
        table = table.filter(pc.invert(pc.is_in(table.column("line"), value_set=drop_lines)))
        table = table.set_column(0, "row", pa.array(np.arange(row, row + table.num_rows, dtype=np.int64)))
        for doc_id, title, text in zip(*(table.column(c).to_pylist() for c in ("doc_id", "title", "text"))):
            digest.update(json.dumps([doc_id, title, text]).encode("utf-8"))
        storage.delete(storage.join(writer.url, storage.SHARDS_DIR, f"{shard_id}.json"))
        writer.commit_shard(shard_id, table)
        row += table.num_rows
    return row, digest.hexdigest()[:16]


def convert(source: str, url: str, on_bad_line: OnBadLine = "error", part_rows: int = PART_ROWS,
            extra: dict | None = None) -> CorpusDataset:
    """Convert the BEIR corpus file ``source`` into the ``corpus`` dataset at ``url``, streaming."""
    rejects: list[Reject] = []
    writer = storage.DatasetWriter(url, "corpus", overwrite=True)
    digest = hashlib.sha256()
    rows: list[tuple[int, str, str, str]] = []
    count = 0
    for number, obj in beir.read_jsonl(source, on_bad_line, rejects):
        doc_id, title, text = str(obj["_id"]), str(obj.get("title") or ""), str(obj.get("text") or "")
        digest.update(json.dumps([doc_id, title, text]).encode("utf-8"))
        rows.append((number, doc_id, title, text))
        if len(rows) == part_rows:
            writer.commit_shard(f"{count // part_rows:05d}", _part(rows, count))
            count += len(rows)
            rows = []
    if rows:
        writer.commit_shard(f"{count // part_rows:05d}", _part(rows, count))
        count += len(rows)
    if not count:
        raise DatasetError(f"{source}: the corpus is empty")
    fingerprint = digest.hexdigest()[:16]
    duplicates = _duplicates(writer)
    if duplicates.num_rows:
        line, doc_id = duplicates.column("line")[0].as_py(), duplicates.column("doc_id")[0].as_py()
        if on_bad_line == "error":
            raise DatasetError(f"{source} line {line}: duplicate document id {doc_id!r}")
        for line, doc_id in zip(duplicates.column("line").to_pylist(), duplicates.column("doc_id").to_pylist()):
            rejects.append(Reject(source, str(line), "duplicate_doc",
                                  f"{source} line {line}: duplicate document id {doc_id!r}"))
        rejects.sort(key=lambda r: int(r.row))  # file order, as a line-by-line reader meets them
        count, fingerprint = _drop_rows(writer, duplicates.column("line"))
    writer.finalize(extra={**(extra or {}), "source": source, "corpus_fingerprint": fingerprint,
                           "rejects": [vars(r) for r in rejects]})
    return CorpusDataset(url, count, fingerprint, source, rejects)


def open_cached(url: str, source: str) -> CorpusDataset | None:
    """The dataset a previous ``convert`` committed at ``url``, or None."""
    if not storage.is_dataset(url):
        return None
    manifest = storage.read_manifest(url)
    if manifest.schema != "corpus":
        return None
    rejects = [Reject(**r) for r in manifest.extra.get("rejects", [])]
    return CorpusDataset(url, manifest.num_rows, manifest.extra["corpus_fingerprint"], source, rejects, cached=True)


def prepare(source: str, cache_dir: str, on_bad_line: OnBadLine = "error", part_rows: int = PART_ROWS
            ) -> CorpusDataset:
    """The ``corpus`` dataset of ``source`` under ``<cache_dir>/corpus/<key>``: converted now, or found there."""
    content = file_sha256(source)
    url = storage.join(cache_dir, "corpus", cache_key(content, on_bad_line))
    found = open_cached(url, source)
    if found is not None:
        return found
    return convert(source, url, on_bad_line, part_rows, extra={"source_sha256": content, "on_bad_line": on_bad_line})


def missing_ids(url: str, doc_ids: list[str]) -> list[str]:
    """Those of ``doc_ids`` that the corpus at ``url`` does not hold, in the order given."""
    wanted = pa.array(sorted(set(doc_ids)), pa.string())
    found: set[str] = set()
    for batch in storage.iter_batches(url, READ_BATCH_ROWS, columns=["doc_id"]):
        column = batch.column(0)
        found.update(column.filter(pc.is_in(column, value_set=wanted)).to_pylist())
    return [d for d in doc_ids if d not in found]


def passages(titles: list[str], texts: list[str], sep: str = " ") -> list[str]:
    """Each document as ``title + sep + text``, stripped: the form BEIR's dense models encode
    (``beir.Corpus.passages``)."""
    return [(t + sep + x).strip() for t, x in zip(titles, texts)]


def read_rows(url: str, rows: np.ndarray | None = None, columns: tuple[str, ...] = ("doc_id", "title", "text")
              ) -> pa.Table:
    """The given rows of the corpus (all when ``rows`` is None), in the order of ``rows``. Reads one
    part at a time and keeps only the rows asked for."""
    schema = pa.schema([schemas.CORPUS.arrow.field(c) for c in ("row", *columns)])
    wanted = None if rows is None else np.unique(rows)
    if wanted is not None and not len(wanted):  # a shard with no documents
        return schema.empty_table()
    pieces = []
    for batch in storage.iter_batches(url, READ_BATCH_ROWS, ["row", *columns]):
        if wanted is not None:
            numbers = batch.column(0).to_numpy()
            at = np.minimum(np.searchsorted(wanted, numbers), len(wanted) - 1)
            batch = batch.filter(pa.array(wanted[at] == numbers))
        if batch.num_rows:
            pieces.append(batch)
    table = pa.Table.from_batches(pieces) if pieces else schema.empty_table()
    if rows is None:
        return table
    position = np.searchsorted(table.column("row").to_numpy(), rows)  # rows come sorted from the parts
    return table.take(pa.array(position))


def lengths(url: str, prefix: int = 0) -> np.ndarray:
    """Characters of each document's passage (plus ``prefix``), in row order: what ``plan_batches`` sorts by."""
    out = []
    for batch in storage.iter_batches(url, READ_BATCH_ROWS, columns=["title", "text"]):
        out.append(np.fromiter((prefix + len(p) for p in passages(batch.column(0).to_pylist(),
                                                                  batch.column(1).to_pylist())),
                               dtype=np.int64, count=batch.num_rows))
    return np.concatenate(out) if out else np.zeros(0, np.int64)
