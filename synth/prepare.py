"""``o1e synth prepare``: training rows (query, positives, hard negatives) from a BEIR train split or from
JSONL rows. Rows that already carry negatives (MS MARCO style) pass through; the others get hard
negatives mined from the corpus with BM25 or a dense encoder: the top ``depth`` passages minus the row's
positives (and the query's own id), of which ``count`` are kept."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from o1e import beir, runs, storage
from o1e.provenance import fingerprint
from o1e.progress import bar as progress_bar
from synth.config import MiningConfig, PrepareConfig
from synth.report import console


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


@dataclass
class Source:
    rows: list[Row]
    corpus_ids: list[str]
    corpus_texts: list[str]
    rejects: list[dict]


def _reject(source: str, row: str, reason: str, detail: str) -> dict:
    return runs.reject("synth", source, row, reason, detail)


def text_id(text: str) -> str:
    return "t" + fingerprint(text, 12)


def load_beir(cfg: PrepareConfig) -> Source:
    src = cfg.dataset
    data = beir.load(src.path, src.split, src.on_bad_line, drop_unknown_docs=True)  # positives need their text
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    rejects = [_reject(r.source, r.row, r.reason, r.detail) for r in data.rejects]
    rows = []
    for query_id, judged in data.qrels.items():
        gold = [d for d, score in judged.items() if score > 0]
        if not gold:
            rejects.append(_reject(src.path, query_id, "missing_positive", "no judgment with score > 0"))
            continue
        rows.append(Row(query_id, data.queries[query_id], gold, [passages[d] for d in gold]))
    return Source(rows, data.corpus.ids, data.corpus.passages(), rejects)


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


def load_jsonl(cfg: PrepareConfig) -> Source:
    src = cfg.dataset
    rows, rejects = [], []
    bad_lines: list[beir.Reject] = []
    corpus: dict[str, str] = {}
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
            rejects.append(_reject(src.path, str(number), "bad_line", message))
            continue
        if not row.query.strip():
            rejects.append(_reject(src.path, row.query_id, "empty_query", f"line {number}: empty 'query'"))
            continue
        if row.query_id in seen:
            rejects.append(_reject(src.path, row.query_id, "duplicate_query",
                                   f"line {number}: query id {row.query_id!r} repeated; the first copy is kept"))
            continue
        seen.add(row.query_id)
        if not row.positives:
            rejects.append(_reject(src.path, row.query_id, "missing_positive", f"line {number}: empty 'pos'"))
            continue
        rows.append(row)
        corpus.update(zip(row.positive_ids, row.positives))
        corpus.update(zip(row.negative_ids, row.negatives))
    rejects += [_reject(r.source, r.row, r.reason, r.detail) for r in bad_lines]
    if src.corpus:
        loaded = beir.load_corpus(src.corpus, src.on_bad_line)
        return Source(rows, loaded.ids, loaded.passages(), rejects)
    return Source(rows, list(corpus), list(corpus.values()), rejects)


class Miner:
    """Top-``depth`` retrieval over the corpus with a retriever from ``o1e.retrievers`` (``mining.method``)."""

    def __init__(self, cfg: MiningConfig, texts: list[str], show: bool) -> None:
        self.cfg = cfg
        if cfg.method == "bm25":
            from o1e.bm25 import BM25Index

            self.index = BM25Index(texts, cfg.bm25)
            return
        import faiss

        from o1e.encoders import resolve_model_dir
        from o1e.retrievers import build_retriever

        config = cfg.dense if cfg.method == "dense" else cfg.o1
        self.retriever = build_retriever(config, resolve_model_dir(config.model))
        batch = max(config.batch_size * 16, 256)
        parts = [self.retriever.encode_documents(texts[i:i + batch])
                 for i in progress_bar(range(0, len(texts), batch), desc="encode corpus", unit="batch", disable=not show)]
        vectors = np.concatenate(parts)
        self.faiss = faiss.IndexFlatIP(vectors.shape[1])
        self.faiss.add(vectors)

    def search(self, queries: list[str], k: int) -> list[list[int]]:
        if self.cfg.method == "bm25":
            return [self.index.top_k(q, k)[0].tolist() for q in queries]
        vectors = self.retriever.encode_pairs(queries, [""] * len(queries))
        _, found = self.faiss.search(vectors, k)
        return [[int(i) for i in row if i >= 0] for row in found]


def pick_negatives(row: Row, ranked: list[int], corpus_ids: list[str], cfg: MiningConfig) -> list[int]:
    """Corpus positions of the row's hard negatives: the top ``depth`` minus positives and self-hits."""
    exclude = set(row.positive_ids) | {row.query_id}
    pool = [i for i in ranked[: cfg.depth + len(exclude)] if corpus_ids[i] not in exclude][: cfg.depth]
    if cfg.pick == "top" or len(pool) <= cfg.count:
        return pool[: cfg.count]
    rng = np.random.default_rng([cfg.seed, int(fingerprint(row.query_id, 15), 16)])
    chosen = sorted(rng.choice(len(pool), size=cfg.count, replace=False).tolist())
    return [pool[j] for j in chosen]


