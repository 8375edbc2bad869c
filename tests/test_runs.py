"""One run record (``o1e.runs``): ``summary.json`` is the record, and ``metrics.json``, a model's
``lineage.json`` and the pipeline's step records are views of it, so they cannot disagree with it. No Ray."""

from __future__ import annotations

import json

from o1e import runs
from o1e.eval.config import EvalConfig
from o1e.train.config import TrainConfig


def read(path) -> dict:
    return json.loads(path.read_text())


def test_metrics_json_is_the_summary_s_metrics_with_its_fingerprint_and_code_version(tmp_path):
    record = runs.RunRecord("eval", EvalConfig(output=str(tmp_path)), views=(runs.EVAL_METRICS,))
    metrics = {"ndcg@10": 0.5, "num_queries": 3, "k": 1, "variants": {"k=0": {"ndcg@10": 0.4}, "k=1": {"ndcg@10": 0.5}},
               "dataset": "/beir/scifact", "info": {"elapsed_s": 1.5}}
    summary = record.finish({"num_queries": 3, "k": 1, "metrics": metrics}, rows=10, unit="document")

    assert read(tmp_path / runs.SUMMARY) == json.loads(json.dumps(summary))
    view = read(tmp_path / "metrics.json")
    assert view == runs.EVAL_METRICS.read(str(tmp_path)) == {**metrics, "config_fingerprint": summary["config_fingerprint"],
                                                             "code_version": summary["code_version"]}
    assert view["config_fingerprint"] == record.config.fingerprint()


def test_a_model_s_lineage_json_holds_the_train_summary_s_fields(tmp_path):
    cfg = TrainConfig(data="/runs/vote/training", model="base", output=str(tmp_path))
    record = runs.RunRecord("train", cfg, views=(runs.MODEL_LINEAGE,))
    summary = record.finish({"model": str(tmp_path / "model"), "config": cfg.model_dump(mode="json"),
                             "training_dataset": {"url": cfg.data, "schema": "training"},
                             "base_model": {"path": "base", "fingerprint": "f"}, "checkpoint": None, "ray_run": "r",
                             "final_metrics": {"step": 2}, "rows": {"total": 3, "usable": 2, "rejected": 1}},
                            rows=3, unit="training row")

    lineage = read(tmp_path / "model" / "lineage.json")
    assert set(lineage) == set(runs.MODEL_LINEAGE.keys)
    assert lineage == {key: read(tmp_path / runs.SUMMARY)[key] for key in runs.MODEL_LINEAGE.keys}
    assert lineage["config_fingerprint"] == summary["config_fingerprint"] == cfg.fingerprint()


def test_a_pipeline_step_record_takes_the_stage_summary_s_time_fingerprint_and_code_version(tmp_path):
    # A run identified by more than its config (vote and synth add their inputs' identities).
    record = runs.RunRecord("eval", EvalConfig(output=str(tmp_path)), fingerprint="run-and-inputs")
    record.finish({"num_queries": 3}, rows=10, unit="document")
    summary = runs.read_summary(str(tmp_path))

    step = {"step": "eval", "stage": "eval", "fingerprint": "skip-decision", "upstream": ["train"],
            "output": str(tmp_path), "rows_in": 3, "rows_out": 3, "rejects": 0}
    rec = runs.step_record(summary, **step)
    assert rec == {**step, "elapsed_s": summary["throughput"]["elapsed_s"],
                   **{key: summary[key] for key in runs.STEP_FIELDS}}
    assert rec["config_fingerprint"] == "run-and-inputs" and rec["fingerprint"] == "skip-decision"


def test_an_unfinished_output_has_no_summary_and_no_views(tmp_path):
    assert runs.read_summary(str(tmp_path)) is None and runs.EVAL_METRICS.read(str(tmp_path)) is None
