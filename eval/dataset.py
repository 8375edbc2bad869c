"""The split eval scores: queries and qrels in the driver (small), the corpus as a Parquet dataset that
workers read (``o1e.corpus``). Ray-free: the driver runs ``prepare_corpus`` as a Ray task."""

from __future__ import annotations

from dataclasses import dataclass

from o1e import beir, corpus as corpus_data, storage
from o1e.corpus import CorpusDataset
from o1e.schemas import Reject


@dataclass
class EvalDataset(beir.BeirDataset):
    corpus: CorpusDataset  # a Parquet dataset the workers read, not texts held here

    def source_ref(self) -> dict:
        """How the datasets eval writes name this split in their lineage (with its licence, where stated)."""
        return beir.source_ref(self.url, split=self.split, corpus_fingerprint=self.corpus.fingerprint)


def prepare_corpus(source: str, root: str, on_bad_line: beir.OnBadLine, judged_doc_ids: list[str],
                   part_rows: int) -> tuple[CorpusDataset | str, list[str]]:
    """The corpus dataset of ``source`` under ``root`` (converted, or found from an earlier run) and which
    of ``judged_doc_ids`` it lacks; or the one-line error that rejects the corpus, and no ids."""
    try:
        converted = corpus_data.prepare(source, root, on_bad_line, part_rows)
    except beir.DatasetError as err:
        return str(err), []
    return converted, corpus_data.missing_ids(converted.url, judged_doc_ids)


def load(url: str, split: str, on_bad_line: beir.OnBadLine, drop_unknown_docs: bool, run_corpus_task,
         max_queries: int | None = None) -> EvalDataset:
    """Load the split's queries and qrels here, the corpus through ``run_corpus_task(source,
    judged_doc_ids)`` (which runs ``prepare_corpus`` on a worker). Same checks and rejects as ``beir.load``."""
    qrels_url = beir.check_layout(url, split)
    rejects: list[Reject] = []
    all_queries = beir.load_queries(storage.join(url, "queries.jsonl"), on_bad_line, rejects)
    raw_qrels = beir.first_queries(beir.load_qrels(qrels_url, on_bad_line, rejects), max_queries)
    judged = list(dict.fromkeys(d for docs in raw_qrels.values() for d in docs))
    converted, missing = run_corpus_task(storage.join(url, "corpus.jsonl"), judged)
    if isinstance(converted, str):
        raise beir.DatasetError(converted)
    rejects = converted.rejects + rejects  # in the order beir.load reports them: the corpus first
    queries, qrels = beir.resolve_judgments(qrels_url, all_queries, raw_qrels, set(missing), rejects,
                                            drop_unknown_docs=drop_unknown_docs)
    return EvalDataset(url=url, split=split, corpus=converted, queries=queries, qrels=qrels, rejects=rejects)
