"""The eval stage end to end on a real local Ray cluster, local files and a loopback S3 server."""

import json
import os
import subprocess
import sys

import pytest

from o1e.eval.config import EvalConfig
from o1e.eval.driver import run_eval
from o1e import storage
from o1e.retrievers import DenseRetrieverConfig


def dense_config(data, output, shards, cache_dir, **kw):
    return EvalConfig(dataset={"path": data}, retriever=DenseRetrieverConfig(model="all-MiniLM-L6-v2"),
                      shards=shards, output=output, cache_dir=cache_dir, **kw)


@pytest.fixture(scope="module")
def one_shard(ray_cluster, demo_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("one")
    return run_eval(dense_config(demo_data, str(root / "out"), 1, str(root / "cache")), show=False), root


def test_dense_two_shards_rank_exactly_like_one(ray_cluster, demo_data, one_shard, tmp_path):
    one, _ = one_shard
    # The corpus converted into 3 Parquet parts: each shard reads its rows from all of them.
    two = run_eval(dense_config(demo_data, str(tmp_path / "out"), 2, str(tmp_path / "cache"), corpus_part_rows=150),
                   show=False)
    assert two.rankings[0] == one.rankings[0]  # same documents, same order, same scores
    assert len(storage.read_manifest(two.dataset.corpus.url).files) == 3
    assert two.metrics == one.metrics
    assert one.metrics["num_queries"] == 100 and one.metrics["ndcg@10"] > 0.8  # MiniLM on the bundled slice


def test_rerun_reads_embeddings_from_cache(ray_cluster, demo_data, one_shard, capsys):
    first, root = one_shard
    again = run_eval(dense_config(demo_data, str(root / "out2"), 1, str(root / "cache")), show=True)
    assert again.info["cache_hits"] == 1 and first.info["cache_hits"] == 0
    bar = [line for line in capsys.readouterr().err.splitlines() if line.startswith("encode + search")]
    assert bar and "400/400" in bar[-1]  # documents read from the cache count as done
    assert again.rankings[0] == first.rankings[0]
    manifest = storage.read_manifest(again.info["embedding_cache"])
    assert manifest.schema == "embeddings" and manifest.num_rows == 400


def test_outputs_are_complete_and_readable(one_shard):
    result, root = one_shard
    out = str(root / "out")
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    for key in ("ndcg@10", "mrr@10", "recall@100", "recall@1000", "num_queries"):
        assert key in metrics
    assert metrics["ndcg@10"] == pytest.approx(result.metrics["ndcg@10"])
    per_query = storage.read_table(os.path.join(out, "per_query"))
    assert per_query.num_rows == 100
    assert sum(per_query.column("ndcg@10").to_pylist()) / 100 == pytest.approx(metrics["ndcg@10"])
    run = storage.read_table(os.path.join(out, "run"))
    trec = open(os.path.join(out, "run.trec")).read().splitlines()
    assert len(trec) == run.num_rows == 100 * 400  # top_k exceeds the corpus: every document is ranked
    qid, q0, doc, rank, score, tag = trec[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "o1e-dense")
    assert storage.read_manifest(os.path.join(out, "per_query")).parents[0]["corpus_fingerprint"]
    summary = storage.read_json(os.path.join(out, "summary.json"))
    assert summary["actor_seconds"]["CPU"] > 0 and summary["actor_seconds"]["GPU"] == 0  # the shard actor
    assert os.path.isdir(summary["framework_logs"])


def test_dataset_cache_and_outputs_on_s3(ray_cluster, demo_data, one_shard, s3_bucket):
    from conftest import upload_dir

    upload_dir(demo_data, s3_bucket + "/beir/scifact-mini")
    cfg = dense_config(s3_bucket + "/beir/scifact-mini", s3_bucket + "/runs/eval", 2, s3_bucket + "/cache")
    result = run_eval(cfg, show=False)
    assert result.rankings[0] == one_shard[0].rankings[0]
    metrics = storage.read_json(s3_bucket + "/runs/eval/metrics.json")
    assert metrics["ndcg@10"] == pytest.approx(one_shard[0].metrics["ndcg@10"])
    assert storage.read_table(s3_bucket + "/runs/eval/per_query").num_rows == 100
    assert storage.read_manifest(result.info["embedding_cache"]).num_rows == 400
    again = run_eval(cfg, show=False)
    assert again.info["cache_hits"] == 2 and again.rankings[0] == result.rankings[0]

    # A run that died after committing only shard 0: the rerun re-encodes shard 1 alone.
    cache = result.info["embedding_cache"]
    storage.delete(storage.join(cache, "_manifest.json"))
    storage.delete(storage.join(cache, "_shards", "00001-of-00002.json"))
    resumed = run_eval(cfg, show=False)
    assert resumed.info["cache_hits"] == 1 and resumed.rankings[0] == result.rankings[0]
    assert storage.read_manifest(cache).num_rows == 400  # no document lost or twice


def test_cli_bm25_end_to_end_with_rejects(tmp_path, demo_data):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    with open(data / "qrels" / "test.tsv", "a") as f:
        f.write("no-such-query\t4983\t1\n")
    proc = subprocess.run([sys.executable, "-m", "o1e.pipeline.cli", "eval", "-d", str(data), "-r", "bm25", "-k", "100",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ndcg@10" in proc.stdout and "1 rejected rows" in proc.stdout.replace("\n", " ")
    metrics = json.load(open(tmp_path / "out" / "metrics.json"))
    assert metrics["skipped"] == {"unknown_query": 1}
    assert "porter stemmer" in metrics["retriever"]
    rejects = storage.read_table(str(tmp_path / "out" / "rejects")).to_pylist()
    assert rejects[0]["reason"] == "unknown_query" and rejects[0]["row"] == "no-such-query"
    assert storage.read_table(str(tmp_path / "out" / "run")).num_rows == 100 * 100
