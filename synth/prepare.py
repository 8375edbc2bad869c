"""``o1e synth prepare``: training rows (query, positives, hard negatives) from a BEIR train split or from
JSONL rows. Rows that already carry negatives (MS MARCO style) pass through; the others get hard
negatives mined from the corpus with BM25 or a dense encoder: the top ``depth`` passages minus the row's
positives (and the query's own id), of which ``count`` are kept.

The driver streams: it reads JSONL rows batch by batch (a BEIR split's rows come from the worker), asks
a ``synth.mining.MiningWorker`` in a Ray actor for each batch's negatives (a few batches in flight), and
commits the rows shard by shard as they complete. The corpus, its texts and the mining index live in the
worker only, so the driver's memory does not grow with the corpus, and with the rows only by the set of
query ids seen (duplicates are rejected) and the rejects.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Iterator

import pyarrow as pa

from o1e import beir, runs, schemas, storage
from o1e.progress import Counter, bar as progress_bar, wait_with_progress
from o1e.ray_utils import gpus_per_worker, init_ray, worker_cpus
from synth.config import PrepareConfig
from synth.mining import MiningWorker
from synth.report import console
from synth.training_rows import Row, read_jsonl_rows

class ShardWriter:
    """Rows in, consecutive ``shard_rows``-row shards out (named by number), each committed once full."""

    def __init__(self, writer: storage.DatasetWriter, shard_rows: int) -> None:
        self.writer, self.shard_rows = writer, shard_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = self.number = 0

    def add(self, rows: list[Row]) -> None:
        self.pending.append(pa.Table.from_pylist([r.__dict__ for r in rows], schema=schemas.TRAINING_ROWS.arrow))
        self.pending_rows += len(rows)
        while self.pending_rows >= self.shard_rows:
            table = pa.concat_tables(self.pending)
            self._commit(table.slice(0, self.shard_rows))
            rest = table.slice(self.shard_rows)
            self.pending, self.pending_rows = [rest], rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._commit(pa.concat_tables(self.pending))
        self.pending, self.pending_rows = [], 0

    def _commit(self, table: pa.Table) -> None:
        self.writer.commit_shard(f"{self.number:06d}", table)
        self.number += 1


def _get(ray, ref):
    """``ray.get``, with the worker's own error raised as it is (one line for the user, not Ray's)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, Exception):
            raise err.cause from None
        raise


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_prepare(cfg: PrepareConfig, show: bool = True) -> dict:
    started = time.perf_counter()
    cfg.check_outputs()
    src = cfg.dataset
    kind = src.format
    if kind == "auto":
        kind = "jsonl" if src.path.endswith((".jsonl", ".json")) and not storage.is_dir(src.path) else "beir"
    record = runs.RunRecord("synth", cfg, parents=[{"url": src.path, "split": src.split, "format": kind}])
    record.check_rerun("training_rows", runs.REJECTS)
    ray = init_ray(cfg.ray)
    worker = ray.remote(MiningWorker).options(**_worker_resources(ray, cfg)).remote(cfg, kind)
    try:
        loaded = _get(ray, worker.load.remote())
        mining = loaded["to_mine"] > 0 and cfg.mining.method != "none" and cfg.mining.count > 0
        if mining:
            _build_index(ray, worker, cfg, loaded["corpus"], show)
        writer = storage.DatasetWriter(record.url("training_rows"), "training_rows", overwrite=True, **record.lineage)
        rejects: list[dict] = list(loaded.get("rejects", []))
        bad_lines: list[beir.Reject] = []
        counts = {"rows": 0, "with_teacher_scores": 0}
        shards = ShardWriter(writer, cfg.shard_rows)
        if kind == "beir":
            step = cfg.mine_batch_rows
            requests = (worker.beir_rows.remote(start, step) for start in range(0, loaded["rows"], step))
            results = (_get(ray, ref) for ref in _ahead(requests, cfg.batches_in_flight))
        else:
            batches = _batches(read_jsonl_rows(src, rejects, bad_lines), cfg.mine_batch_rows)
            results = _mined_jsonl(ray, worker, batches, mining, cfg.batches_in_flight)
        progress = progress_bar(total=loaded.get("rows"), unit="row", disable=not show,
                                desc=f"mine negatives ({cfg.mining.method})" if mining else "read rows")
        for rows in results:
            progress.update(len(rows))
            counts["rows"] += len(rows)
            counts["with_teacher_scores"] += sum(r.pos_scores is not None and r.neg_scores is not None for r in rows)
            shards.add(rows)
        shards.close()
        progress.close()
    finally:
        ray.kill(worker)
    rejects += [runs.reject("synth", r.source, r.row, r.reason, r.detail) for r in bad_lines]
    summary = {
        "source": src.path, "format": kind, "split": src.split, "rows": counts["rows"],
        "passed_through": counts["rows"] - loaded["to_mine"], "with_teacher_scores": counts["with_teacher_scores"],
        "mined": loaded["to_mine"] if cfg.mining.method != "none" else 0,
        "mining": cfg.mining.method, "negatives_per_row": cfg.mining.count, "depth": cfg.mining.depth,
        "corpus": loaded["corpus"], "rejects": len(rejects),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    writer.finalize(extra={"summary": summary})
    record.write_rejects(rejects)
    summary = record.finish(summary, rows=counts["rows"], unit="training row")
    if show:
        console.print(f"[bold]prepared[/bold] {summary['rows']:,} training rows from {src.path} ({kind}, "
                      f"split {src.split}): {summary['passed_through']:,} carried negatives, "
                      f"{summary['mined']:,} mined with {cfg.mining.method} (top {cfg.mining.depth}, keep "
                      f"{cfg.mining.count}), {summary['rejects']:,} rejected -> {cfg.output}/training_rows",
                      soft_wrap=True)
    return summary


def _worker_resources(ray, cfg: PrepareConfig) -> dict:
    """The mining worker's share, as the dry run places it (``pipeline.resources``): ``ray``'s CPUs per
    worker, else a whole node's (the largest: one worker cannot span nodes); a GPU for dense mining where
    the cluster has one."""
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=1)
    gpus = gpus_per_worker(ray, cfg.ray) if cfg.mining.method in ("dense", "o1") else 0
    return {"num_cpus": worker_cpus(cfg.ray, 1, largest), "num_gpus": gpus}


