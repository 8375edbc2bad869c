"""The train stage's summary table (programs read summary.json, model/lineage.json and metrics.jsonl)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from o1e import progress
from o1e.train.config import TrainConfig

SHOWN = ("step", "loss", "contrastive_loss", "generation_loss", "contrastive_accuracy", "tokens_per_s",
         "resumed_from_step")


def show_summary(cfg: TrainConfig, lineage: dict[str, Any], console: Console | None = None) -> None:
    table = Table(title=f"o1e train -> {cfg.output}/model", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    metrics = lineage.get("final_metrics") or {}
    for key in SHOWN:
        value = metrics.get(key)
        table.add_row(key, "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
    rows = lineage["rows"]
    table.add_row("rows used / rejected", f"{rows['usable']} / {rows['rejected']}")
    (console or progress.console()).print(table)


def print_written(cfg: TrainConfig, lineage: dict[str, Any]) -> None:
    metrics, rows = lineage.get("final_metrics") or {}, lineage["rows"]
    progress.console().print(f"wrote {cfg.output}/model: {metrics.get('step')} steps, final loss "
                             f"{metrics.get('loss', float('nan')):.4g}, {rows['usable']} rows used, "
                             f"{rows['rejected']} rejected")
