"""``o1e.corpus``: a BEIR corpus.jsonl converted once to a Parquet dataset, checked as ``o1e.beir`` checks it."""

import json
import os

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest

from o1e.eval import dataset as eval_dataset
from o1e import beir, corpus, storage

DOCS = [{"_id": f"d{i}", "title": f"T{i}" if i % 2 else "", "text": f"text {i} " * (i % 4)} for i in range(7)]


def write_beir(root, lines, qrels=("q0\td0\t1", "q1\td5\t1", "q1\tnowhere\t1")):
    os.makedirs(root / "qrels", exist_ok=True)
    with open(root / "corpus.jsonl", "wb") as f:
        f.write(b"".join(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n" for line in lines))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n"
                                                for i in range(2)))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    return str(root)


def test_conversion_holds_what_beir_load_holds_part_by_part(tmp_path):
    root = write_beir(tmp_path / "ds", DOCS)
    expected = beir.load(root, "test").corpus
    got = corpus.prepare(os.path.join(root, "corpus.jsonl"), str(tmp_path / "cache"), part_rows=3)
    assert not got.cached and len(got) == 7 and got.fingerprint == expected.fingerprint
    assert len(storage.read_manifest(got.url).files) == 3  # 3 + 3 + 1 rows
    table = corpus.read_rows(got.url)
    assert table.column("row").to_pylist() == list(range(7))
    assert table.column("doc_id").to_pylist() == expected.ids
    assert corpus.passages(table.column("title").to_pylist(), table.column("text").to_pylist()) == expected.passages()
    some = corpus.read_rows(got.url, np.array([5, 0, 3]), ("doc_id",))
    assert some.column("doc_id").to_pylist() == ["d5", "d0", "d3"]
    assert corpus.read_rows(got.url, np.zeros(0, np.int64)).num_rows == 0
    assert corpus.lengths(got.url, prefix=2).tolist() == [2 + len(p) for p in expected.passages()]
    assert corpus.missing_ids(got.url, ["d6", "x", "d0", "y"]) == ["x", "y"]

    # Outside readers see one row per document.
    pattern = os.path.join(got.url, "*.parquet")
    assert duckdb.sql(f"select count(*) from read_parquet('{pattern}')").fetchall()[0][0] == 7
    assert pl.read_parquet(pattern).sort("row")["doc_id"].to_list() == expected.ids
    assert pd.read_parquet(got.url).columns.tolist() == ["row", "doc_id", "title", "text", "line"]


def test_cache_is_keyed_by_content_and_bad_line_policy(tmp_path):
    root = write_beir(tmp_path / "ds", DOCS)
    source, cache = os.path.join(root, "corpus.jsonl"), str(tmp_path / "cache")
    first = corpus.prepare(source, cache)
    again = corpus.prepare(source, cache)
    assert again.cached and again.url == first.url and again.fingerprint == first.fingerprint
    assert corpus.prepare(source, cache, on_bad_line="skip").url != first.url
    write_beir(tmp_path / "ds", DOCS[:6])  # same path, other content
    changed = corpus.prepare(source, cache)
    assert not changed.cached and changed.url != first.url and len(changed) == 6
    write_beir(tmp_path / "copy", DOCS)  # other path, same content
    assert corpus.prepare(str(tmp_path / "copy" / "corpus.jsonl"), cache).url == first.url


def test_bad_lines_and_duplicates_error_or_are_rejected_like_beir_load(tmp_path):
    lines = [DOCS[0], DOCS[1], b'{"_id": "d9", "text": "caf\xe9"}\n', DOCS[2], {**DOCS[1], "text": "again"},
             b'{"_id": \n', DOCS[3], DOCS[0]]
    root = write_beir(tmp_path / "ds", lines, qrels=["q0\td0\t1"])
    source = os.path.join(root, "corpus.jsonl")
    with pytest.raises(beir.DatasetError, match=r"corpus\.jsonl line 3: not valid UTF-8"):
        corpus.prepare(source, str(tmp_path / "cache"))
    expected = beir.load(root, "test", on_bad_line="skip")
    got = corpus.prepare(source, str(tmp_path / "cache"), on_bad_line="skip", part_rows=2)
    assert [(r.row, r.reason) for r in got.rejects] == [
        ("3", "bad_line"), ("5", "duplicate_doc"), ("6", "bad_line"), ("8", "duplicate_doc")]
    assert got.rejects == expected.rejects
    table = corpus.read_rows(got.url, columns=("doc_id", "line"))
    assert table.column("doc_id").to_pylist() == expected.corpus.ids == ["d0", "d1", "d2", "d3"]
    assert table.column("row").to_pylist() == [0, 1, 2, 3] and table.column("line").to_pylist() == [1, 2, 4, 7]
    assert got.fingerprint == expected.corpus.fingerprint
    assert storage.verify_dataset(got.url) == []
    assert corpus.prepare(source, str(tmp_path / "cache"), on_bad_line="skip").rejects == got.rejects  # cache hit

    only_duplicates = write_beir(tmp_path / "dups", [DOCS[0], DOCS[1], DOCS[0]])
    with pytest.raises(beir.DatasetError, match=r"corpus\.jsonl line 3: duplicate document id 'd0'"):
        corpus.prepare(os.path.join(only_duplicates, "corpus.jsonl"), str(tmp_path / "cache"))
    empty = write_beir(tmp_path / "empty", [b"\n"])
    with pytest.raises(beir.DatasetError, match="the corpus is empty"):
        corpus.prepare(os.path.join(empty, "corpus.jsonl"), str(tmp_path / "cache"))


@pytest.mark.parametrize("drop_unknown_docs", [False, True])
def test_eval_dataset_equals_beir_load(tmp_path, drop_unknown_docs):
    root = write_beir(tmp_path / "ds", [*DOCS, b"not json\n"])
    expected = beir.load(root, "test", "skip", drop_unknown_docs=drop_unknown_docs)

    def in_process(source, judged):
        return eval_dataset.prepare_corpus(source, str(tmp_path / "cache"), "skip", judged, 3)

    data = eval_dataset.load(root, "test", "skip", drop_unknown_docs, in_process)
    assert (data.queries, data.qrels, data.rejects) == (expected.queries, expected.qrels, expected.rejects)
    assert [r.reason for r in data.rejects] == ["bad_line", "unknown_doc"]
    assert data.summary() == expected.summary()
    with pytest.raises(beir.DatasetError, match=r"line 8: "):
        eval_dataset.load(root, "test", "error", False, lambda source, judged: eval_dataset.prepare_corpus(
            source, str(tmp_path / "cache"), "error", judged, 3))