def _build_index(ray, worker, cfg: PrepareConfig, corpus: int, show: bool) -> None:
    if cfg.mining.method == "bm25":
        _get(ray, worker.build_index.remote())
        return
    counter = ray.remote(Counter).options(num_cpus=0).remote()
    try:
        wait_with_progress(ray, {worker.build_index.remote(counter): "index"}, counter, corpus, "encode corpus",
                           "passage", show)
    except ray.exceptions.RayTaskError as err:
        raise (err.cause if isinstance(err.cause, Exception) else err) from None
    finally:
        ray.kill(counter)


def _ahead(requests: Iterator, depth: int) -> Iterator:
    """The items of ``requests`` (Ray refs), each submitted ``depth`` items before it is yielded."""
    queue: deque = deque()
    for ref in requests:
        queue.append(ref)
        if len(queue) > depth:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def _mined_jsonl(ray, worker, batches: Iterator[list[Row]], mining: bool, in_flight: int) -> Iterator[list[Row]]:
    """Each batch of JSONL rows with the mined negatives of its rows that carry none."""
    def requests():
        for rows in batches:
            to_mine = [r for r in rows if not r.negatives] if mining else []
            ref = worker.mine.remote([(r.query_id, r.query, r.positive_ids) for r in to_mine]) if to_mine else None
            yield rows, to_mine, ref

    for rows, to_mine, ref in _ahead(requests(), in_flight):
        if ref is not None:
            for row, (ids, texts) in zip(to_mine, _get(ray, ref)):
                row.negative_ids, row.negatives, row.neg_scores = ids, texts, None  # mined: no teacher scored them
        yield rows
