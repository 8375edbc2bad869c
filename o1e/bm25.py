"""BM25 over a corpus of texts, through rank-bm25 (Okapi) or bm25s (Lucene's variant, for large corpora).

Tokenisation is explicit config, because it moves BM25 figures more than k1 and b do. The defaults here
mimic Lucene's English analyzer (word tokens, lower case, its 33 stop words, Porter stemming); the
paper's committee uses the plain form of the reference code, ``text.strip().lower().split(" ")`` (single
spaces only: runs of spaces give empty tokens, newlines stay inside tokens), which ``PAPER_TOKENIZER`` names.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

import numpy as np

from o1e.config import Section


class TokenizerConfig(Section):
    lowercase: bool = True
    split: Literal["words", "whitespace", "space"] = "words"
    """``words``: runs of letters and digits (regex ``\\w+``); ``whitespace``: ``str.split()``; ``space``:
    ``str.strip().split(" ")``, the reference committee code's tokenisation."""
    stopwords: Literal["none", "lucene_en"] = "lucene_en"
    """``lucene_en``: Lucene's English stop set (33 words, as shipped by bm25s)."""
    stemmer: Literal["none", "porter", "english"] = "porter"
    """Snowball stemmers from PyStemmer: ``porter`` is Lucene's PorterStemFilter, ``english`` is Porter2."""

    def describe(self) -> str:
        split = {"words": "\\w+ tokens", "whitespace": "white-space split", "space": "split on single spaces"}
        parts = ["lower-cased" if self.lowercase else "case kept", split[self.split],
                 "Lucene English stop words" if self.stopwords == "lucene_en" else "no stop words",
                 f"{self.stemmer} stemmer" if self.stemmer != "none" else "no stemming"]
        return ", ".join(parts)


PAPER_TOKENIZER = TokenizerConfig(lowercase=True, split="space", stopwords="none", stemmer="none")


class Tokenizer:
    _WORDS = re.compile(r"\w+")

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config
        self.stopwords: frozenset[str] = frozenset()
        if config.stopwords == "lucene_en":
            from bm25s.stopwords import STOPWORDS_EN

            self.stopwords = frozenset(STOPWORDS_EN)
        self.stemmer = None
        if config.stemmer != "none":
            import Stemmer

            self.stemmer = Stemmer.Stemmer(config.stemmer)

    def __call__(self, text: str) -> list[str]:
        if self.config.lowercase:
            text = text.lower()
        if self.config.split == "words":
            tokens = self._WORDS.findall(text)
        elif self.config.split == "whitespace":
            tokens = text.split()
        else:
            tokens = text.strip().split(" ")
        if self.stopwords:
            tokens = [t for t in tokens if t not in self.stopwords]
        if self.stemmer is not None:
            tokens = self.stemmer.stemWords(tokens)
        return tokens


class BM25Config(Section):
    backend: Literal["rank_bm25", "bm25s"] = "rank_bm25"
    """``rank_bm25``: BM25Okapi from rank-bm25; ``bm25s``: bm25s's sparse matrices (method ``lucene``)."""
    k1: float = 1.2
    b: float = 0.75
    tokenizer: TokenizerConfig = TokenizerConfig()

    def describe(self) -> str:
        variant = "rank-bm25 BM25Okapi" if self.backend == "rank_bm25" else "bm25s (Lucene IDF)"
        return f"{variant}, k1={self.k1}, b={self.b}; tokenisation: {self.tokenizer.describe()}"


class BM25Index:
    """A BM25 index over ``texts``; ``scores`` gives every document's score for a query."""

    def __init__(self, texts: list[str], config: BM25Config) -> None:
        self.config = config
        self.tokenize = Tokenizer(config.tokenizer)
        self.size = len(texts)
        tokens = [self.tokenize(t) for t in texts]
        if config.backend == "rank_bm25":
            from rank_bm25 import BM25Okapi

            self._okapi = BM25Okapi(tokens, k1=config.k1, b=config.b)
        else:
            import bm25s

            self._bm25s = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
            self._bm25s.index(tokens, show_progress=False)

    @cached_property
    def _vocab(self) -> dict[str, int]:
        return self._bm25s.vocab_dict

    def scores(self, query: str) -> np.ndarray:
        tokens = self.tokenize(query)
        if self.config.backend == "rank_bm25":
            return np.asarray(self._okapi.get_scores(tokens), dtype=np.float32)
        ids = [self._vocab[t] for t in tokens if t in self._vocab]
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25s.get_scores(ids), dtype=np.float32)

    def top_k(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the ``k`` best documents, best first (ties: lower index first)."""
        scores = self.scores(query)
        k = min(k, self.size)
        part = np.argpartition(-scores, k - 1)[:k] if k < self.size else np.arange(self.size)
        order = np.lexsort((part, -scores[part]))
        best = part[order]
        return best, scores[best]
