"""What ``o1e vote`` shows: the plan before scoring and the diagnostics table at the end.

The diagnostics are computed from the committed ``committee_scores`` dataset, so a resumed run reports
on every shard, including those a crashed run committed."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Iterable

import numpy as np
import pyarrow as pa
from rich.table import Table

from o1e import progress

console = progress.console()


def member_top1(scores: list[list[float]]) -> list[int]:
    return [int(np.argmax(row)) for row in scores]


def diagnostics(committee_scores: pa.Table | Iterable[pa.RecordBatch], rejects: pa.Table) -> dict:
    """Queries voted, rejects by reason, how often each member's top-1 is the final choice, pairwise
    member agreement (same top-1), the share of unanimous queries and the mean vote margin.
    ``committee_scores`` may be streamed batch by batch; ``rejects`` needs its ``reason`` column."""
    batches = committee_scores.to_batches() if isinstance(committee_scores, pa.Table) else committee_scores
    rows = (row for batch in batches for row in batch.to_pylist())
    members, vote = [], None
    matches = Counter()
    pairs = Counter()
    margin_sum, margins = 0.0, 0
    voted = unanimous = 0
    for row in rows:
        if not voted:
            members, vote = row["members"], row["vote"]
        voted += 1
        unanimous += row["agreed"]
        top1 = member_top1(row["scores"])
        chosen = row["candidate_indices"].index(row["selected_index"])
        for name, top in zip(members, top1):
            matches[name] += top == chosen
        for (a, ta), (b, tb) in combinations(zip(members, top1), 2):
            pairs[(a, b)] += ta == tb
        if row["margin"] is not None and not np.isnan(row["margin"]):
            margin_sum += row["margin"]
            margins += 1
    share = (lambda n: n / voted) if voted else (lambda n: float("nan"))
    return {
        "queries_voted": voted,
        "rejects": rejects.num_rows,
        "rejects_by_reason": dict(sorted(Counter(rejects.column("reason").to_pylist()).items())),
        "vote": vote,
        "members": members,
        "member_matches_vote": {name: share(matches[name]) for name in members},
        "pairwise_agreement": {f"{a} ~ {b}": share(pairs[(a, b)]) for a, b in combinations(members, 2)},
        "unanimous": share(unanimous),
        "mean_margin": margin_sum / margins if margins else float("nan"),
    }


def print_plan(cfg, num_groups: int, num_rejects: int, shards, todo, placements) -> None:
    members = ", ".join(f"{m.name} ({m.kind}, weight {m.weight:g}, {p.replicas} x {p.num_cpus:g} CPU"
                        + (f" + {p.num_gpus:g} GPU" if p.num_gpus else "") + ")"
                        for m, p in zip(cfg.members, placements))
    console.print(f"[bold]committee[/bold]: {num_groups:,} queries, {num_rejects} rejected; "
                  f"{len(shards)} shards ({len(shards) - len(todo)} already committed); {cfg.vote} vote")
    console.print(f"members: {members}")


def print_diagnostics(cfg, diag: dict) -> None:
    table = Table(title=f"committee diagnostics ({diag['vote']} vote) — {cfg.output}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("queries voted", f"{diag['queries_voted']:,}")
    reasons = ", ".join(f"{k} {v}" for k, v in diag["rejects_by_reason"].items())
    table.add_row("rejects", f"{diag['rejects']:,}" + (f" ({reasons})" if reasons else ""))
    for name, value in diag["member_matches_vote"].items():
        table.add_row(f"top-1 of {name} = vote", f"{value:.1%}")
    for pair, value in diag["pairwise_agreement"].items():
        table.add_row(f"agreement {pair}", f"{value:.1%}")
    table.add_row("all members agree", f"{diag['unanimous']:.1%}")
    table.add_row("mean margin", f"{diag['mean_margin']:.4f}")
    table.add_row("time", f"{diag['elapsed_s']:.1f} s ({diag['shards_run']} shards run, "
                          f"{diag['shards_skipped']} resumed; members ready after "
                          f"{diag['members_ready_s']:.1f} s)")
    console.print(table)


def print_written(cfg, diag: dict) -> None:
    console.print(f"voted {diag['queries_voted']:,} queries ({diag['rejects']:,} rejected) -> {cfg.output}/training "
                  f"in {diag['elapsed_s']:.1f} s")
