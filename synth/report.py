"""What ``o1e synth`` shows (rich tables) and leaves behind (summary.json)."""

from __future__ import annotations

import pyarrow.compute as pc
from rich.table import Table

from o1e import progress, storage

console = progress.console()


def resolved_sampling(cfg, engine_info: dict) -> dict:
    """The temperature and top-p requests were sampled with: the config's, else what the engine resolved
    "its default" to (vLLM: the model's generation_config.json); ``"server default"`` where an endpoint
    does not say."""
    return {key: getattr(cfg.sampling, key) if getattr(cfg.sampling, key) is not None
            else engine_info.get(key, "server default") for key in ("temperature", "top_p")}


def build_summary(cfg, stats, model: str, elapsed_s: float, engine_info: dict) -> dict:
    tokens_per_s = stats.completion_tokens / stats.generation_s if stats.generation_s else 0.0
    return {
        "sampling": resolved_sampling(cfg, engine_info),
        "input": cfg.input, "output": cfg.output, "model": model, "engine": cfg.engine.kind,
        "num_candidates": cfg.num_candidates,
        "rows_in": stats.rows_in, "rows_resumed": stats.rows_resumed, "rows_processed": stats.rows_processed,
        "shards_total": stats.shards_total, "shards_resumed": stats.shards_resumed,
        "candidates_written": stats.candidates_written, "rejects_written": dict(sorted(stats.rejects_now.items())),
        "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
        "examples_dropped_to_fit": stats.examples_dropped,
        "engine_start_s": round(stats.engine_start_s, 3), "generation_s": round(stats.generation_s, 3),
        "tokens_per_s": round(tokens_per_s, 1), "elapsed_s": round(elapsed_s, 3),
    }


def add_dataset_totals(summary: dict, output: str) -> dict:
    """Totals over the whole output (this run's shards and those a crashed run committed)."""
    cands = storage.read_table(storage.join(output, "candidates"), columns=["query_id", "completion_tokens"])
    reasons = storage.read_table(storage.join(output, "rejects"), columns=["reason"]).column("reason")
    counts = pc.value_counts(reasons) if len(reasons) else []
    summary = dict(summary)
    summary.update({
        "candidates_total": cands.num_rows,
        "queries_with_candidates": len(pc.unique(cands.column("query_id"))) if cands.num_rows else 0,
        "completion_tokens_total": int(pc.sum(cands.column("completion_tokens")).as_py() or 0),
        "rejects_total": {c["values"]: c["counts"] for c in (counts.to_pylist() if len(reasons) else [])},
    })
    return summary


def summary_table(summary: dict) -> Table:
    table = Table(title=f"synth: {summary['model']} ({summary['engine']})", show_header=True)
    table.add_column("", style="bold")
    table.add_column("this run", justify="right")
    table.add_column("whole output", justify="right")
    rejects_total = summary.get("rejects_total", {})
    table.add_row("rows in", f"{summary['rows_processed']:,}", f"{summary['rows_in']:,}")
    table.add_row("rows resumed (already committed)", "", f"{summary['rows_resumed']:,}")
    table.add_row("candidates out", f"{summary['candidates_written']:,}", f"{summary.get('candidates_total', 0):,}")
    table.add_row("queries with candidates", "", f"{summary.get('queries_with_candidates', 0):,}")
    for reason in sorted(set(summary["rejects_written"]) | set(rejects_total)):
        table.add_row(f"rejects: {reason}", f"{summary['rejects_written'].get(reason, 0):,}",
                      f"{rejects_total.get(reason, 0):,}")
    table.add_row("prompt tokens", f"{summary['prompt_tokens']:,}", "")
    table.add_row("tokens generated", f"{summary['completion_tokens']:,}",
                  f"{summary.get('completion_tokens_total', 0):,}")
    table.add_row("examples dropped to fit context", f"{summary['examples_dropped_to_fit']:,}", "")
    table.add_row("engine start", f"{summary['engine_start_s']:.1f} s", "")
    table.add_row("generation", f"{summary['generation_s']:.1f} s", "")
    table.add_row("throughput", f"{summary['tokens_per_s']:,.0f} tok/s", "")
    return table


def print_table(summary: dict) -> None:
    console.print(summary_table(summary))


def print_written(summary: dict) -> None:
    console.print(f"wrote {summary['output']}/candidates, rejects/, summary.json in {summary['elapsed_s']:.1f} s")
