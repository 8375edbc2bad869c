"""``o1e vote``: read training rows and candidate thoughts, let the committee score every candidate
against its query's gold document, vote, and commit shard by shard: the ``training`` dataset the
trainer reads, per-query ``committee_scores``, and ``rejects``. Ends with a diagnostics table."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from o1e.committee import buckets, report
from o1e.committee.config import CommitteeConfig
from o1e.committee.executors import ShardScores, make_executor
from o1e.committee.plan import (NOT_VOTED, Plan, Shard, ShardPlan, assemble_shard, index_candidates,
                            index_training, plan_committee)
from o1e.committee.vote import vote
from o1e import runs, schemas, storage
from o1e.beir import DatasetError
from o1e.config import ConfigError
from o1e.models import resolve_model_dir
from o1e.progress import Show
from o1e.provenance import fingerprint

CANDIDATE_COLUMNS = ["query_id", "candidate_index", "thought"]
INPUT_BATCH_ROWS = 2048
"""Rows per batch when the driver streams an input (planning, then filling the shards' buckets): the
driver holds about one batch of each input's texts at a time."""
CANDIDATE_BATCH_ROWS = 1 << 16
"""Candidate rows per batch when planning: each batch's query ids are looked up among all of the training
rows' at once, so larger batches cost fewer lookups (its thoughts are only tested for emptiness)."""


@dataclass
class CommitteeResult:
    output: str
    diagnostics: dict
    shards_run: list[str] = field(default_factory=list)
    shards_skipped: list[str] = field(default_factory=list)


def output_urls(output: str) -> dict[str, str]:
    return {name: storage.join(output, name) for name in ("training", "committee_scores", "rejects")}


def teacher_scores(rows: pa.Table) -> list[list[float] | None]:
    """Each row's ``pos_scores + neg_scores`` (the training set's teacher scores, as the reference vote
    keeps every field of its input rows); None unless the row has both."""
    return [None if p is None or n is None else p + n
            for p, n in zip(rows.column("pos_scores").to_pylist(), rows.column("neg_scores").to_pylist())]


def vote_shard(cfg: CommitteeConfig, shard: Shard, scores: ShardScores,
               training: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The shard's ``committee_scores`` and ``training`` rows; ``training``: the shard's training rows
    (``Group.row`` indexes them)."""
    names = [m.name for m in cfg.members]
    weights = np.array([m.weight for m in cfg.members])
    score_rows, selected_thoughts = [], []
    for g, group in enumerate(shard.groups):
        matrix = np.stack([scores[m][g] for m in range(len(names))])
        result = vote(matrix, weights, cfg.vote)
        selected_thoughts.append(group.thoughts[result.selected])
        score_rows.append({
            "query_id": group.query_id, "members": names, "candidate_indices": group.candidate_indices,
            "scores": matrix.astype(np.float32).tolist(),
            "selected_index": group.candidate_indices[result.selected], "vote": cfg.vote,
            "margin": result.margin, "agreed": result.agreed,
        })
    rows = training.take(pa.array([g.row for g in shard.groups], type=pa.int64()))
    training_rows = pa.table({
        "query_id": rows.column("query_id"), "query": rows.column("query"),
        "thought": pa.array(selected_thoughts, type=pa.string()),
        "positive_ids": rows.column("positive_ids"), "positives": rows.column("positives"),
        "negative_ids": rows.column("negative_ids"), "negatives": rows.column("negatives"),
        "teacher_scores": pa.array(teacher_scores(rows), type=schemas.FLOATS),
    })
    committee_scores = (pa.Table.from_pylist(score_rows, schema=schemas.COMMITTEE_SCORES.arrow)
                        if score_rows else schemas.COMMITTEE_SCORES.empty())
    return committee_scores, training_rows


def _input_identity(url: str) -> dict:
    manifest = storage.read_manifest(url)
    return {"schema": manifest.schema, "files": [(f["path"], f["num_rows"]) for f in manifest.files],
            "config_fingerprint": manifest.config_fingerprint}


def check_config(cfg: CommitteeConfig) -> None:
    """Everything a user can get wrong, checked before data is read or a cluster started."""
    for key in ("training_rows", "candidates"):
        url = getattr(cfg, key)
        if not url:
            raise ConfigError(f"{key}: required (a {key} dataset folder or s3:// prefix)")
        if not storage.is_dataset(url):
            raise storage.StorageError(f"{key}: {url} is not a committed dataset (no _manifest.json): give the "
                                       f"{key} dataset an o1e stage wrote")
    for member in cfg.members:
        if member.kind == "dense":
            resolve_model_dir(member.model)


def run_committee(cfg: CommitteeConfig, show: bool | Show = True) -> CommitteeResult:
    started = time.time()
    check_config(cfg)
    cfg.check_outputs()
    run_fingerprint = fingerprint({"config": cfg.fingerprint(), "training_rows": _input_identity(cfg.training_rows),
                                   "candidates": _input_identity(cfg.candidates)})
    record = runs.RunRecord("committee", cfg, fingerprint=run_fingerprint,
                            parents=[storage.dataset_ref(cfg.training_rows), storage.dataset_ref(cfg.candidates)])
    writers = {name: record.writer(name) for name in output_urls(cfg.output)}
    executor = make_executor(cfg)  # members start loading while the inputs are read and planned
    try:
        return _run(cfg, executor, writers, record, started, Show.of(show))
    finally:
        executor.close()


def make_plan(cfg: CommitteeConfig) -> Plan:
    """The plan from the inputs' compact columns (ids, gold hashes, empty thoughts), read in batches."""
    query_ids = storage.read_table(cfg.training_rows, columns=["query_id"], schema_name="training_rows").column(0)
    positives = (b.column(0) for b in storage.iter_batches(cfg.training_rows, INPUT_BATCH_ROWS, ["positives"]))
    training = index_training(query_ids, positives)
    candidates = index_candidates(storage.iter_batches(cfg.candidates, CANDIDATE_BATCH_ROWS, CANDIDATE_COLUMNS,
                                                       schema_name="candidates"), training,
                                  storage.read_manifest(cfg.candidates).num_rows, cfg.candidates)
    return plan_committee(training, candidates, cfg.shard_size, cfg.training_rows, cfg.candidates)


def work_folder(output: str) -> str:
    """Where the shards' buckets go: beside the outputs when they are local, else a local temporary folder."""
    if storage.is_s3(output):
        return tempfile.mkdtemp(prefix="o1e-vote-")
    return os.path.join(storage.resolve(output)[1], "_work")


def fill_buckets(cfg: CommitteeConfig, plan: Plan, todo: list[ShardPlan], folder: str) -> None:
    """Each shard still to do gets its training rows and its scored candidates in a bucket (its
    position in ``plan.shards``) under ``folder``."""
    position = {s.shard_id: i for i, s in enumerate(plan.shards)}
    wanted = np.zeros(len(plan.shards) + 1, dtype=bool)  # the last slot stands for NOT_VOTED
    wanted[[position[s.shard_id] for s in todo]] = True
    row_bucket = np.where(wanted[plan.row_shard], plan.row_shard, NOT_VOTED)
    buckets.write_buckets(storage.iter_batches(cfg.training_rows, INPUT_BATCH_ROWS), row_bucket,
                          np.arange(len(row_bucket)), os.path.join(folder, "training_rows"))
    candidate_bucket = np.where(plan.candidate_row >= 0, row_bucket[plan.candidate_row], NOT_VOTED)
    buckets.write_buckets(storage.iter_batches(cfg.candidates, INPUT_BATCH_ROWS, CANDIDATE_COLUMNS[1:]),
                          candidate_bucket, plan.candidate_row, os.path.join(folder, "candidates"))


def load_shard(cfg: CommitteeConfig, plan: Plan, shard: ShardPlan, folder: str) -> Shard:
    bucket = plan.row_shard[shard.rows[0]]
    rows = buckets.in_order(buckets.read_bucket(os.path.join(folder, "training_rows"), bucket), shard.rows)
    candidates = buckets.read_bucket(os.path.join(folder, "candidates"), bucket)
    return assemble_shard(shard, rows, candidates, cfg.batch_size)


def _run(cfg: CommitteeConfig, executor, writers: dict[str, storage.DatasetWriter], record: runs.RunRecord,
         started: float, show: Show) -> CommitteeResult:
    plan = make_plan(cfg)
    rejects, shards = plan.rejects, plan.shards
    urls = output_urls(cfg.output)
    writers["rejects"].commit_shard("inputs", runs.rejects_table(record.stage, rejects))
    if not shards:  # nothing to vote on: the reasons are committed, the run is an error (not an empty success)
        writers["rejects"].finalize()
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(Counter(x.reason for x in rejects).items()))
        raise DatasetError(f"no query could be voted: all {len(rejects)} were rejected ({reasons or 'no rows'}; "
                           f"see {urls['rejects']}): give candidates synthesised from these training rows")

    # The training shard is committed last: its marker means the whole shard is done.
    done = set(writers["training"].committed())
    todo = [s for s in shards if s.shard_id not in done]
    skipped = [s.shard_id for s in shards if s.shard_id in done]
    if show.progress:
        report.print_plan(cfg, plan.num_queries, len(rejects), shards, todo, executor.placements)
    ran = []
    folder = work_folder(cfg.output)
    try:
        if todo:
            fill_buckets(cfg, plan, todo, folder)
        loaded = (load_shard(cfg, plan, s, folder) for s in todo)
        for shard, scores in executor.run(loaded, sum(s.num_queries for s in todo)):
            committee_scores, training_rows = vote_shard(cfg, shard, scores, shard.rows)
            writers["committee_scores"].commit_shard(shard.shard_id, committee_scores)
            writers["training"].commit_shard(shard.shard_id, training_rows)
            ran.append(shard.shard_id)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    elapsed = time.time() - started
    members_ready_s = executor.members_ready_at() - started if todo else 0.0
    extra = {"vote": cfg.vote, "members": [m.name for m in cfg.members]}
    for writer in writers.values():
        writer.finalize(extra=extra)
    diagnostics = report.diagnostics(storage.iter_batches(urls["committee_scores"]),
                                     storage.read_table(urls["rejects"], columns=["reason"]))
    diagnostics.update({
        "elapsed_s": elapsed, "members_ready_s": members_ready_s, "executor": cfg.executor,
        "shards": len(shards), "shards_run": len(ran),
        "shards_skipped": len(skipped), "candidates_scored": sum(s.num_candidates for s in todo),
        "placements": {m.name: p.model_dump() for m, p in zip(cfg.members, executor.placements)},
    })
    diagnostics = record.finish(diagnostics, rows=sum(s.num_queries for s in todo), unit="query")
    if show.tables:
        report.print_diagnostics(cfg, diagnostics)
    elif show.progress:
        report.print_written(cfg, diagnostics)
    return CommitteeResult(output=cfg.output, diagnostics=diagnostics, shards_run=ran, shards_skipped=skipped)