def run_prepare(cfg: PrepareConfig, show: bool = True) -> dict:
    started = time.perf_counter()
    cfg.check_outputs()
    src = cfg.dataset
    kind = src.format
    if kind == "auto":
        kind = "jsonl" if src.path.endswith((".jsonl", ".json")) and not storage.is_dir(src.path) else "beir"
    record = runs.RunRecord("synth", cfg, parents=[{"url": src.path, "split": src.split, "format": kind}])
    record.check_rerun("training_rows", runs.REJECTS)
    source = load_beir(cfg) if kind == "beir" else load_jsonl(cfg)
    to_mine = [r for r in source.rows if not r.negatives]
    if to_mine and cfg.mining.method != "none" and cfg.mining.count > 0:
        miner = Miner(cfg.mining, source.corpus_texts, show)
        k = cfg.mining.depth + 1 + max(len(r.positive_ids) for r in to_mine)
        step = 256
        for i in progress_bar(range(0, len(to_mine), step), desc=f"mine negatives ({cfg.mining.method})", unit="batch",
                      disable=not show):
            batch = to_mine[i:i + step]
            for row, ranked in zip(batch, miner.search([r.query for r in batch], k)):
                picked = pick_negatives(row, ranked, source.corpus_ids, cfg.mining)
                row.negative_ids = [source.corpus_ids[j] for j in picked]
                row.negatives = [source.corpus_texts[j] for j in picked]
                row.neg_scores = None  # mined: no teacher scored them

    writer = storage.DatasetWriter(record.url("training_rows"), "training_rows", overwrite=True, **record.lineage)
    for number, start in enumerate(range(0, len(source.rows), cfg.shard_rows)):
        part = source.rows[start:start + cfg.shard_rows]
        writer.commit_shard(f"{number:06d}", pa.Table.from_pylist([r.__dict__ for r in part]))
    summary = {
        "source": src.path, "format": kind, "split": src.split, "rows": len(source.rows),
        "passed_through": len(source.rows) - len(to_mine),
        "with_teacher_scores": sum(r.pos_scores is not None and r.neg_scores is not None for r in source.rows),
        "mined": len(to_mine) if cfg.mining.method != "none" else 0,
        "mining": cfg.mining.method, "negatives_per_row": cfg.mining.count, "depth": cfg.mining.depth,
        "corpus": len(source.corpus_ids), "rejects": len(source.rejects),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    writer.finalize(extra={"summary": summary})
    record.write_rejects(source.rejects)
    summary = record.finish(summary, rows=len(source.rows), unit="training row")
    if show:
        console.print(f"[bold]prepared[/bold] {summary['rows']:,} training rows from {src.path} ({kind}, "
                      f"split {src.split}): {summary['passed_through']:,} carried negatives, "
                      f"{summary['mined']:,} mined with {cfg.mining.method} (top {cfg.mining.depth}, keep "
                      f"{cfg.mining.count}), {summary['rejects']:,} rejected -> {cfg.output}/training_rows",
                      soft_wrap=True)
    return summary
