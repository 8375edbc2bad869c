"""``o1e synth run``: stream training rows shard by shard through an engine into a ``candidates`` dataset.

Shards are consecutive ``shard_size``-row slices of the input (stable ids). Each finished shard is
committed at once (its rejects first, then its candidates, whose marker means "done"), so a crash loses
at most the shards in flight, and a rerun of the same config regenerates exactly those.

``incremental=true`` (scheduled runs over a growing source) adds to the output instead: only the queries
it does not hold yet are generated, in shards named after the run, and the candidates manifest's
``history`` records every run.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from o1e import runs, storage
from o1e.schemas import Reject
from o1e.encoders import check_model_dir
from o1e.models import resolve_model_dir
from o1e.llm import GenerationResult, Request, ShardWork, make_engine
from o1e.provenance import fingerprint
from o1e.progress import Show, bar as progress_bar
from o1e.synth import report
from o1e.synth.config import SynthConfig
from o1e.synth.prompts import ExplorationPrompts, candidate_prompts, sampling_seed
from o1e.synth.rows import (count_known, count_shards, duplicate_first_rows, iter_new_shards, iter_shards, load_pool,
                        row_problem)


@dataclass
class RunStats:
    rows_in: int = 0
    rows_resumed: int = 0
    rows_processed: int = 0
    shards_total: int = 0
    shards_resumed: int = 0
    candidates_written: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    examples_dropped: int = 0
    rejects_now: dict[str, int] = field(default_factory=dict)
    engine_start_s: float = 0.0
    generation_s: float = 0.0


def run_fingerprint(cfg: SynthConfig, manifest: storage.Manifest) -> str:
    """The config's fingerprint plus the input's identity: resuming onto changed input must not mix.
    An incremental output spans inputs that grow (or move) from run to run, so there the config alone
    counts, its input left out."""
    if cfg.incremental:
        return cfg.model_copy(update={"input": ""}).fingerprint()
    return fingerprint({"config": cfg.fingerprint(), "input": [(f["path"], f["num_rows"]) for f in manifest.files]})


def committed_values(writer: storage.DatasetWriter, column: str) -> pa.Array:
    """The distinct values of ``column`` in the shards committed under ``writer`` (finished runs and
    crashed ones), as one Arrow array (compact: no Python object per value)."""
    chunks = [chunk.cast(pa.string()) for shard_id in writer.committed()
              for chunk in writer.read_shard(shard_id, columns=[column]).column(column).chunks]
    return pc.unique(pa.chunked_array(chunks, pa.string()))


def plan_shards(cfg: SynthConfig, candidates: storage.DatasetWriter, rejects: storage.DatasetWriter,
                run_id: str, stats: RunStats):
    """The shards this run generates. A normal run resumes: the input's consecutive shards not committed
    yet. An incremental run adds: the input rows whose query the output holds neither as candidates nor
    as a reject, in new shards named after the run."""
    done = set(candidates.committed())
    stats.shards_resumed = len(done)
    if not cfg.incremental:
        stats.shards_total = count_shards(stats.rows_in, cfg.shard_size)
        stats.rows_resumed = sum(min(cfg.shard_size, stats.rows_in - int(s) * cfg.shard_size) for s in done)
        return iter_shards(cfg.input, cfg.shard_size, skip=done)
    known = pc.unique(pa.concat_arrays([committed_values(candidates, "query_id"), committed_values(rejects, "row")]))
    stats.rows_resumed = count_known(cfg.input, known)
    stats.shards_total = len(done) + count_shards(stats.rows_in - stats.rows_resumed, cfg.shard_size)
    return iter_new_shards(cfg.input, cfg.shard_size, known, run_id)


def run_synth(cfg: SynthConfig, show: bool | Show = True, engine=None) -> dict:
    """Run (or resume) synthesis; returns the summary (also written to ``<output>/summary.json``).

    ``engine``: an already started engine to reuse (tests and benchmarks); by default one is made from
    ``cfg.engine``, started, and closed at the end.
    """
    started = time.perf_counter()
    show = Show.of(show)
    cfg.check_outputs()
    manifest = storage.read_manifest(cfg.input)
    if manifest.schema != "training_rows":
        raise storage.StorageError(f"{cfg.input} holds a {manifest.schema!r} dataset, expected 'training_rows'")
    run_fp = run_fingerprint(cfg, manifest)
    record = runs.RunRecord("synth", cfg, parents=[storage.dataset_ref(cfg.input)], fingerprint=run_fp)
    candidates = record.writer("candidates")
    rejects = record.writer(runs.REJECTS)

    stats = RunStats(rows_in=manifest.num_rows)
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    shards = plan_shards(cfg, candidates, rejects, run_id, stats)

    owns_engine = engine is None
    renderer = ExplorationPrompts(cfg.prompt)
    if not owns_engine and (engine.renderer != renderer or engine.sampling != cfg.sampling):
        raise ValueError("the engine passed in was built for another prompt or sampling config")
    if stats.rows_resumed < stats.rows_in:
        pool = load_pool(cfg.examples_from or cfg.input, cfg.example_pool_rows, cfg.seed)
        duplicates = duplicate_first_rows(cfg.input)
        if owns_engine:
            if cfg.engine.kind != "openai" and not storage.is_s3(cfg.engine.model):
                check_model_dir(resolve_model_dir(cfg.engine.model), "engine.model")
            engine = make_engine(cfg.engine, renderer, cfg.sampling, cfg.ray, show=show.progress, stage="synth")
            t0 = time.perf_counter()
            engine.start()
            stats.engine_start_s = time.perf_counter() - t0
        try:
            _generate(cfg, engine, pool, duplicates, shards, candidates, rejects, stats, show.progress)
        finally:
            if owns_engine:
                engine.close()
    model = engine.model_name if engine is not None else (cfg.engine.served_name or cfg.engine.model
                                                          if cfg.engine.kind == "vllm" else cfg.engine.model)
    summary = report.build_summary(cfg, stats, model, time.perf_counter() - started,
                                   engine.info if engine is not None else {})
    extra = {"summary": summary}
    if cfg.incremental:
        url = storage.join(cfg.output, "candidates")
        history = storage.read_manifest(url).extra.get("history", []) if storage.is_dataset(url) else []
        summary["run_id"] = run_id
        extra["history"] = history + [{
            "run_id": run_id, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": cfg.input, "input_rows": stats.rows_in, "rows_added": stats.rows_processed,
            "candidates_added": stats.candidates_written,
        }]
    candidates.finalize(extra=extra)
    rejects.finalize(extra={"summary": summary})
    summary = record.finish(report.add_dataset_totals(summary, cfg.output), rows=stats.rows_processed, unit="query")
    if show.tables:
        report.print_table(summary)
    if show.progress:
        report.print_written(summary)
    return summary


def _generate(cfg: SynthConfig, engine, pool, duplicates: dict[str, int], shards,
              candidates: storage.DatasetWriter, rejects: storage.DatasetWriter, stats: RunStats,
              show: bool) -> None:
    row_rejects: dict[str, list[Reject]] = {}
    shard_rows: dict[str, int] = {}

    def work():
        for shard in shards:
            bad, requests = [], []
            columns = (shard.rows.column(n).to_pylist() for n in ("query_id", "query", "positives"))
            for offset, (query_id, query, positives) in enumerate(zip(*columns)):
                row_number = shard.row_number(offset)
                problem = row_problem(query, positives)
                if problem is None and duplicates.get(query_id, row_number) != row_number:
                    problem = ("duplicate_query",
                               f"query id {query_id!r} already occurs at row {duplicates[query_id]}")
                if problem is not None:
                    bad.append(Reject(cfg.input, query_id, problem[0], f"row {row_number}: {problem[1]}"))
                    continue
                for prompt in candidate_prompts(cfg.prompt, pool, cfg.seed, query_id, query, cfg.num_candidates):
                    seed = (sampling_seed(cfg.seed, query_id, prompt.candidate_index)
                            if cfg.sampling.per_request_seed else None)
                    requests.append(Request(prompt.key, prompt, seed))
            row_rejects[shard.shard_id] = bad
            shard_rows[shard.shard_id] = shard.rows.num_rows
            yield ShardWork(shard.shard_id, requests)

    t0 = time.perf_counter()
    bar = progress_bar(total=stats.rows_in, initial=stats.rows_resumed, unit="row", desc="synth", disable=not show)
    try:
        for shard_id, results in engine.stream(work()):
            table, failed = _shard_tables(cfg, engine.model_name, results, stats)
            bad = row_rejects.pop(shard_id) + failed
            for r in bad:
                stats.rejects_now[r.reason] = stats.rejects_now.get(r.reason, 0) + 1
            rejects.commit_shard(shard_id, runs.rejects_table("synth", bad))
            candidates.commit_shard(shard_id, table)
            rows_done = shard_rows.pop(shard_id)
            stats.rows_processed += rows_done
            stats.generation_s = time.perf_counter() - t0
            bar.update(rows_done)
            bar.set_postfix_str(f"{stats.completion_tokens / max(stats.generation_s, 1e-9):,.0f} tok/s, "
                                f"{sum(stats.rejects_now.values())} rejects", refresh=False)
    finally:
        bar.close()


def _shard_tables(cfg: SynthConfig, model: str, results: list[GenerationResult], stats: RunStats
                  ) -> tuple[pa.Table, list[Reject]]:
    rows, failed, too_long = [], [], set()
    for r in results:
        query_id, _, index = r.key.rpartition("/")
        if r.error is not None:
            if r.error == "query_too_long":
                if query_id not in too_long:  # one reject per query, not per candidate
                    too_long.add(query_id)
                    failed.append(Reject(cfg.input, query_id, r.error, r.detail))
            else:
                failed.append(Reject(cfg.input, r.key, r.error, r.detail))
            continue
        stats.prompt_tokens += r.prompt_tokens
        stats.completion_tokens += r.completion_tokens
        stats.examples_dropped += r.fallbacks_used  # each fallback prompt has one trailing example fewer
        rows.append({"query_id": query_id, "candidate_index": int(index), "thought": r.text.strip(),
                     "finish_reason": r.finish_reason, "prompt_tokens": r.prompt_tokens,
                     "completion_tokens": r.completion_tokens, "model": model,
                     "prompt_fingerprint": r.prompt_fingerprint})
    stats.candidates_written += len(rows)
    table = pa.Table.from_pylist(rows) if rows else storage.schemas.CANDIDATES.empty()
    return table, failed
