"""The join of the two inputs, shard by shard, in bounded memory. Ray-free.

Each input is read once, batch by batch, and every row a shard scores is appended to that shard's
bucket in a local work folder (Arrow IPC files, one folder per shard, written by
``pyarrow.dataset.write_dataset``, which writes each batch as it comes). A shard's rows are then read
from its bucket when it is scored, so neither input is ever held whole, in whatever order its rows are.
"""

from __future__ import annotations

import itertools
import os
import shutil
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

BUCKET = "bucket"
ROW = "row"
_FORMAT = ds.IpcFileFormat()


def _tagged(batches: Iterable[pa.RecordBatch], bucket: np.ndarray, row: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The batches' rows that go to a bucket, each with its ``row`` and ``bucket``."""
    start = 0
    for batch in batches:
        stop = start + batch.num_rows
        keep = np.flatnonzero(bucket[start:stop] >= 0)
        if len(keep):
            taken = batch.take(pa.array(keep))
            yield pa.RecordBatch.from_arrays(
                [*taken.columns, pa.array(row[start:stop][keep], pa.int64()),
                 pa.array(bucket[start:stop][keep], pa.int32())],
                names=[*taken.schema.names, ROW, BUCKET])
        start = stop


def write_buckets(batches: Iterable[pa.RecordBatch], bucket: np.ndarray, row: np.ndarray, folder: str) -> None:
    """Append every input row with ``bucket[i] >= 0`` to bucket ``bucket[i]`` under ``folder``, with the
    column ``row`` = ``row[i]``. ``batches`` hold the input's rows in order; the folder is replaced."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    tagged = _tagged(batches, bucket, row)
    first = next(tagged, None)
    if first is None:
        return
    ds.write_dataset(itertools.chain([first], tagged), folder, schema=first.schema, format=_FORMAT,
                     partitioning=ds.partitioning(pa.schema([(BUCKET, pa.int32())])),
                     max_partitions=max(1024, int(bucket.max()) + 1), existing_data_behavior="overwrite_or_ignore")


def read_bucket(folder: str, bucket: int) -> pa.Table:
    """One bucket's rows (with ``row``), in no particular order."""
    return ds.dataset(os.path.join(folder, str(bucket)), format=_FORMAT).to_table()


def in_order(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table``'s rows ordered as ``rows`` lists their ``row`` values (each present once)."""
    present = table.column(ROW).to_numpy()
    sorter = np.argsort(present, kind="stable")
    return table.take(pa.array(sorter[np.searchsorted(present, rows, sorter=sorter)]))
