"""``o1e synth prepare``: training rows (query, positives, hard negatives) from a BEIR train split or from
JSONL rows. Rows that already carry negatives (MS MARCO style) pass through; the others get hard
negatives mined from the corpus with BM25 or a dense encoder: the top ``depth`` passages minus the row's
positives (and the query's own id), of which ``count`` are kept.

The driver streams: it reads JSONL rows batch by batch (a BEIR split's rows come from the worker), asks
a ``synth.mining.MiningWorker`` in a Ray actor for each batch's negatives (a few batches in flight), and
commits the rows shard by shard as they complete. The corpus, its texts and the mining index live in the
worker only, so the driver's memory does not grow with the corpus, and with the rows only by the set of
query ids seen (duplicates are rejected) and the rejects. A small source (``actor_min_bytes``) gets the
same worker in the driver's own process instead.
"""

from __future__ import annotations

import time
from typing import Iterator

import pyarrow as pa

from o1e import beir, costs, runs, schemas, storage
from o1e.config import ConfigError
from o1e.progress import Counter, Show, bar as progress_bar, counter_bar
from o1e.ray_utils import as_finished, cpus_per_worker, gpus_per_worker, init_ray, read_ahead
from o1e.schemas import Reject
from o1e.synth.config import PrepareConfig
from o1e.synth.mining import MiningWorker
from o1e.synth.report import console
from o1e.synth.training_rows import Row, read_jsonl_rows

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


class InProcessWorker:
    """The mining worker in the driver's own process (a small source: no Ray to start)."""

    def __init__(self, cfg: PrepareConfig, kind: str) -> None:
        self.worker = MiningWorker(cfg, kind)

    def submit(self, method: str, *args):
        return getattr(self.worker, method)(*args)

    def get(self, result):
        return result

    def build_index(self, cfg: PrepareConfig, corpus: int, show: bool) -> None:
        dense = cfg.mining.method != "bm25"
        with progress_bar(total=corpus, desc="encode corpus", unit="passage", disable=not (show and dense)) as bar:
            self.worker.build_index(bar.update)

    def close(self) -> None:
        pass


