"""Training rows -> tokenised groups (PAPER.md §3): cleaning, hard-negative sampling, thought dropout.

Pure and Ray-free; the token format itself lives in ``o1e.sequences``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from o1e.sequences import SequenceConfig, encode_documents, encode_queries

def reject_reason(row: dict[str, Any]) -> str | None:
    """Why a training row cannot be used (it is skipped and counted), or None."""
    if not (row.get("query") or "").strip():
        return "empty_query"
    if not [p for p in (row.get("positives") or []) if p and p.strip()]:
        return "no_positive"
    return None


def sample_group(positives: Sequence[str], negatives: Sequence[str], group_size: int,
                 rng: random.Random) -> tuple[list[str], list[int]]:
    """One positive and ``group_size - 1`` hard negatives (repeated when too few); also their row indices.

    Indices count positives first, then negatives, as ``teacher_scores`` does. Without any negative the
    group's other slots are left to in-batch negatives (the group is just the positive).
    """
    pos_choices = [i for i, p in enumerate(positives) if p and p.strip()]
    pos = rng.choice(pos_choices)
    neg_choices = [len(positives) + i for i, n in enumerate(negatives) if n and n.strip()]
    want = group_size - 1
    if want <= 0 or not neg_choices:
        picked: list[int] = []
    elif len(neg_choices) < want:
        pool = neg_choices * (-(-want // len(neg_choices)))
        picked = rng.sample(pool, want)
    else:
        picked = rng.sample(neg_choices, want)
    everything = list(positives) + list(negatives)
    order = [pos, *picked]
    return [everything[i] for i in order], order


@dataclass
class TrainingBatch:
    query: dict[str, torch.Tensor]
    docs: dict[str, torch.Tensor]
    group_size: int
    teacher: torch.Tensor | None = None
    """(queries, group_size) teacher scores of the sampled passages, when every row carries them."""
    stats: Counter = field(default_factory=Counter)

    @property
    def num_queries(self) -> int:
        return self.query["input_ids"].shape[0]


def collate(rows: Sequence[dict[str, Any]], tokenizer, seq: SequenceConfig, group_size: int,
            rng: random.Random) -> TrainingBatch | None:
    """Clean, sample and tokenise a list of ``training`` rows; None when no row is usable.

    Rows without a positive (or query) are skipped and counted; empty thoughts are kept (they are what
    thought dropout produces); long texts are truncated as §3 says. Groups without negatives are padded
    from the other rows' negatives, so all groups keep one size.
    """
    stats: Counter = Counter()
    kept = []
    for row in rows:
        reason = reject_reason(row)
        if reason:
            stats[f"skipped_{reason}"] += 1
        else:
            kept.append(row)
    if not kept:
        return None
    has_negatives = any(any(n and n.strip() for n in (r.get("negatives") or [])) for r in kept)
    size = group_size if has_negatives else 1
    queries, thoughts, docs, orders, used = [], [], [], [], []
    for row in kept:
        thought = row.get("thought") or ""
        if not thought.strip():
            stats["empty_thought"] += 1
            thought = ""
        elif rng.random() < seq.thought_dropout:
            stats["thought_dropped"] += 1
            thought = ""
        negatives = [n for n in (row.get("negatives") or []) if n and n.strip()]
        if not negatives and size > 1:
            # Other rows of the batch lend their hard negatives; teacher scores cannot follow them.
            stats["negatives_borrowed"] += 1
            negatives = [n for r in kept if r is not row for n in (r.get("negatives") or []) if n and n.strip()]
            row = {**row, "teacher_scores": None}
        group, order = sample_group(row["positives"], negatives, size, rng)
        queries.append(row["query"])
        thoughts.append(thought)
        docs.extend(group)
        orders.append(order)
        used.append(row)
    teacher = None
    if all(r.get("teacher_scores") is not None for r in used):
        try:
            teacher = torch.tensor([[float(r["teacher_scores"][i]) for i in o] for r, o in zip(used, orders)])
        except IndexError:
            stats["teacher_scores_short"] += len(kept)
    stats["rows"] += len(kept)
    return TrainingBatch(
        query=encode_queries(tokenizer, queries, thoughts, seq, stats),
        docs=encode_documents(tokenizer, docs, seq, stats),
        group_size=size, teacher=teacher, stats=stats,
    )
