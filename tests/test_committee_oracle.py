"""The oracle test on real data: SciFact's train split, the real members BM25 + all-MiniLM-L6-v2.

Each query's candidates are a sentence of its gold document, a sentence of a random other document
and a generic sentence; the committee must pick the gold-document sentence for at least 95% of them.
"""

from __future__ import annotations

import json

import numpy as np

from o1e.committee.config import CommitteeConfig
from o1e.committee.driver import run_committee
from o1e.committee.oracle import write_oracle_inputs
from o1e import storage


def test_committee_picks_the_gold_sentence_on_scifact_train(scifact, minilm, tmp_path, record_property):
    gold_index = write_oracle_inputs(scifact, str(tmp_path / "inputs"), split="train")
    assert len(gold_index) == 809
    cfg = CommitteeConfig(
        training_rows=str(tmp_path / "inputs" / "training_rows"),
        candidates=str(tmp_path / "inputs" / "candidates"),
        members=[
            {"kind": "bm25", "name": "bm25"},
            # MiniLM was trained on 256 word pieces (its own limit); threads: both cores of the machine.
            {"kind": "dense", "name": "minilm", "model": minilm, "max_length": 256, "batch_size": 64,
             "placement": {"num_cpus": 2}},
        ],
        batch_size=128, executor="local", progress=False, output=str(tmp_path / "out"),
    )
    result = run_committee(cfg, show=False)

    rows = storage.read_table(str(tmp_path / "out" / "committee_scores")).to_pylist()
    assert len(rows) == 809
    hits = {"bm25": 0, "minilm": 0, "vote": 0}
    for row in rows:
        gold = row["candidate_indices"].index(gold_index[row["query_id"]])
        for name, scores in zip(row["members"], row["scores"]):
            hits[name] += int(np.argmax(scores)) == gold
        hits["vote"] += row["selected_index"] == gold_index[row["query_id"]]
    accuracy = {name: n / len(rows) for name, n in hits.items()}
    record_property("oracle_accuracy", json.dumps(accuracy))
    print(f"\noracle accuracy on SciFact train (809 queries): {accuracy}")
    assert accuracy["vote"] >= 0.95, accuracy
    assert accuracy["bm25"] >= 0.85 and accuracy["minilm"] >= 0.90, accuracy

    # the training rows carry the chosen thought and the query's own positives
    training = storage.read_table(str(tmp_path / "out" / "training")).to_pylist()
    inputs = {r["query_id"]: r for r in storage.read_table(str(tmp_path / "inputs" / "training_rows")).to_pylist()}
    thoughts = {(r["query_id"], r["candidate_index"]): r["thought"]
                for r in storage.read_table(str(tmp_path / "inputs" / "candidates")).to_pylist()}
    chosen = {r["query_id"]: r["selected_index"] for r in rows}
    assert len(training) == 809
    for row in training:
        assert row["thought"] == thoughts[(row["query_id"], chosen[row["query_id"]])]
        assert row["positives"] == inputs[row["query_id"]]["positives"]
        assert row["query"] == inputs[row["query_id"]]["query"]
    diag = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert diag["queries_voted"] == 809 and diag["rejects"] == 0
    assert set(diag["member_matches_vote"]) == {"bm25", "minilm"}
    assert result.diagnostics["queries_voted"] == 809
