"""``o1e synth prepare``: training rows from a BEIR train split (real SciFact slice) or JSONL rows."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from o1e import beir, storage
from o1e.bm25 import BM25Index
from o1e.config import load_config
from o1e.synth.config import PrepareConfig
from o1e.synth.mining import MiningWorker
from o1e.synth.prepare import run_prepare


def prepare(overrides: list[str]) -> tuple[dict, list[dict]]:
    cfg = load_config(PrepareConfig, None, overrides)
    summary = run_prepare(cfg, show=False)
    return summary, storage.read_table(storage.join(cfg.output, "training_rows")).to_pylist()


def test_bm25_negatives_are_top_depth_minus_positives(demo_data, tmp_path):
    summary, rows = prepare([f"output={tmp_path}", "mining.count=4", "mining.depth=10"])
    data = beir.load(demo_data, "train")
    assert summary["rows"] == len(rows) == len(data.qrels) and summary["mined"] == len(rows)
    throughput = storage.read_json(f"{tmp_path}/summary.json")["throughput"]
    assert throughput["rows"] == len(rows) and throughput["unit"] == "training row"
    assert throughput["rows_per_s"] > 0 and throughput["driver_peak_rss_mb"] > 50
    index = BM25Index(data.corpus.passages(), load_config(PrepareConfig).mining.bm25)
    for row in rows[:25]:
        assert row["positive_ids"] == [d for d, s in data.qrels[row["query_id"]].items() if s > 0]
        assert len(row["negative_ids"]) == len(row["negatives"]) == 4
        assert not set(row["negative_ids"]) & set(row["positive_ids"])
        best, _ = index.top_k(row["query"], 10 + len(row["positive_ids"]))
        ranked = [data.corpus.ids[i] for i in best if data.corpus.ids[i] not in row["positive_ids"]]
        assert row["negative_ids"] == ranked[:4]  # pick=top keeps the best-ranked
    assert storage.read_manifest(str(tmp_path / "training_rows")).schema == "training_rows"


def test_sampled_negatives_are_seeded_and_within_depth(tmp_path):
    _, a = prepare([f"output={tmp_path}/a", "mining.count=3", "mining.depth=20", "mining.pick=sample"])
    _, b = prepare([f"output={tmp_path}/b", "mining.count=3", "mining.depth=20", "mining.pick=sample"])
    _, top = prepare([f"output={tmp_path}/c", "mining.count=20", "mining.depth=20"])
    assert a == b
    for row, pool in zip(a, top):
        assert set(row["negative_ids"]) <= set(pool["negative_ids"]) and len(row["negative_ids"]) == 3


def test_dense_mining_with_minilm(minilm, tmp_path):
    facts = ["The moon's gravity causes ocean tides.", "Plants turn light into sugar by photosynthesis.",
             "Aspirin inhibits platelet aggregation.", "Volcanoes erupt molten rock.",
             "Insulin lowers blood glucose.", "Glaciers carve valleys over millennia."]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"query_id": f"q{i}", "query": f"question about: {f}", "pos": [f]}) + "\n"
                            for i, f in enumerate(facts)))
    summary, rows = prepare([f"dataset.path={path}", f"output={tmp_path}/out", "mining.method=dense",
                             "mining.count=2", "mining.depth=3", f"mining.dense.model={minilm}",
                             "actor_min_bytes=0"])  # the corpus encoded in a Ray actor, its progress counted
    assert summary["mining"] == "dense" and summary["mined"] == 6
    for row in rows:
        assert len(row["negatives"]) == 2 and row["positives"][0] not in row["negatives"]
        assert set(row["negatives"]) <= set(facts)


def test_rows_with_negatives_pass_through_and_others_are_mined(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [
        {"query": "what causes tides", "pos": ["The moon's gravity causes tides."],
         "neg": ["Tides of war.", "Ocean salinity varies."]},
        {"query_id": "x2", "query": "moon gravity", "pos": ["The moon's gravity causes tides."]},
        {"query": "no positive here", "pos": []},
        {"query": "photosynthesis", "pos": ["Plants turn light into sugar."], "neg": ["Gravity of the moon."]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    summary, rows = prepare([f"dataset.path={path}", "dataset.on_bad_line=skip", f"output={tmp_path}/out",
                             "mining.count=2"])
    assert summary["format"] == "jsonl" and summary["passed_through"] == 2 and summary["rejects"] == 2
    by_id = {r["query_id"]: r for r in rows}
    assert by_id["L1"]["negatives"] == ["Tides of war.", "Ocean salinity varies."]  # untouched
    assert by_id["L4"]["negatives"] == ["Gravity of the moon."]
    mined = by_id["x2"]["negatives"]
    assert len(mined) == 2 and "The moon's gravity causes tides." not in mined
    rejects = storage.read_table(str(tmp_path / "out" / "rejects")).to_pylist()
    assert sorted(r["reason"] for r in rejects) == ["bad_line", "missing_positive"]
    assert any("line 5" in r["detail"] for r in rejects)


def test_prepare_to_s3(demo_data, s3_bucket, tmp_path):
    local = tmp_path / "beir"
    shutil.copytree(demo_data, local)
    # A judged query whose only judgment is not relevant has no positive: rejected, the rest goes on.
    with open(os.path.join(local, "qrels", "train.tsv"), "a") as f:
        f.write(f"{beir.load(demo_data, 'train').queries.__iter__().__next__()}\tnone\t0\n")
    summary, rows = prepare([f"dataset.path={local}", f"output={s3_bucket}/prep", "mining.count=1",
                             "shard_rows=40"])
    assert len(rows) == summary["rows"] and len(storage.read_manifest(f"{s3_bucket}/prep/training_rows").files) == 3


def test_jsonl_teacher_scores_are_carried(tmp_path):
    """MS MARCO style rows with ``pos_scores``/``neg_scores`` keep them (for distillation); rows without
    them, or whose negatives are mined, carry nulls; scores that do not match the passages are a bad line."""
    path = tmp_path / "rows.jsonl"
    lines = [
        {"query_id": "a", "query": "q a", "pos": ["pa"], "neg": ["na1", "na2"], "pos_scores": [0.9],
         "neg_scores": [0.2, 0.1]},
        {"query_id": "b", "query": "q b", "pos": ["pb"], "neg": ["nb1"]},
        {"query_id": "c", "query": "q c", "pos": ["pc"], "pos_scores": [3]},
        {"query_id": "d", "query": "q d", "pos": ["pd"], "neg": ["nd"], "pos_scores": [1.0], "neg_scores": [1, 2]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary, rows = prepare([f"dataset.path={path}", f"output={tmp_path}/out", "dataset.on_bad_line=skip",
                             "mining.count=1", "mining.depth=2"])
    by_id = {r["query_id"]: r for r in rows}
    assert by_id["a"]["pos_scores"] == pytest.approx([0.9]) and by_id["a"]["neg_scores"] == pytest.approx([0.2, 0.1])
    assert by_id["b"]["pos_scores"] is None and by_id["b"]["neg_scores"] is None
    assert by_id["c"]["pos_scores"] == [3.0] and by_id["c"]["neg_scores"] is None and by_id["c"]["negatives"]
    assert "d" not in by_id and summary["rejects"] == 1 and summary["with_teacher_scores"] == 1
    rejects = storage.read_table(f"{tmp_path}/out/rejects").to_pylist()
    assert "neg_scores must have as many entries as neg" in rejects[0]["detail"]


def test_jsonl_fields_are_typed_never_coerced(tmp_path):
    good = {"query_id": "ok", "query": "fine", "pos": ["a passage"], "neg": ["another"]}
    bad = [
        ({"query_id": "s", "query": "q", "pos": "abc"}, "'pos' must be a list of strings, got a string"),
        ({"query_id": "n", "query": "q", "pos": None}, "'pos' must be a list of strings, got null"),
        ({"query_id": "5", "query": "q", "pos": 5}, "'pos' must be a list of strings, got a number"),
        ({"query_id": "i", "query": "q", "pos": ["x", 3]}, r"'pos'\[1\] must be a string, got a number"),
        ({"query_id": "g", "query": "q", "pos": ["x"], "neg": None}, "'neg' must be a list of strings, got null"),
        ({"query_id": "t", "query": 7, "pos": ["x"]}, "'query' must be a string, got a number"),
    ]
    path = tmp_path / "rows.jsonl"
    for row, reason in bad:
        path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(beir.DatasetError, match=f"rows.jsonl line 2: {reason}"):
            prepare([f"dataset.path={path}", f"output={tmp_path}/out", "mining.method=none"])
    path.write_text("".join(json.dumps(r) + "\n" for r in [good] + [row for row, _ in bad]))
    summary, rows = prepare([f"dataset.path={path}", f"output={tmp_path}/skip", "mining.method=none",
                             "dataset.on_bad_line=skip"])
    assert [r["query_id"] for r in rows] == ["ok"] and summary["rejects"] == len(bad)
    rejects = storage.read_table(f"{tmp_path}/skip/rejects").to_pylist()
    assert [r["row"] for r in rejects] == [str(n) for n in range(2, 2 + len(bad))]
    assert {r["reason"] for r in rejects} == {"bad_line"}


def test_jsonl_empty_queries_repeated_ids_and_invalid_utf8(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps({"query_id": "a", "query": "one", "pos": ["p1"]}).encode(),
             json.dumps({"query_id": "b", "query": " ", "pos": ["p2"]}).encode(),
             json.dumps({"query_id": "a", "query": "again", "pos": ["p3"]}).encode(),
             b'{"query_id": "c", "query": "caf\xe9", "pos": ["p4"]}',
             json.dumps({"query_id": "d", "query": "four", "pos": ["p5"]}).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(beir.DatasetError, match=r"rows.jsonl line 4: not valid UTF-8"):
        prepare([f"dataset.path={path}", f"output={tmp_path}/out", "mining.method=none"])
    summary, rows = prepare([f"dataset.path={path}", f"output={tmp_path}/skip", "mining.method=none",
                             "dataset.on_bad_line=skip"])
    assert [(r["query_id"], r["query"]) for r in rows] == [("a", "one"), ("d", "four")]
    rejects = storage.read_table(f"{tmp_path}/skip/rejects").to_pylist()
    assert sorted((r["row"], r["reason"]) for r in rejects) == [
        ("4", "bad_line"), ("a", "duplicate_query"), ("b", "empty_query")]


def test_rerun_with_another_config_is_refused_unless_overwrite(tmp_path):
    out = f"output={tmp_path}/out"
    prepare([out, "mining.count=2", "mining.depth=5"])
    prepare([out, "mining.count=2", "mining.depth=5"])  # the same config: replaced, no question
    with pytest.raises(storage.StorageError, match="another config.*overwrite=true"):
        prepare([out, "mining.count=3", "mining.depth=5"])
    _, rows = prepare([out, "mining.count=3", "mining.depth=5", "overwrite=true"])
    assert all(len(r["negatives"]) == 3 for r in rows)


def test_streamed_rows_do_not_depend_on_batching(tmp_path):
    """Rows stream through the mining worker batch by batch and leave in shards as they fill: the output,
    rejects and summary are the same whatever the batch and shard sizes, with the worker in a Ray actor or
    in the driver, and each mined row's negatives are what ``synth.mining.MiningWorker`` picks for it."""
    words = "tide moon gravity ocean salt wave sun light sugar leaf cell gene".split()
    lines = []
    for n in range(30):
        row = {"query_id": f"q{n}", "query": f"{words[n % 12]} {words[(n * 5) % 12]}",
               "pos": [f"{words[n % 12]} {words[(n * 7) % 12]} {words[(n * 5) % 12]} passage {n}"]}
        if n % 4 == 0:
            row["neg"] = [f"carried negative {n}"]
        lines.append(json.dumps(row if n != 9 else {**row, "query_id": "q3"}))  # a repeated id
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines[:17] + ["{broken"] + lines[17:]) + "\n")
    base = [f"dataset.path={path}", "dataset.on_bad_line=skip", "mining.count=2", "mining.depth=6"]
    whole, rows = prepare(base + [f"output={tmp_path}/whole", "shard_rows=1000", "mine_batch_rows=1000"])
    streamed, streamed_rows = prepare(base + [f"output={tmp_path}/streamed", "shard_rows=7", "mine_batch_rows=3",
                                              "batches_in_flight=2", "actor_min_bytes=0"])  # the worker on Ray
    assert streamed_rows == rows and len(rows) == 29
    assert [f["num_rows"] for f in storage.read_manifest(f"{tmp_path}/streamed/training_rows").files] == [7] * 4 + [1]
    drop = ("output", "elapsed_s", "throughput", "finished_at", "actor_seconds", "framework_logs")
    assert {k: v for k, v in streamed.items() if k not in drop} == {k: v for k, v in whole.items() if k not in drop}
    assert streamed["actor_seconds"]["CPU"] > 0 and whole["actor_seconds"] == {"CPU": 0.0, "GPU": 0.0}
    assert (storage.read_table(f"{tmp_path}/streamed/rejects").to_pylist()
            == storage.read_table(f"{tmp_path}/whole/rejects").to_pylist())
    assert whole["passed_through"] == 8 and whole["mined"] == 21 and whole["rejects"] == 2

    worker = MiningWorker(load_config(PrepareConfig, None, base), "jsonl")
    assert worker.load() == {"corpus": 29 + 8, "to_mine": 21}  # the repeated id's passage is not in it
    worker.build_index()
    mined = [r for r in rows if not r["negatives"][0].startswith("carried")]
    found = worker.mine([(r["query_id"], r["query"], r["positive_ids"]) for r in mined])
    assert [(r["negative_ids"], r["negatives"]) for r in mined] == [(ids, texts) for ids, texts in found]
