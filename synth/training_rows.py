"""Reading training rows for ``o1e synth prepare`` (no Ray): JSONL rows, type-checked field by field and
streamed line by line, and a BEIR split's judged queries with their positives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

from o1e import beir
from o1e.schemas import Reject
from o1e.provenance import fingerprint
from o1e.synth.config import PrepareSource


@dataclass
class Row:
    query_id: str
    query: str
    positive_ids: list[str]
    positives: list[str]
    negative_ids: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    pos_scores: list[float] | None = None
    neg_scores: list[float] | None = None


def text_id(text: str) -> str:
    return "t" + fingerprint(text, 12)


def teacher_scores(obj: dict, key: str, count: int) -> list[float] | None:
    """A row's ``pos_scores`` / ``neg_scores`` (teacher scores for distillation), one number per passage;
    None when the row has none (or null)."""
    if obj.get(f"{key}_scores") is None:
        return None
    scores = _typed_list(obj, f"{key}_scores", (int, float), "number")
    if scores is not None and len(scores) != count:
        raise ValueError(f"{key}_scores must have as many entries as {key}")
    return None if scores is None else [float(s) for s in scores]


def _typed_list(obj: dict, key: str, item_types: tuple[type, ...], item: str) -> list | None:
    """The list under ``key`` (``None`` when absent), every item of ``item_types``; anything else (null, a
    number, a bare string, a list holding other things) is a ValueError naming the field, never coerced."""
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of {item}s, got {_json_type(value)}")
    for i, entry in enumerate(value):
        if not isinstance(entry, item_types) or isinstance(entry, bool):
            raise ValueError(f"{key!r}[{i}] must be a {item}, got {_json_type(entry)}")
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return f"{names.get(type(value), type(value).__name__)} {json.dumps(value)[:40]}"


def parse_jsonl_row(obj, number: int) -> Row:
    """One JSONL training row, type-checked field by field (ValueError with the reason)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(obj)}")
    if not isinstance(obj.get("query"), str):
        raise ValueError(f"'query' must be a string, got {_json_type(obj.get('query'))}")
    query_id = obj.get("query_id", obj.get("_id", f"L{number}"))
    if not isinstance(query_id, (str, int)) or isinstance(query_id, bool):
        raise ValueError(f"'query_id' must be a string or an integer, got {_json_type(query_id)}")
    pos = _typed_list(obj, "pos", (str,), "string") or []
    neg = _typed_list(obj, "neg", (str,), "string") or []
    pos_ids = _typed_list(obj, "pos_id", (str, int), "string or integer id") or [text_id(p) for p in pos]
    neg_ids = _typed_list(obj, "neg_id", (str, int), "string or integer id") or [text_id(p) for p in neg]
    if len(pos_ids) != len(pos) or len(neg_ids) != len(neg):
        raise ValueError("pos_id/neg_id must have as many entries as pos/neg")
    return Row(str(query_id), obj["query"], [str(i) for i in pos_ids], pos, [str(i) for i in neg_ids], neg,
               teacher_scores(obj, "pos", len(pos)), teacher_scores(obj, "neg", len(neg)))


def read_jsonl_rows(src: PrepareSource, rejects: list[Reject], bad_lines: list[Reject]) -> Iterator[Row]:
    """The usable rows of a JSONL file in file order, one line at a time. A line that does not parse is an
    error (``on_bad_line=error``) or a ``bad_line`` reject; an empty query, a repeated query id (the first
    copy is kept) and a row without positives are rejects. Row rejects go to ``rejects`` as they are
    met, lines that are not UTF-8 to ``bad_lines``; only the set of query ids seen grows with the file."""
    seen: set[str] = set()
    for number, line in beir.iter_lines(src.path, src.on_bad_line, bad_lines):
        if not line.strip():
            continue
        try:
            row = parse_jsonl_row(json.loads(line), number)
        except ValueError as err:
            message = f"{src.path} line {number}: {err}"
            if src.on_bad_line == "error":
                raise beir.DatasetError(message + " (fix the line, or dataset.on_bad_line=skip to reject it)") from None
            rejects.append(Reject(src.path, str(number), "bad_line", message))
            continue
        if not row.query.strip():
            rejects.append(Reject(src.path, row.query_id, "empty_query", f"line {number}: empty 'query'"))
            continue
        if row.query_id in seen:
            rejects.append(Reject(src.path, row.query_id, "duplicate_query",
                                  f"line {number}: query id {row.query_id!r} repeated; the first copy is kept"))
            continue
        seen.add(row.query_id)
        if not row.positives:
            rejects.append(Reject(src.path, row.query_id, "missing_positive", f"line {number}: empty 'pos'"))
            continue
        yield row


@dataclass
class BeirSource:
    rows: list[Row]
    corpus_ids: list[str]
    corpus_texts: list[str]
    rejects: list[Reject]


def load_beir(src: PrepareSource) -> BeirSource:
    """A BEIR split's judged queries, each with its positives' ids and texts (qrels order), and its corpus."""
    data = beir.load(src.path, src.split, src.on_bad_line, drop_unknown_docs=True)  # positives need their text
    texts = data.corpus.passages()
    position = {doc_id: i for i, doc_id in enumerate(data.corpus.ids)}
    rejects = list(data.rejects)
    rows = []
    for query_id, judged in beir.first_queries(data.qrels, src.max_queries).items():
        gold = [d for d, score in judged.items() if score > 0]
        if not gold:
            rejects.append(Reject(src.path, query_id, "missing_positive", "no judgment with score > 0"))
            continue
        rows.append(Row(query_id, data.queries[query_id], gold, [texts[position[d]] for d in gold]))
    return BeirSource(rows, data.corpus.ids, texts, rejects)
