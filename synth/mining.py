"""Hard-negative mining for ``o1e synth prepare`` (no Ray): the corpus, its retrieval index and each row's
pick of negatives, held by a ``MiningWorker`` that the driver runs in a Ray actor, so that the driver
never holds the corpus, its texts or the index."""

from __future__ import annotations

from typing import Callable

import numpy as np

from o1e import beir
from o1e.provenance import fingerprint
from o1e.retrievers import build_retriever, drop_hits, encode_in_batches, flat_ip_index, flat_ip_search
from o1e.synth.config import MiningConfig, PrepareConfig
from o1e.synth.training_rows import Row, load_beir, read_jsonl_rows

RowToMine = tuple[str, str, list[str]]
"""(query id, query, positive ids): what the worker needs of a row to mine its negatives."""


class Miner:
    """Top-``depth`` retrieval over the corpus with a retriever from ``o1e.retrievers`` (``mining.method``).
    ``progress`` is called with the number of passages encoded after each batch (dense methods)."""

    def __init__(self, cfg: MiningConfig, texts: list[str], progress: Callable[[int], None] | None = None) -> None:
        self.cfg = cfg
        if cfg.method == "bm25":
            from o1e.bm25 import BM25Index

            self.index = BM25Index(texts, cfg.bm25)
            return
        from o1e.models import resolve_model_dir

        config = cfg.dense if cfg.method == "dense" else cfg.o1
        self.retriever = build_retriever(config, resolve_model_dir(config.model))
        batch = max(config.batch_size * 16, 256)
        sizes = [min(batch, len(texts) - start) for start in range(0, len(texts), batch)]
        self.faiss = flat_ip_index(encode_in_batches(self.retriever.encode_documents, texts, sizes, progress))

    def search(self, queries: list[str], k: int) -> list[list[int]]:
        if self.cfg.method == "bm25":
            return [self.index.top_k(q, k)[0].tolist() for q in queries]
        _, found = flat_ip_search(self.faiss, self.retriever.encode_pairs(queries, [""] * len(queries)), k)
        return [[int(i) for i in row if i >= 0] for row in found]


def pick_negatives(query_id: str, positive_ids: list[str], ranked: list[int], corpus_ids: list[str],
                   cfg: MiningConfig) -> list[int]:
    """Corpus positions of a row's hard negatives: the top ``depth`` minus positives and self-hits."""
    pool = drop_hits(ranked, set(positive_ids) | {query_id}, cfg.depth, corpus_ids.__getitem__)
    if cfg.pick == "top" or len(pool) <= cfg.count:
        return pool[: cfg.count]
    rng = np.random.default_rng([cfg.seed, int(fingerprint(query_id, 15), 16)])
    chosen = sorted(rng.choice(len(pool), size=cfg.count, replace=False).tolist())
    return [pool[j] for j in chosen]


class MiningWorker:
    """The corpus and the mining index of one ``o1e synth prepare`` run, answering per batch of rows.

    ``load`` reads the corpus: ``dataset.corpus``, else every passage the JSONL rows carry (a first pass
    over the rows, with the driver's own checks), else the BEIR dataset's, whose judged queries it then
    also holds and hands out batch by batch (``beir_rows``). The number of passages retrieved per query
    is the same for every row of the run (``depth`` + 1 + the most positives any row to mine has), so a
    row's negatives do not depend on the batch it is mined in, also where scores tie at the cut.
    """

    def __init__(self, cfg: PrepareConfig, kind: str) -> None:
        self.cfg, self.kind = cfg, kind
        self.corpus_ids: list[str] = []
        self.corpus_texts: list[str] = []
        self.rows: list[Row] = []
        self.miner: Miner | None = None
        self.k = 0

    def load(self) -> dict:
        """Read the corpus (and a BEIR split's rows); returns ``corpus`` (passages), ``to_mine`` (rows
        without negatives) and, for BEIR, ``rows`` and ``rejects``."""
        src = self.cfg.dataset
        if self.kind == "beir":
            source = load_beir(src)
            self.rows, self.corpus_ids, self.corpus_texts = source.rows, source.corpus_ids, source.corpus_texts
            self.k = self.cfg.mining.depth + 1 + max((len(r.positive_ids) for r in self.rows), default=0)
            return {"corpus": len(self.corpus_ids), "to_mine": len(self.rows), "rows": len(self.rows),
                    "rejects": source.rejects}
        passages: dict[str, str] = {}
        to_mine = most_positives = 0
        for row in read_jsonl_rows(src, [], []):
            if not row.negatives:
                to_mine += 1
                most_positives = max(most_positives, len(row.positive_ids))
            if not src.corpus:
                passages.update(zip(row.positive_ids, row.positives))
                passages.update(zip(row.negative_ids, row.negatives))
        if src.corpus:
            loaded = beir.load_corpus(src.corpus, src.on_bad_line)
            self.corpus_ids, self.corpus_texts = loaded.ids, loaded.passages()
        else:
            self.corpus_ids, self.corpus_texts = list(passages), list(passages.values())
        self.k = self.cfg.mining.depth + 1 + most_positives
        return {"corpus": len(self.corpus_ids), "to_mine": to_mine}

    def build_index(self, progress: Callable[[int], None] | None = None) -> None:
        """Index the corpus; ``progress`` is called with the passages encoded after each batch."""
        self.miner = Miner(self.cfg.mining, self.corpus_texts, progress)

    def mine(self, rows: list[RowToMine]) -> list[tuple[list[str], list[str]]]:
        """Each row's hard negatives: (ids, texts)."""
        found = self.miner.search([query for _, query, _ in rows], self.k)
        negatives = []
        for (query_id, _, positive_ids), ranked in zip(rows, found):
            picked = pick_negatives(query_id, positive_ids, ranked, self.corpus_ids, self.cfg.mining)
            negatives.append(([self.corpus_ids[j] for j in picked], [self.corpus_texts[j] for j in picked]))
        return negatives

    def beir_rows(self, start: int, count: int) -> list[Row]:
        """Rows ``start`` to ``start + count`` of a BEIR split, with their mined negatives once the index
        is built."""
        rows = self.rows[start:start + count]
        if self.miner is not None:
            for row, (ids, texts) in zip(rows, self.mine([(r.query_id, r.query, r.positive_ids) for r in rows])):
                row.negative_ids, row.negatives = ids, texts
        return rows
