"""Training rows -> tokenised groups (PAPER.md §3): the epoch's row order, cleaning, hard-negative sampling,
thought dropout, and the keys that keep a query's own positive out of its negatives.

Pure and Ray-free; the token format itself lives in ``o1e.sequences``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from o1e.sequences import SequenceConfig, encode_documents, encode_queries

NO_ID = -1
"""Passage key of a passage without an id (matches no positive)."""
PAD_KEY = -2
"""Padding of a query's positive keys (matches no passage)."""


def epoch_order(num_rows: int, seed: int, epoch: int) -> list[int]:
    """A seeded permutation of the row positions, new each epoch and the same in every process."""
    order = list(range(num_rows))
    random.Random(f"o1e-train/{seed}/{epoch}").shuffle(order)
    return order


def steps_per_epoch(num_rows: int, world: int, batch_size: int) -> int:
    return math.ceil(num_rows / (world * batch_size))


def epoch_steps(num_rows: int, seed: int, epoch: int, world: int, batch_size: int) -> list[list[list[int]]]:
    """Every step of one epoch: for each worker, the row positions it trains on.

    Each row comes once per epoch, whatever the number of workers: steps take ``world * batch_size`` rows
    of the epoch's order, dealt round-robin, so the last step's workers differ by one row at most (the
    loss takes unequal worker batches). Only when that last step has fewer rows than workers does it
    borrow the epoch's first rows, one per worker short.
    """
    if num_rows < world:
        raise ValueError(f"{num_rows} rows cannot feed {world} workers")
    order = epoch_order(num_rows, seed, epoch)
    steps = []
    for start in range(0, num_rows, world * batch_size):
        chunk = order[start:start + world * batch_size]
        chunk += order[: max(0, world - len(chunk))]
        steps.append([chunk[rank::world] for rank in range(world)])
    return steps


def training_steps(num_rows: int, seed: int, world: int, batch_size: int, epochs: int, start_epoch: int = 0,
                   start_index: int = 0):
    """(epoch, index within the epoch, per-worker row positions) of every step from step ``start_index`` of
    epoch ``start_epoch`` on: a run resumed there continues exactly as an uninterrupted run would."""
    for epoch in range(start_epoch, epochs):
        steps = epoch_steps(num_rows, seed, epoch, world, batch_size)
        for index in range(start_index if epoch == start_epoch else 0, len(steps)):
            yield epoch, index, steps[index]


def text_key(text: str) -> int:
    """A 62-bit key of a passage's text (or id), stable across processes (unlike ``hash``)."""
    digest = hashlib.blake2b(text.strip().encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def passage_keys(texts: Sequence[str], ids: Sequence[str]) -> list[tuple[int, int]]:
    """(text key, id key) of each passage; ``NO_ID`` where its id is unknown (empty)."""
    return [(text_key(t), text_key("id\x1f" + i) if i else NO_ID) for t, i in zip(texts, ids)]


def reject_reason(row: dict[str, Any]) -> str | None:
    """Why a training row cannot be used (it is skipped and counted), or None."""
    if not (row.get("query") or "").strip():
        return "empty_query"
    if not [p for p in (row.get("positives") or []) if p and p.strip()]:
        return "missing_positive"
    return None


def sample_group(positives: Sequence[str], negatives: Sequence[str], group_size: int,
                 rng: random.Random) -> tuple[list[str], list[int]]:
    """One positive and ``group_size - 1`` hard negatives (repeated when too few); also their row indices.

    Indices count the given positives first, then the given negatives. Without any negative the
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
    doc_keys: torch.Tensor
    """(passages, 2) text and id key of every passage, in ``docs`` order."""
    positive_keys: torch.Tensor
    """(queries, max positives, 2) keys of each query's positives (``PAD_KEY`` padded): a passage with the
    same text or id is never one of that query's negatives."""
    teacher: torch.Tensor | None = None
    """(queries, group_size) teacher scores of the sampled passages, when every row carries them."""
    stats: Counter = field(default_factory=Counter)

    @property
    def num_queries(self) -> int:
        return self.query["input_ids"].shape[0]

    @property
    def num_tokens(self) -> int:
        return int(self.query["attention_mask"].sum() + self.docs["attention_mask"].sum())

    def to(self, device: torch.device | str) -> "TrainingBatch":
        """The same batch with every tensor (inputs, labels, keys, teacher scores) on ``device``."""
        move = lambda tensors: {k: v.to(device, non_blocking=True) for k, v in tensors.items()}  # noqa: E731
        return TrainingBatch(query=move(self.query), docs=move(self.docs), group_size=self.group_size,
                             doc_keys=self.doc_keys.to(device), positive_keys=self.positive_keys.to(device),
                             teacher=None if self.teacher is None else self.teacher.to(device), stats=self.stats)


def _ids(ids: Sequence[str] | None, n: int) -> list[str]:
    ids = list(ids or [])
    return ids + [""] * (n - len(ids))


def _negatives(row: dict[str, Any]) -> list[tuple[str, str, int]]:
    """The row's non-blank negatives: (text, id or "", position among the row's negatives)."""
    texts = list(row.get("negatives") or [])
    ids = _ids(row.get("negative_ids"), len(texts))
    return [(t, ids[i], i) for i, t in enumerate(texts) if t and t.strip()]


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
    queries, thoughts, docs, doc_keys, positive_keys, teacher_rows = [], [], [], [], [], []
    for row in kept:
        thought = row.get("thought") or ""
        if not thought.strip():
            stats["empty_thought"] += 1
            thought = ""
        elif rng.random() < seq.thought_dropout:
            stats["thought_dropped"] += 1
            thought = ""
        positives = list(row["positives"])
        positive_ids = _ids(row.get("positive_ids"), len(positives))
        negatives = _negatives(row)
        scores = row.get("teacher_scores")
        if not negatives and size > 1:
            # Other rows of the batch lend their hard negatives; teacher scores cannot follow them.
            stats["negatives_borrowed"] += 1
            negatives = [n for r in kept if r is not row for n in _negatives(r)]
            scores = None
        group, order = sample_group(positives, [text for text, _, _ in negatives], size, rng)
        keys = passage_keys(positives + [text for text, _, _ in negatives],
                            positive_ids + [i for _, i, _ in negatives])
        queries.append(row["query"])
        thoughts.append(thought)
        docs.extend(group)
        doc_keys.extend(keys[i] for i in order)
        positive_keys.append([k for k, p in zip(keys, positives) if p and p.strip()])
        try:  # teacher_scores count positives then every negative, the blank ones included
            where = [i if i < len(positives) else len(positives) + negatives[i - len(positives)][2] for i in order]
            teacher_rows.append(None if scores is None else [float(scores[i]) for i in where])
        except IndexError:
            stats["teacher_scores_short"] += 1
            teacher_rows.append(None)
    teacher = None
    if all(t is not None for t in teacher_rows):
        teacher = torch.tensor(teacher_rows, dtype=torch.float32)
    stats["rows"] += len(kept)
    width = max(len(k) for k in positive_keys)
    return TrainingBatch(
        query=encode_queries(tokenizer, queries, thoughts, seq, stats),
        docs=encode_documents(tokenizer, docs, seq, stats),
        group_size=size, teacher=teacher, stats=stats,
        doc_keys=torch.tensor(doc_keys, dtype=torch.long),
        positive_keys=torch.tensor([k + [(PAD_KEY, PAD_KEY)] * (width - len(k)) for k in positive_keys],
                                   dtype=torch.long),
    )
