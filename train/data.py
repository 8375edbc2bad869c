"""Token sequences of O1 Embedder (../shared/PAPER.md §3), pure and Ray-free.

Query side:    [bos] <query> q[:32] </query> <thought> thought <eos> <emb>     (max 256, left padded)
  two-emb:     [bos] <query> q[:32] <emb> <thought> thought <eos> <emb>
Labels:        the thought tokens and the eos; everything else (prompt, <emb>, padding) is -100.
Document side: [bos] passage[:192] <emb>
Left padding puts every sequence's final ``<emb>`` at the last position.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from train.config import SequenceConfig

QUERY_OPEN, QUERY_CLOSE, THOUGHT, EMB = "<query>", "</query>", "<thought>", "<emb>"
SPECIAL_TOKENS = (QUERY_OPEN, QUERY_CLOSE, THOUGHT, EMB)
IGNORE = -100


def add_special_tokens(tokenizer) -> int:
    """Register the four O1 tokens (idempotent), left padding, and a pad token; returns how many were new."""
    have = set(tokenizer.get_vocab())
    missing = [t for t in SPECIAL_TOKENS if t not in have]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token: the generation target ends with eos; set one first")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return added


@dataclass(frozen=True)
class TokenIds:
    query_open: int
    query_close: int
    thought: int
    emb: int
    eos: int
    pad: int
    bos: int | None

    @classmethod
    def of(cls, tokenizer) -> "TokenIds":
        ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            raise ValueError(f"tokenizer lacks the O1 special tokens {SPECIAL_TOKENS}: call add_special_tokens")
        return cls(*ids, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id, bos=tokenizer.bos_token_id)

    @property
    def head(self) -> list[int]:
        return [] if self.bos is None else [self.bos]


def _pieces(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def query_prompt_ids(query_tokens: list[int], ids: TokenIds, cfg: SequenceConfig) -> list[int]:
    """The prompt before the thought: what generation starts from."""
    q = query_tokens[: cfg.query_max_tokens]
    middle = [ids.emb] if cfg.two_emb else [ids.query_close]
    return ids.head + [ids.query_open, *q, *middle, ids.thought]


def query_sequence(query_tokens: list[int], thought_tokens: list[int], ids: TokenIds,
                   cfg: SequenceConfig) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, thought_was_cut) of one query + thought, ``<emb>`` last."""
    prompt = query_prompt_ids(query_tokens, ids, cfg)
    room = cfg.max_length - len(prompt) - 2  # eos + <emb>
    cut = len(thought_tokens) > room
    thought = thought_tokens[: max(room, 0)]
    input_ids = prompt + thought + [ids.eos, ids.emb]
    labels = [IGNORE] * len(prompt) + thought + [ids.eos, IGNORE]
    return input_ids, labels, cut


def document_sequence(doc_tokens: list[int], ids: TokenIds, cfg: SequenceConfig) -> list[int]:
    return ids.head + doc_tokens[: cfg.doc_max_tokens] + [ids.emb]


def pad_left(seqs: Sequence[list[int]], pad_value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([[pad_value] * (width - len(s)) + list(s) for s in seqs], dtype=torch.long)


def attention_mask(seqs: Sequence[list[int]]) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long)


def encode_queries(tokenizer, queries: Sequence[str], thoughts: Sequence[str], cfg: SequenceConfig,
                   stats: Counter | None = None) -> dict[str, torch.Tensor]:
    """Left-padded query-side batch: input_ids, attention_mask, labels."""
    ids = TokenIds.of(tokenizer)
    seqs, labels = [], []
    for q, t in zip(_pieces(tokenizer, queries), _pieces(tokenizer, thoughts)):
        s, lab, cut = query_sequence(q, t, ids, cfg)
        if stats is not None:
            stats["thought_truncated"] += int(cut)
            stats["query_truncated"] += int(len(q) > cfg.query_max_tokens)
        seqs.append(s)
        labels.append(lab)
    return {"input_ids": pad_left(seqs, ids.pad), "attention_mask": attention_mask(seqs),
            "labels": pad_left(labels, IGNORE)}


def encode_documents(tokenizer, docs: Sequence[str], cfg: SequenceConfig,
                     stats: Counter | None = None) -> dict[str, torch.Tensor]:
    ids = TokenIds.of(tokenizer)
    pieces = _pieces(tokenizer, docs)
    if stats is not None:
        stats["doc_truncated"] += sum(len(p) > cfg.doc_max_tokens for p in pieces)
    seqs = [document_sequence(p, ids, cfg) for p in pieces]
    return {"input_ids": pad_left(seqs, ids.pad), "attention_mask": attention_mask(seqs)}


def encode_prompts(tokenizer, queries: Sequence[str], cfg: SequenceConfig) -> dict[str, torch.Tensor]:
    """Left-padded generation prompts ``<query>q</query><thought>``."""
    ids = TokenIds.of(tokenizer)
    seqs = [query_prompt_ids(q, ids, cfg) for q in _pieces(tokenizer, queries)]
    return {"input_ids": pad_left(seqs, ids.pad), "attention_mask": attention_mask(seqs)}


# ---------------------------------------------------------------------------------------------------
# Rows -> training groups


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
