"""Token sequences of O1 Embedder (PAPER.md §3 and §4), pure and Ray-free: what train builds and eval encodes.

Query side:    [bos] <query> q[:32] </query> <thought> thought <eos> <emb>     (max 256, left padded)
  two-emb:     [bos] <query> q[:32] <emb> <thought> thought <eos> <emb>
  no thought:  [bos] <query> q[:32] </query> <thought> <emb>                  (dropped, or eval's k=0)
Labels:        the thought tokens and the eos; everything else (prompt, <emb>, padding) is -100. Without a
               thought nothing is labelled, as the reference code builds it (its eos comes with the thought).
Document side: [bos] passage[:192] <emb>
Left padding puts every sequence's final ``<emb>`` at the last position.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from pydantic import Field

from o1e.config import Section

QUERY_OPEN, QUERY_CLOSE, THOUGHT, EMB = "<query>", "</query>", "<thought>", "<emb>"
SPECIAL_TOKENS = (QUERY_OPEN, QUERY_CLOSE, THOUGHT, EMB)
IGNORE = -100


class SequenceConfig(Section):
    """How query-side and document-side token sequences are built."""

    query_max_tokens: int = Field(32, ge=1)
    """The query is cut to this many tokens inside ``<query>…</query>``."""
    max_length: int = Field(256, ge=8)
    """Query-side sequence length cap (prompt + thought + eos + ``<emb>``); the thought is cut to fit."""
    doc_max_tokens: int = Field(192, ge=1)
    """The passage is cut to this many tokens before ``<emb>``."""
    thought_dropout: float = Field(0.1, ge=0.0, le=1.0)
    """Probability that a training thought is replaced by the empty string."""
    two_emb: bool = False
    """The paper figure's variant: ``<query> q <emb> <thought> t </s> <emb>``, adding a query-only embedding."""


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
    return tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]


def query_prompt_ids(query_tokens: list[int], ids: TokenIds, cfg: SequenceConfig) -> list[int]:
    """The prompt before the thought: what generation starts from."""
    q = query_tokens[: cfg.query_max_tokens]
    middle = [ids.emb] if cfg.two_emb else [ids.query_close]
    return ids.head + [ids.query_open, *q, *middle, ids.thought]


def query_sequence(query_tokens: list[int], thought_tokens: list[int], ids: TokenIds,
                   cfg: SequenceConfig) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, thought_was_cut) of one query + thought, ``<emb>`` last; an empty thought gives
    ``prompt <emb>`` with no label."""
    prompt = query_prompt_ids(query_tokens, ids, cfg)
    if not thought_tokens:
        return prompt + [ids.emb], [IGNORE] * (len(prompt) + 1), False
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


@dataclass(frozen=True)
class ThoughtPrompt:
    """Renderer for the ``o1e.llm`` engines: the exact ids the O1 model writes its thought after,
    ``[bos] <query> q[:32] </query> <thought>`` (PAPER.md §4)."""

    seq: SequenceConfig
    kind: ClassVar[str] = "tokens"

    def token_ids(self, query: str, tokenizer) -> list[int]:
        return query_prompt_ids(_pieces(tokenizer, [query])[0], TokenIds.of(tokenizer), self.seq)


def encode_prompts(tokenizer, queries: Sequence[str], cfg: SequenceConfig) -> dict[str, torch.Tensor]:
    """Left-padded generation prompts ``<query>q</query><thought>``."""
    ids = TokenIds.of(tokenizer)
    seqs = [query_prompt_ids(q, ids, cfg) for q in _pieces(tokenizer, queries)]
    return {"input_ids": pad_left(seqs, ids.pad), "attention_mask": attention_mask(seqs)}
