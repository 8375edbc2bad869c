"""Reading BEIR-format datasets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), locally or from S3.

Problems are named by file and line. A malformed line is an error by default (``on_bad_line="error"``):
silently evaluating on a shrunken corpus would inflate every metric. With ``on_bad_line="skip"`` it
becomes a counted reject instead. Qrels that name an unknown query are skipped and counted; qrels that
name a document missing from the corpus are counted and kept, as BEIR's loader and MTEB keep them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import Iterator, Literal

from o1e import storage
from o1e.schemas import Reject

OnBadLine = Literal["error", "skip"]


class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message names the file and line."""


@dataclass
class Corpus:
    ids: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def passages(self, sep: str = " ") -> list[str]:
        """Each document as ``title + sep + text``, stripped: the form BEIR's dense models encode."""
        return [(t + sep + x).strip() for t, x in zip(self.titles, self.texts)]


@dataclass
class BeirDataset:
    url: str
    split: str
    corpus: Corpus
    queries: dict[str, str]  # only the queries judged in this split, in qrels order
    qrels: dict[str, dict[str, int]]
    rejects: list[Reject] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "documents": len(self.corpus),
            "queries": len(self.queries),
            "judgments": sum(len(v) for v in self.qrels.values()),
            "rejects": len(self.rejects),
        }


def iter_lines(url: str, on_bad_line: OnBadLine, rejects: list[Reject]) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file, numbered from 1. A line that is not valid UTF-8 is an error naming
    the file and line, or with ``on_bad_line="skip"`` a ``bad_line`` reject."""
    with storage.open_input(url) as raw:
        # surrogateescape keeps reading past invalid bytes, so the bad line itself can be named
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape"), start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as err:
                message = (f"{url} line {number}: not valid UTF-8 (byte {ord(line[err.start]) - 0xDC00:#04x} at "
                           f"character {err.start + 1})")
                if on_bad_line == "error":
                    raise DatasetError(f"{message}: re-encode the file as UTF-8, or on_bad_line=skip to reject "
                                       "the line") from None
                rejects.append(Reject(url, str(number), "bad_line", message))
                continue
            yield number, line


def read_jsonl(url: str, on_bad_line: OnBadLine, rejects: list[Reject]) -> Iterator[tuple[int, dict]]:
    for number, line in iter_lines(url, on_bad_line, rejects):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            if not isinstance(obj.get("_id"), (str, int)):
                raise ValueError("missing field '_id'")
        except ValueError as err:
            message = f"{url} line {number}: {err}"
            if on_bad_line == "error":
                raise DatasetError(f"{message} (fix the line, or on_bad_line=skip to reject it)") from None
            rejects.append(Reject(url, str(number), "bad_line", message))
            continue
        yield number, obj


def load_corpus(url: str, on_bad_line: OnBadLine = "error", rejects: list[Reject] | None = None) -> Corpus:
    rejects = [] if rejects is None else rejects
    corpus = Corpus()
    seen: set[str] = set()
    digest = hashlib.sha256()
    for number, obj in read_jsonl(url, on_bad_line, rejects):
        doc_id = str(obj["_id"])
        if doc_id in seen:
            message = f"{url} line {number}: duplicate document id {doc_id!r}"
            if on_bad_line == "error":
                raise DatasetError(message)
            rejects.append(Reject(url, str(number), "duplicate_doc", message))
            continue
        seen.add(doc_id)
        title, text = str(obj.get("title") or ""), str(obj.get("text") or "")
        corpus.ids.append(doc_id)
        corpus.titles.append(title)
        corpus.texts.append(text)
        digest.update(json.dumps([doc_id, title, text]).encode("utf-8"))
    if not corpus.ids:
        raise DatasetError(f"{url}: the corpus is empty")
    corpus.fingerprint = digest.hexdigest()[:16]
    return corpus


def load_queries(url: str, on_bad_line: OnBadLine = "error", rejects: list[Reject] | None = None) -> dict[str, str]:
    """Query id -> text. An empty query and a repeated id (the first copy is kept) are rejects."""
    rejects = [] if rejects is None else rejects
    queries: dict[str, str] = {}
    for number, obj in read_jsonl(url, on_bad_line, rejects):
        query_id, text = str(obj["_id"]), obj.get("text")
        if query_id in queries:
            rejects.append(Reject(url, query_id, "duplicate_query",
                                  f"{url} line {number}: query id {query_id!r} repeated; the first copy is kept"))
        elif not isinstance(text, str) or not text.strip():
            rejects.append(Reject(url, query_id, "empty_query",
                                  f"{url} line {number}: query {query_id!r} has no text (got {text!r})"))
        else:
            queries[query_id] = text
    return queries


def first_queries(qrels: dict[str, dict[str, int]], max_queries: int | None) -> dict[str, dict[str, int]]:
    """The judgments of the first ``max_queries`` queries in the qrels file's order (all for ``None``)."""
    if max_queries is None:
        return qrels
    return dict(list(qrels.items())[:max_queries])


def load_qrels(url: str, on_bad_line: OnBadLine = "error", rejects: list[Reject] | None = None
               ) -> dict[str, dict[str, int]]:
    rejects = [] if rejects is None else rejects
    qrels: dict[str, dict[str, int]] = {}
    for number, line in iter_lines(url, on_bad_line, rejects):
        if not line.strip():
            continue
        fields = next(csv.reader([line.rstrip("\r\n")], delimiter="\t"))
        try:
            if len(fields) != 3:
                raise ValueError(f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}")
            query_id, doc_id, score = fields
            relevance = int(score)
        except ValueError as err:
            if number == 1:  # BEIR's header line: query-id corpus-id score
                continue
            message = f"{url} line {number}: {err}"
            if on_bad_line == "error":
                raise DatasetError(message) from None
            rejects.append(Reject(url, str(number), "bad_line", message))
            continue
        qrels.setdefault(query_id, {})[doc_id] = relevance
    return qrels


