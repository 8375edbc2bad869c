"""Committee members behind one interface: score a batch of groups (one gold document, N candidate
thoughts each) and return one score per candidate. Ray-free; the driver runs them as actors.

A batch lists its distinct gold documents once (``golds``) and each group points at one of them, so a
member encodes every gold document once however many queries in the batch share it. Adding a new kind
of member is one subclass of ``Member`` plus its config class in ``committee/config.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from o1e.committee.config import BM25Member, DenseMember
from o1e.bm25 import BM25Index
from o1e.models import resolve_model_dir
from o1e.retrievers import DenseRetriever


@dataclass
class ScoringBatch:
    batch_id: str
    golds: list[str]
    """Distinct gold documents of the batch."""
    gold_of_group: list[int]
    """For each group, its gold document's position in ``golds``."""
    thoughts: list[list[str]]
    """For each group, its candidate thoughts (at least one, none empty)."""

    @property
    def num_candidates(self) -> int:
        return sum(len(t) for t in self.thoughts)


class Member(ABC):
    def __init__(self, config, threads: int = 1) -> None:
        self.config = config
        self.name = config.name
        self.threads = max(1, threads)
        """CPU threads this member may use (its actor's CPU share)."""

    @abstractmethod
    def score(self, batch: ScoringBatch) -> list[np.ndarray]:
        """One float32 vector per group: the member's score of each of the group's candidates."""


class BM25Scorer(Member):
    """rank-bm25 Okapi over a tiny corpus of the group's candidates, queried with the gold document."""

    config: BM25Member

    def score(self, batch: ScoringBatch) -> list[np.ndarray]:
        out = []
        for gold_index, thoughts in zip(batch.gold_of_group, batch.thoughts):
            index = BM25Index(thoughts, self.config)
            out.append(index.scores(batch.golds[gold_index]))
        return out


class DenseScorer(Member):
    """cosine(gold document, thought) x 100 with a sentence-transformers / Hugging Face encoder."""

    config: DenseMember

    def __init__(self, config: DenseMember, threads: int = 1, model_dir: str | None = None) -> None:
        super().__init__(config, threads)
        self.retriever = DenseRetriever(config, model_dir or resolve_model_dir(config.model))

    def score(self, batch: ScoringBatch) -> list[np.ndarray]:
        import torch

        # Set per call: in a single-process run several members share one torch.
        torch.set_num_threads(self.threads)
        gold_vectors = self.retriever.encode_queries(batch.golds)
        flat = [t for thoughts in batch.thoughts for t in thoughts]
        thought_vectors = self.retriever.encode_documents(flat)
        out, start = [], 0
        for gold_index, thoughts in zip(batch.gold_of_group, batch.thoughts):
            block = thought_vectors[start:start + len(thoughts)]
            out.append((block @ gold_vectors[gold_index] * 100.0).astype(np.float32))
            start += len(thoughts)
        return out


SCORERS: dict[str, type[Member]] = {"bm25": BM25Scorer, "dense": DenseScorer}


def build_member(config, threads: int = 1) -> Member:
    """The scorer for a member config; ``threads``: the CPU threads it may use."""
    return SCORERS[config.kind](config, threads)