class ActorWorker:
    """The mining worker in a Ray actor: the corpus, its texts and the index never enter the driver."""

    def __init__(self, cfg: PrepareConfig, kind: str) -> None:
        self.ray = init_ray(cfg.ray)
        resources = _worker_resources(self.ray, cfg)
        self.actor = self.ray.remote(MiningWorker).options(**resources).remote(cfg, kind)
        self.holding = costs.hold(1, resources["num_cpus"], resources["num_gpus"])

    def submit(self, method: str, *args):
        return getattr(self.actor, method).remote(*args)

    def get(self, ref):
        """``ray.get``, with the worker's own error raised as it is (one line for the user, not Ray's)."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, Exception):
                raise err.cause from None
            raise

    def build_index(self, cfg: PrepareConfig, corpus: int, show: bool) -> None:
        if cfg.mining.method == "bm25":
            self.get(self.submit("build_index"))
            return
        counter = self.ray.remote(Counter).options(num_cpus=0).remote()
        try:
            with counter_bar(self.ray, counter, corpus, "encode corpus", "passage", show) as poll:
                [(_, _, ref)] = as_finished(self.ray, ["index"], lambda _, __: self.submit(
                    "build_index", lambda n: counter.add.remote(n)), poll=poll)
            self.get(ref)
        finally:
            self.ray.kill(counter)

    def close(self) -> None:
        self.ray.kill(self.actor)
        costs.release(self.holding)


def _source_bytes(src, kind: str) -> int:
    urls = [src.path] + ([src.corpus] if src.corpus else []) if kind == "jsonl" else [
        storage.join(src.path, "corpus.jsonl")]
    total = 0
    for url in urls:
        fs, path = storage.resolve(url)
        total += max(fs.get_file_info(path).size or 0, 0)  # a missing file: the worker names it
    return total


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_prepare(cfg: PrepareConfig, show: bool | Show = True) -> dict:
    started = time.perf_counter()
    show = Show.of(show)
    cfg.check_outputs()
    src = cfg.dataset
    kind = src.format
    if kind == "auto":
        kind = "jsonl" if src.path.endswith((".jsonl", ".json")) and not storage.is_dir(src.path) else "beir"
    if kind == "jsonl" and src.max_queries is not None:
        raise ConfigError(f"dataset.max_queries: {src.path} is JSONL rows, which are read whole (the option takes "
                          "the first queries of a BEIR split)")
    record = runs.RunRecord("synth", cfg, parents=[beir.source_ref(src.path, split=src.split, format=kind)])
    record.check_rerun("training_rows", runs.REJECTS)
    in_actor = _source_bytes(src, kind) >= cfg.actor_min_bytes
    worker = ActorWorker(cfg, kind) if in_actor else InProcessWorker(cfg, kind)
    try:
        loaded = worker.get(worker.submit("load"))
        mining = loaded["to_mine"] > 0 and cfg.mining.method != "none" and cfg.mining.count > 0
        if mining:
            worker.build_index(cfg, loaded["corpus"], show.progress)
        writer = storage.DatasetWriter(record.url("training_rows"), "training_rows", overwrite=True, **record.lineage)
        rejects: list[Reject] = list(loaded.get("rejects", []))
        bad_lines: list[Reject] = []
        counts = {"rows": 0, "with_teacher_scores": 0}
        shards = ShardWriter(writer, cfg.shard_rows)
        if kind == "beir":
            step = cfg.mine_batch_rows
            requests = (worker.submit("beir_rows", start, step) for start in range(0, loaded["rows"], step))
            results = (worker.get(ref) for ref in read_ahead(requests, cfg.batches_in_flight))
        else:
            batches = _batches(read_jsonl_rows(src, rejects, bad_lines), cfg.mine_batch_rows)
            results = _mined_jsonl(worker, batches, mining, cfg.batches_in_flight)
        progress = progress_bar(total=loaded.get("rows"), unit="row", disable=not show.progress,
                                desc=f"mine negatives ({cfg.mining.method})" if mining else "read rows")
        for rows in results:
            progress.update(len(rows))
            counts["rows"] += len(rows)
            counts["with_teacher_scores"] += sum(r.pos_scores is not None and r.neg_scores is not None for r in rows)
            shards.add(rows)
        shards.close()
        progress.close()
    finally:
        worker.close()
    rejects += bad_lines
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
    if show.progress:
        console.print(f"[bold]prepared[/bold] {summary['rows']:,} training rows from {src.path} ({kind}, "
                      f"split {src.split}): {summary['passed_through']:,} carried negatives, "
                      f"{summary['mined']:,} mined with {cfg.mining.method} (top {cfg.mining.depth}, keep "
                      f"{cfg.mining.count}), {summary['rejects']:,} rejected -> {cfg.output}/training_rows",
                      soft_wrap=True)
    return summary


def _worker_resources(ray, cfg: PrepareConfig) -> dict:
    """The mining worker's share: ``ray``'s CPUs per worker, else the free CPUs up to a whole node's (the
    largest: one worker cannot span nodes); a GPU for dense mining where the cluster has one."""
    gpus = gpus_per_worker(ray, cfg.ray) if cfg.mining.method in ("dense", "o1") else 0
    return {"num_cpus": cpus_per_worker(ray, cfg.ray, 1), "num_gpus": gpus}


def _mined_jsonl(worker, batches: Iterator[list[Row]], mining: bool, in_flight: int) -> Iterator[list[Row]]:
    """Each batch of JSONL rows with the mined negatives of its rows that carry none."""
    def requests():
        for rows in batches:
            to_mine = [r for r in rows if not r.negatives] if mining else []
            ref = worker.submit("mine", [(r.query_id, r.query, r.positive_ids) for r in to_mine]) if to_mine else None
            yield rows, to_mine, ref

    for rows, to_mine, ref in read_ahead(requests(), in_flight):
        if ref is not None:
            for row, (ids, texts) in zip(to_mine, worker.get(ref)):
                row.negative_ids, row.negatives, row.neg_scores = ids, texts, None  # mined: no teacher scored them
        yield rows
