"""``o1e vote``: read training rows and candidate thoughts, let the committee score every candidate
against its query's gold document, vote, and commit shard by shard: the ``training`` dataset the
trainer reads, per-query ``committee_scores``, and ``rejects``. Ends with a diagnostics table."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from committee import report
from committee.config import CommitteeConfig
from committee.executors import ShardScores, make_executor
from committee.plan import Shard, build_groups, plan_shards
from committee.vote import vote
from o1e import runs, schemas, storage
from o1e.beir import DatasetError
from o1e.config import ConfigError
from o1e.encoders import resolve_model_dir
from o1e.provenance import fingerprint

CANDIDATE_COLUMNS = ["query_id", "candidate_index", "thought"]


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
    """The shard's ``committee_scores`` and ``training`` rows."""
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


def run_committee(cfg: CommitteeConfig, show: bool = True) -> CommitteeResult:
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
        return _run(cfg, executor, writers, record, started, show)
    finally:
        executor.close()


def _run(cfg: CommitteeConfig, executor, writers: dict[str, storage.DatasetWriter], record: runs.RunRecord,
         started: float, show: bool) -> CommitteeResult:
    training = storage.read_table(cfg.training_rows, schema_name="training_rows")
    candidates = storage.read_table(cfg.candidates, columns=CANDIDATE_COLUMNS, schema_name="candidates")
    groups, rejects = build_groups(training, candidates, cfg.training_rows, cfg.candidates)
    shards = plan_shards(groups, cfg.shard_size, cfg.batch_size)
    urls = output_urls(cfg.output)
    writers["rejects"].commit_shard("inputs", pa.Table.from_pylist(rejects, schema=schemas.REJECTS.arrow)
                                    if rejects else schemas.REJECTS.empty())
    if not groups:  # nothing to vote on: the reasons are committed, the run is an error (not an empty success)
        writers["rejects"].finalize()
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(Counter(x["reason"] for x in rejects).items()))
        raise DatasetError(f"no query could be voted: all {len(rejects)} were rejected ({reasons or 'no rows'}; "
                           f"see {urls['rejects']}): give candidates synthesised from these training rows")

    # The training shard is committed last: its marker means the whole shard is done.
    done = set(writers["training"].committed())
    todo = [s for s in shards if s.shard_id not in done]
    skipped = [s.shard_id for s in shards if s.shard_id in done]
    if show:
        report.print_plan(cfg, len(groups), len(rejects), shards, todo)
    ran = []
    for shard, scores in executor.run(todo):
        committee_scores, training_rows = vote_shard(cfg, shard, scores, training)
        writers["committee_scores"].commit_shard(shard.shard_id, committee_scores)
        writers["training"].commit_shard(shard.shard_id, training_rows)
        ran.append(shard.shard_id)

    elapsed = time.time() - started
    members_ready_s = executor.members_ready_at() - started if todo else 0.0
    extra = {"vote": cfg.vote, "members": [m.name for m in cfg.members]}
    for writer in writers.values():
        writer.finalize(extra=extra)
    diagnostics = report.diagnostics(storage.read_table(urls["committee_scores"]),
                                     storage.read_table(urls["rejects"]))
    diagnostics.update({
        "elapsed_s": elapsed, "members_ready_s": members_ready_s, "executor": cfg.executor,
        "shards": len(shards), "shards_run": len(ran),
        "shards_skipped": len(skipped), "candidates_scored": sum(s.num_candidates for s in todo),
    })
    diagnostics = record.finish(diagnostics, rows=sum(len(s.groups) for s in todo), unit="query")
    if show:
        report.print_diagnostics(cfg, diagnostics)
    return CommitteeResult(output=cfg.output, diagnostics=diagnostics, shards_run=ran, shards_skipped=skipped)
