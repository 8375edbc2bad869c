"""``o1e run``: every stage in order, each skipped when its output is current, then one summary.

Each stage runs with its own driver (its progress, its shard-level resume); a stage interrupted part way
has no record, so the next run reruns it and the stage itself resumes from its committed shards. A stage
whose recorded fingerprint differs (its config or an upstream stage changed) had its output superseded:
that output is removed and the stage runs afresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table

from o1e import costs, progress, report, runs, storage
from o1e.config import ConfigError
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.plan import Step, build_steps, is_current, read_record, record_url, step_rows, window
from o1e.pipeline.stages import STAGES
from o1e.progress import Show

console = progress.console()


@dataclass
class StepResult:
    step: Step
    status: str
    """``ran`` or ``skipped``."""
    record: dict


def _check_inputs_before(steps: list[Step], selected: list[Step]) -> None:
    """Steps left out by ``--from`` must have finished: the window reads their outputs."""
    names = {s.name for s in selected}
    needed = {d for s in selected for d in s.deps if d not in names}
    for step in steps:
        if step.name in needed and not storage.exists(step.done_marker):
            raise ConfigError(f"--from skips {step.name}, but its output {step.output} is not finished: "
                              f"run {step.name} first (drop --from)")


def run_pipeline(cfg: PipelineConfig, start: str | None = None, until: str | None = None,
                 show: bool = True) -> list[StepResult]:
    started = time.perf_counter()
    steps = build_steps(cfg)
    try:
        selected = window(steps, start, until)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _check_inputs_before(steps, selected)
    results = []
    for number, step in enumerate(selected, start=1):
        console.rule(f"[bold][{number}/{len(selected)}] {step.name}[/bold] -> {step.output}")
        record = read_record(cfg, step)
        if is_current(step, record):
            console.print(f"up to date (fingerprint {step.fingerprint}, finished {record['finished_at']}): skipped")
            results.append(StepResult(step, "skipped", record))
            continue
        if record is not None:
            console.print(f"superseded: fingerprint {record['fingerprint']} -> {step.fingerprint} "
                          f"(its config or an upstream stage changed); removing {step.output}")
            storage.delete(record_url(cfg, step))
            storage.delete(step.output)
        # The stages show their progress; their results are shown once, in the summary below.
        STAGES[step.stage].run(step.config, Show.PROGRESS if show else Show.NOTHING)
        record = runs.step_record(storage.read_json(step.done_marker), step=step.name, stage=step.stage,
                                  fingerprint=step.fingerprint, upstream=step.deps, output=step.output,
                                  **step_rows(step))
        storage.write_json(record_url(cfg, step), record)
        results.append(StepResult(step, "ran", record))
    runs.RunRecord("pipeline", cfg, started=started).finish({
        "output": cfg.output, "elapsed_s": round(time.perf_counter() - started, 3),
        "steps": [{"status": r.status, **r.record} for r in results],
    }, rows=len(results), unit="step")
    report_url = report.write(cfg.output)
    if show:
        console.rule("[bold]pipeline summary[/bold]")
        console.print(steps_table(results, cfg.output))
        evaluations = [r for r in results if r.step.stage == "eval"]
        if evaluations:
            console.print(metrics_table(evaluations))
        console.print(f"report: {report_url} (o1e report {cfg.output} writes it again)")
    return results


def _count(value) -> str:
    return "" if value is None else f"{value:,}"


def _seconds(value) -> str:
    return "" if value is None else f"{value:,.0f}"


def steps_table(results: list[StepResult], root: str) -> Table:
    """One row per step; the time and the actor-seconds (CPU and GPU) are the run's that produced the output
    (for a skipped step, an earlier one)."""
    table = Table(title=f"stages (outputs under {root}, in {runs.SUMMARY}; CPU-s, GPU-s: what their Ray actors "
                        "held)")
    for name, justify in (("stage", "left"), ("rows in", "right"), ("rows out", "right"),
                          ("rejects", "right"), ("time", "right"), ("CPU-s", "right"), ("GPU-s", "right"),
                          ("", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for r in results:
        rec = r.record
        held = rec.get("actor_seconds") or {}
        table.add_row(r.step.name, _count(rec.get("rows_in")), _count(rec.get("rows_out")), _count(rec.get("rejects")),
                      f"{rec['elapsed_s']:.0f} s", _seconds(held.get("CPU")), _seconds(held.get("GPU")), r.status)
    return table


def metrics_table(evaluations: list[StepResult]) -> Table:
    """nDCG@10 and Recall@100 of every evaluation and variant (k thoughts averaged)."""
    table = Table(title="retrieval")
    for name, justify in (("evaluation", "left"), ("retriever", "left"), ("k", "right"), ("nDCG@10", "right"),
                          ("MRR@10", "right"), ("Recall@100", "right"), ("queries", "right"),
                          ("thought tokens/query", "right"), ("gain per 1k tokens", "right")):
        table.add_column(name, justify=justify)
    for r in evaluations:
        metrics = runs.EVAL_METRICS.read(r.step.output)
        kind = r.step.config.retriever.kind
        label = "trained model" if r.step.name == "eval" else r.step.name.split(":", 1)[1]
        variants = metrics.get("variants") or {f"k={metrics.get('k', 0)}": metrics}
        thoughts = (metrics.get("info") or {}).get("thoughts")
        base = variants.get("k=0", {}).get("ndcg@10")
        for variant, m in variants.items():
            k = int(variant.split("=", 1)[1])
            tokens = costs.thought_tokens_per_query(thoughts, m["num_queries"], k)
            gain = costs.gain_per_1k_tokens(m["ndcg@10"], base, tokens)
            table.add_row(label, kind, str(k) if kind in ("o1", "expand") else "", f"{m['ndcg@10']:.4f}",
                          f"{m['mrr@10']:.4f}", f"{m['recall@100']:.4f}", str(m["num_queries"]),
                          f"{tokens:.1f}" if tokens else "", "" if gain is None else f"{gain:+.4f}")
    return table


def dry_run(cfg: PipelineConfig, cluster: str | None = None, start: str | None = None,
            until: str | None = None) -> list[str]:
    """What each step would do (run or skip) and, with a cluster definition, what it asks Ray for and whether
    that fits. Returns the placement problems (empty: it fits); starts nothing."""
    import yaml

    from o1e.pipeline.resources import cluster_nodes, fits, stage_requests

    try:
        selected = window(build_steps(cfg), start, until)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    target, requests = None, {}
    if cluster:
        try:
            target = cluster_nodes(yaml.safe_load(storage.read_text(cluster)))
        except (ValueError, KeyError, yaml.YAMLError) as err:
            raise ConfigError(f"--cluster {cluster}: {err}") from None
        requests = stage_requests(selected, target)
    table = Table(title=f"dry run{f' on {cluster}' if cluster else ''}")
    for name in ("stage", "would", "asks Ray for (each on one node)", "fits"):
        table.add_column(name)
    problems = []
    reachable = storage.answers(cfg.output)
    for step in selected:
        if not reachable:
            would = "run (output not reachable from here)"
        else:
            would = "skip (up to date)" if is_current(step, read_record(cfg, step)) else "run"
        asks, verdict = "", ""
        if cluster:
            phases = requests[step.name]
            asks = " then ".join("; ".join(f"{r.count} x {r.what} ({r.gpus:g} GPU, {r.cpus:g} CPU)" for r in phase)
                                 for phase in phases if phase) or "driver only"
            found = [p for phase in phases for p in fits(phase, target)]
            problems += [f"{step.name}: {p}" for p in found]
            verdict = "yes" if not found else "NO: " + "; ".join(found)
        table.add_row(step.name, would, asks, verdict)
    console.print(table)
    if cluster:
        console.print("cluster workers: " + ", ".join(f"{n.count} x {n.name} ({n.gpus:g} GPU, {n.cpus:g} CPU)"
                                                      for n in target.nodes))
        for problem in problems:
            print(f"does not fit: {problem}")
    return problems
