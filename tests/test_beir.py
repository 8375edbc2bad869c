import json
import os

import pytest

from o1e import beir


def make(tmp_path, corpus=None, queries=None, qrels=None, split="test"):
    root = tmp_path / "ds"
    (root / "qrels").mkdir(parents=True)
    corpus = corpus if corpus is not None else [
        json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"}) for i in range(3)]
    queries = queries if queries is not None else [json.dumps({"_id": f"q{i}", "text": f"query {i}"}) for i in range(2)]
    qrels = qrels if qrels is not None else ["query-id\tcorpus-id\tscore", "q0\td0\t1", "q1\td2\t1"]
    (root / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    (root / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(qrels) + "\n")
    return str(root)


def test_loads_a_clean_dataset(tmp_path):
    data = beir.load(make(tmp_path), "test")
    assert data.corpus.ids == ["d0", "d1", "d2"]
    assert data.corpus.passages()[1] == "T1 text 1"
    assert data.queries == {"q0": "query 0", "q1": "query 1"}
    assert data.qrels == {"q0": {"d0": 1}, "q1": {"d2": 1}}
    assert data.rejects == [] and len(data.corpus.fingerprint) == 16


def test_malformed_json_line_names_file_and_line(tmp_path):
    corpus = [json.dumps({"_id": "d0", "text": "a"}), '{"_id": "d1", "text": ', json.dumps({"_id": "d2", "text": "c"})]
    root = make(tmp_path, corpus=corpus, qrels=["q0\td0\t1"])
    with pytest.raises(beir.DatasetError, match=r"corpus\.jsonl line 2: "):
        beir.load(root, "test")
    data = beir.load(root, "test", on_bad_line="skip")
    assert data.corpus.ids == ["d0", "d2"]
    assert [(r.row, r.reason) for r in data.rejects] == [("2", "bad_line")]


def test_missing_id_and_duplicate_id(tmp_path):
    root = make(tmp_path, corpus=[json.dumps({"text": "no id"})], qrels=["q0\td0\t1"])
    with pytest.raises(beir.DatasetError, match=r"line 1: missing field '_id'"):
        beir.load(root, "test")
    dup = [json.dumps({"_id": "d0", "text": "a"}), json.dumps({"_id": "d0", "text": "b"})]
    with pytest.raises(beir.DatasetError, match=r"line 2: duplicate document id 'd0'"):
        beir.load(make(tmp_path / "2", corpus=dup, qrels=["q0\td0\t1"]), "test")


def test_qrels_naming_unknown_documents_are_kept_and_counted_as_beir_does(tmp_path):
    root = make(tmp_path, qrels=["q0\td0\t1", "q0\tmissing-doc\t1", "q9\td1\t1", "q1\td2\t1"])
    data = beir.load(root, "test")
    assert data.qrels == {"q0": {"d0": 1, "missing-doc": 1}, "q1": {"d2": 1}}  # q9 is no query: skipped
    assert sorted(r.reason for r in data.rejects) == ["unknown_doc", "unknown_query"]
    assert any("missing-doc" in r.detail and "kept" in r.detail for r in data.rejects)
    dropped = beir.load(root, "test", drop_unknown_docs=True)
    assert dropped.qrels == {"q0": {"d0": 1}, "q1": {"d2": 1}}
    assert sorted(r.reason for r in dropped.rejects) == ["unknown_doc", "unknown_query"]

    # A kept judgment counts against the metrics, as in BEIR and MTEB: q0 found d0 but never missing-doc.
    from o1e.eval.metrics import evaluate

    ranking = {"q0": [("d0", 2.0), ("d1", 1.0)], "q1": [("d2", 1.0)]}
    kept, _ = evaluate(data.qrels, ranking)
    lifted, _ = evaluate(dropped.qrels, ranking)
    assert lifted["ndcg@10"] == 1.0 and kept["ndcg@10"] < 1.0 and kept["recall@100"] == 0.75


def test_malformed_qrels_line(tmp_path):
    root = make(tmp_path, qrels=["q0\td0\t1", "q1\td2"])
    with pytest.raises(beir.DatasetError, match=r"test\.tsv line 2: expected 3 tab-separated fields"):
        beir.load(root, "test")
    root = make(tmp_path / "b", qrels=["q0\td0\t1", "q1\td2\tyes"])
    with pytest.raises(beir.DatasetError, match=r"line 2: invalid literal"):
        beir.load(root, "test")


def test_empty_corpus_and_missing_split_and_folder(tmp_path):
    with pytest.raises(beir.DatasetError, match="the corpus is empty"):
        beir.load(make(tmp_path, corpus=[""]), "test")
    root = make(tmp_path / "b")
    with pytest.raises(beir.DatasetError, match=r"split 'dev' not found.*available splits: \['test'\]"):
        beir.load(root, "dev")
    with pytest.raises(beir.DatasetError, match="dataset folder not found"):
        beir.load(str(tmp_path / "nowhere"), "test")
    os.remove(os.path.join(root, "queries.jsonl"))
    with pytest.raises(beir.DatasetError, match=r"queries\.jsonl not found"):
        beir.load(root, "test")


def test_reads_from_s3(s3_bucket, demo_data):
    from conftest import upload_dir

    upload_dir(demo_data, s3_bucket + "/scifact-mini")
    remote = beir.load(s3_bucket + "/scifact-mini", "test")
    local = beir.load(demo_data, "test")
    assert remote.corpus.fingerprint == local.corpus.fingerprint
    assert remote.qrels == local.qrels and remote.queries == local.queries


def test_invalid_utf8_names_file_and_line_and_obeys_skip(tmp_path):
    root = make(tmp_path)
    with open(os.path.join(root, "corpus.jsonl"), "ab") as f:
        f.write(b'{"_id": "d9", "text": "caf\xe9"}\n')  # Latin-1, not UTF-8
        f.write(json.dumps({"_id": "d10", "text": "after"}).encode() + b"\n")
    with pytest.raises(beir.DatasetError, match=r"corpus\.jsonl line 4: not valid UTF-8 \(byte 0xe9"):
        beir.load(root, "test")
    data = beir.load(root, "test", on_bad_line="skip")
    assert data.corpus.ids == ["d0", "d1", "d2", "d10"]  # the line after the bad one is read
    assert [(r.row, r.reason) for r in data.rejects] == [("4", "bad_line")]


def test_empty_and_repeated_queries_are_rejects(tmp_path):
    queries = [json.dumps({"_id": "q0", "text": "first"}), json.dumps({"_id": "q1", "text": "  "}),
               json.dumps({"_id": "q0", "text": "second"})]
    data = beir.load(make(tmp_path, queries=queries), "test")
    assert data.queries == {"q0": "first"}  # the first copy is kept
    assert sorted((r.row, r.reason) for r in data.rejects) == [("q0", "duplicate_query"), ("q1", "empty_query")]