def available_splits(url: str) -> list[str]:
    return [n[: -len(".tsv")] for n in storage.listdir(storage.join(url, "qrels")) if n.endswith(".tsv")]


def check_layout(url: str, split: str, corpus_file: str = "corpus.jsonl", queries_file: str = "queries.jsonl"
                 ) -> str:
    """The split's qrels file, after checking that the folder holds every file a BEIR dataset needs."""
    if not storage.is_dir(url):
        raise DatasetError(f"dataset folder not found: {url} (give a BEIR folder or s3:// prefix holding "
                           "corpus.jsonl, queries.jsonl and qrels/)")
    qrels_url = storage.join(url, "qrels", f"{split}.tsv")
    if not storage.exists(qrels_url):
        splits = available_splits(url)
        raise DatasetError(f"split {split!r} not found: no {qrels_url} (available splits: {splits or 'none'})")
    for name in (corpus_file, queries_file):
        if not storage.exists(storage.join(url, name)):
            raise DatasetError(f"{storage.join(url, name)} not found: a BEIR dataset needs {name}")
    return qrels_url


def resolve_judgments(qrels_url: str, all_queries: dict[str, str], raw_qrels: dict[str, dict[str, int]],
                      missing_docs: set[str], rejects: list[Reject], *, drop_unknown_docs: bool = False,
                      corpus_file: str = "corpus.jsonl", queries_file: str = "queries.jsonl"
                      ) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The judged queries and their qrels, given the judged documents the corpus lacks (``missing_docs``):
    qrels naming an unknown query are rejects; unknown documents are counted and kept (or dropped)."""
    rejected_queries = {r.row for r in rejects if r.reason == "empty_query"}
    qrels: dict[str, dict[str, int]] = {}
    for query_id, judged in raw_qrels.items():
        if query_id in rejected_queries:  # counted once, as the query's own reject
            continue
        if query_id not in all_queries:
            rejects.append(Reject(qrels_url, query_id, "unknown_query",
                                  f"{qrels_url}: query {query_id!r} is not in {queries_file}"))
            continue
        fate = "dropped" if drop_unknown_docs else "kept in the judgments, never retrieved"
        for doc_id in judged:
            if doc_id in missing_docs:
                rejects.append(Reject(qrels_url, f"{query_id}/{doc_id}", "unknown_doc",
                                      f"{qrels_url}: query {query_id!r} judges {doc_id!r}, not in {corpus_file} "
                                      f"({fate})"))
        kept = {d: r for d, r in judged.items() if d not in missing_docs or not drop_unknown_docs}
        if kept:
            qrels[query_id] = kept
    if not qrels:
        raise DatasetError(f"{qrels_url}: no usable judgments (every qrel names an unknown query or document)")
    return {q: all_queries[q] for q in qrels}, qrels


def load(url: str, split: str, on_bad_line: OnBadLine = "error", *, corpus_file: str = "corpus.jsonl",
         queries_file: str = "queries.jsonl", drop_unknown_docs: bool = False) -> BeirDataset:
    """Load one split of a BEIR dataset. Qrels naming an unknown query are rejects. Qrels naming a document
    missing from the corpus are counted (reason ``unknown_doc``) and, as BEIR's loader and MTEB do, kept in
    the judgments: the document is simply never retrieved. ``drop_unknown_docs`` drops them instead (what
    a stage that needs the judged passages' text must do)."""
    qrels_url = check_layout(url, split, corpus_file, queries_file)
    rejects: list[Reject] = []
    corpus = load_corpus(storage.join(url, corpus_file), on_bad_line, rejects)
    all_queries = load_queries(storage.join(url, queries_file), on_bad_line, rejects)
    raw_qrels = load_qrels(qrels_url, on_bad_line, rejects)
    known_docs = set(corpus.ids)
    missing = {d for judged in raw_qrels.values() for d in judged if d not in known_docs}
    queries, qrels = resolve_judgments(qrels_url, all_queries, raw_qrels, missing, rejects,
                                       drop_unknown_docs=drop_unknown_docs, corpus_file=corpus_file,
                                       queries_file=queries_file)
    return BeirDataset(url=url, split=split, corpus=corpus, queries=queries, qrels=qrels, rejects=rejects)


def source_ref(url: str, **fields) -> dict:
    """How a dataset made from the source at ``url`` names it in its lineage: ``url``, ``fields``, and the
    source's licence where its README states one."""
    licence = source_licence(url)
    return {"url": url, **fields, **({"licence": licence} if licence else {})}


def source_licence(url: str) -> str | None:
    """The licence a dataset's README states (a ``Licence:`` line), looked for in the dataset's folder and
    the two above it (a collection's README), never above a bucket; None when none says or none can be read."""
    scheme, sep, path = url.partition("://")
    prefix = f"{scheme}{sep}" if sep else ""
    parts = (path if sep else url).rstrip("/").split("/")
    if parts[-1].endswith((".jsonl", ".json")):  # a rows file: its folder's README
        parts = parts[:-1]
    floor = 1 if sep else 0  # an object store's bucket is as high as it goes
    for depth in range(len(parts), max(floor, len(parts) - 3), -1):
        readme = prefix + "/".join(parts[:depth] + ["README.md"])
        try:
            if not storage.exists(readme):
                continue
            for line in storage.read_text(readme).splitlines():
                match = re.search(r"Licen[cs]e:\s*(.+?)(?:\.\s|\.?$)", line)
                if match:
                    return match.group(1).strip()
        except storage.StorageError:
            return None
    return None
