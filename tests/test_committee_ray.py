"""The committee on a real local Ray cluster: member actor pools give the same rows as a single-process
run; a run that crashes after some shards and is rerun gives the same datasets as a clean run (here on
a real S3 endpoint on loopback); bad input goes to rejects; ``o1e vote`` runs end to end."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import o1e.committee.driver as driver
from o1e.committee.config import CommitteeConfig
from o1e.committee.oracle import oracle_inputs
from o1e import beir, storage
from o1e.beir import DatasetError
from o1e.pipeline.cli import main

QUERIES = 96


@pytest.fixture(scope="module")
def inputs(scifact, tmp_path_factory):
    """96 SciFact train queries as training_rows + candidates, plus bad rows that must be rejected."""
    data = beir.load(scifact, "train")
    training, candidates, _ = oracle_inputs(data, seed=7, limit=QUERIES)
    first = training.slice(0, 1).to_pylist()[0]
    bad_training = [
        {**first, "query_id": "no-gold", "positives": [], "positive_ids": []},
        {**first, "query_id": "no-candidates"},
        {**first, "query_id": "all-empty"},
    ]
    bad_candidates = [
        {"query_id": "all-empty", "candidate_index": i, "thought": " ", "finish_reason": "stop",
         "prompt_tokens": 0, "completion_tokens": 0, "model": "oracle", "prompt_fingerprint": ""} for i in range(3)
    ] + [{"query_id": "no-gold", "candidate_index": 0, "thought": "something", "finish_reason": "stop",
          "prompt_tokens": 0, "completion_tokens": 1, "model": "oracle", "prompt_fingerprint": ""}]
    training = pa.concat_tables([training, pa.Table.from_pylist(bad_training, schema=training.schema)])
    candidates = pa.concat_tables([candidates, pa.Table.from_pylist(bad_candidates, schema=candidates.schema)])
    root = tmp_path_factory.mktemp("committee_inputs")
    storage.write_table(str(root / "training_rows"), training, "training_rows")
    storage.write_table(str(root / "candidates"), candidates, "candidates")
    return root


def make_config(inputs, minilm, output, executor="ray", replicas=1, vote="soft") -> CommitteeConfig:
    return CommitteeConfig(
        training_rows=str(inputs / "training_rows"), candidates=str(inputs / "candidates"),
        members=[
            {"kind": "bm25", "name": "bm25", "placement": {"replicas": replicas, "num_cpus": 0.5}},
            {"kind": "dense", "name": "minilm", "model": minilm, "max_length": 128,
             "placement": {"num_cpus": 1}},
        ],
        vote=vote, shard_size=24, batch_size=8, executor=executor, progress=False, output=str(output),
    )


def read_outputs(output) -> dict[str, list[dict]]:
    return {name: storage.read_table(url).to_pylist() for name, url in driver.output_urls(str(output)).items()}


def same_rows(a: dict, b: dict) -> None:
    for name in ("training", "committee_scores", "rejects"):
        assert a[name] == b[name], f"{name} differs"


def test_ray_member_pools_equal_a_single_process_run(ray_cluster, inputs, minilm, tmp_path):
    local = driver.run_committee(make_config(inputs, minilm, tmp_path / "local", executor="local"), show=False)
    parallel = driver.run_committee(make_config(inputs, minilm, tmp_path / "ray", replicas=2), show=False)
    assert local.diagnostics["shards"] == parallel.diagnostics["shards"] >= 4
    for result in (local, parallel):  # start-up (members loaded) is part of the run's time
        assert 0 <= result.diagnostics["members_ready_s"] <= result.diagnostics["elapsed_s"]
    assert parallel.diagnostics["actor_seconds"]["CPU"] > 0  # the member pools' actors
    assert local.diagnostics["actor_seconds"] == {"CPU": 0.0, "GPU": 0.0}  # no actor: all in the driver
    a, b = read_outputs(tmp_path / "local"), read_outputs(tmp_path / "ray")
    assert len(a["training"]) == len(a["committee_scores"]) == QUERIES
    same_rows(a, b)
    manifest = storage.read_manifest(str(tmp_path / "ray" / "training"))
    assert manifest.config_fingerprint == storage.read_manifest(str(tmp_path / "local" / "training")).config_fingerprint
    assert [p["schema"] for p in manifest.parents] == ["training_rows", "candidates"]


def test_rejects_name_the_row_and_reason(inputs, minilm, tmp_path):
    result = driver.run_committee(make_config(inputs, minilm, tmp_path / "out", executor="local"), show=False)
    rejects = {(r["row"], r["reason"]) for r in read_outputs(tmp_path / "out")["rejects"]}
    assert rejects == {("no-gold", "missing_positive"), ("no-candidates", "no_candidates"),
                       ("all-empty", "empty_candidates")}
    assert result.diagnostics["rejects_by_reason"] == {"empty_candidates": 1, "missing_positive": 1, "no_candidates": 1}
    assert result.diagnostics["queries_voted"] == QUERIES


def test_interrupted_run_resumes_without_loss_or_duplicates(ray_cluster, inputs, minilm, s3_bucket, tmp_path,
                                                            monkeypatch):
    clean = tmp_path / "clean"
    driver.run_committee(make_config(inputs, minilm, clean, executor="local"), show=False)

    crashed = f"{s3_bucket}/committee"
    real_vote_shard = driver.vote_shard
    voted = []

    def crash_on_third_shard(cfg, shard, scores, training):
        if len(voted) == 2:
            raise RuntimeError("simulated crash")
        voted.append(shard.shard_id)
        return real_vote_shard(cfg, shard, scores, training)

    monkeypatch.setattr(driver, "vote_shard", crash_on_third_shard)
    with pytest.raises(RuntimeError, match="simulated crash"):
        driver.run_committee(make_config(inputs, minilm, crashed), show=False)
    assert not storage.is_dataset(storage.join(crashed, "training"))  # no manifest: nothing half-visible
    monkeypatch.setattr(driver, "vote_shard", real_vote_shard)

    resumed = driver.run_committee(make_config(inputs, minilm, crashed), show=False)
    assert sorted(resumed.shards_skipped) == sorted(voted)
    assert len(resumed.shards_run) == resumed.diagnostics["shards"] - 2
    same_rows(read_outputs(clean), read_outputs(crashed))
    ids = [r["query_id"] for r in read_outputs(crashed)["training"]]
    assert len(ids) == len(set(ids)) == QUERIES

    # a changed config must not mix its shards with these
    with pytest.raises(storage.StorageError, match="another config.*overwrite=true"):
        driver.run_committee(make_config(inputs, minilm, crashed, vote="hard"), show=False)


def test_o1e_vote_command(inputs, minilm, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["vote", "-t", str(inputs / "training_rows"), "-i", str(inputs / "candidates"), "-o", str(out),
                 "--executor", "local", "-v", "hard", "-b", "16", "members=[{kind: bm25}, {kind: dense, name: minilm, "
                 f"model: {minilm}, max_length: 128}}]", "progress=false"])
    assert code == 0
    shown = capsys.readouterr().out
    assert "committee diagnostics (hard vote)" in shown and "agreement bm25 ~ minilm" in shown
    diag = json.loads((out / "summary.json").read_text())
    assert diag["vote"] == "hard" and diag["queries_voted"] == QUERIES
    assert set(diag["pairwise_agreement"]) == {"bm25 ~ minilm"}
    assert all(r["vote"] == "hard" for r in storage.read_table(str(out / "committee_scores")).to_pylist())

    assert main(["vote", "-o", str(tmp_path / "x")]) == 2  # no inputs: a config error, not a traceback
    assert "training_rows: required" in capsys.readouterr().err
    assert main(["vote", "-t", str(tmp_path / "nowhere"), "-i", str(tmp_path / "nowhere")]) == 1
    assert "not a committed dataset" in capsys.readouterr().err


def test_a_run_where_every_query_is_rejected_commits_the_rejects_and_fails(tmp_path):
    training = pa.Table.from_pylist([{"query_id": "q", "query": "x", "positive_ids": [], "positives": [],
                                      "negative_ids": [], "negatives": []}])
    storage.write_table(str(tmp_path / "training_rows"), training, "training_rows")
    storage.write_table(str(tmp_path / "candidates"), storage.schemas.CANDIDATES.empty(), "candidates")
    cfg = CommitteeConfig(training_rows=str(tmp_path / "training_rows"), candidates=str(tmp_path / "candidates"),
                          members=[{"kind": "bm25"}], executor="local", progress=False, output=str(tmp_path / "out"))
    with pytest.raises(DatasetError, match=r"no query could be voted: all 1 were rejected \(missing_positive 1"):
        driver.run_committee(cfg, show=True)
    assert not storage.is_dataset(str(tmp_path / "out" / "training"))
    rejects = storage.read_table(str(tmp_path / "out" / "rejects")).to_pylist()
    assert [(r["row"], r["reason"]) for r in rejects] == [("q", "missing_positive")]
