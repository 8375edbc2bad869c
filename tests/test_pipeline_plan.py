"""The pipeline's chaining, fingerprints and stage window, and lineage records: pure logic, no Ray."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from o1e import lineage, storage
from o1e.config import load_config
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.plan import build_steps, window

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipeline", "configs")


def steps_by_name(*overrides: str) -> dict:
    cfg = load_config(PipelineConfig, os.path.join(CONFIGS, "demo.yaml"),
                      ["output=/runs/p", "synth.engine.model=/m/expert", "train.model=/m/base", *overrides])
    return {s.name: s for s in build_steps(cfg)}


def test_stages_chain_under_the_output_root():
    cfg = load_config(PipelineConfig, None, ["output=/runs/p", "train.model=/m/base", "ray.num_cpus=2",
                                             "baselines={bm25: {retriever: {kind: bm25}}, before: {retriever: {kind: o1}}}"])
    assert cfg.synth.input == cfg.vote.training_rows == "/runs/p/prepare/training_rows"
    assert cfg.vote.candidates == "/runs/p/synth/candidates"
    assert cfg.train.data == "/runs/p/vote/training"
    assert cfg.eval.retriever.kind == "o1" and cfg.eval.retriever.model == "/runs/p/train/model"
    assert cfg.eval.dataset.path == cfg.prepare.dataset.path and cfg.eval.dataset.split == "test"
    assert cfg.baselines["before"].retriever.model == "/m/base"  # the O1 model before training
    assert cfg.baselines["bm25"].output == "/runs/p/baselines/bm25"
    assert cfg.train.ray.num_cpus == 2 and cfg.baselines["bm25"].ray.num_cpus == 2
    # A path the config names itself is kept, and the stage no longer depends on the one it replaced.
    explicit = load_config(PipelineConfig, None, ["output=/runs/p", "synth.input=s3://b/rows"])
    assert explicit.synth.input == "s3://b/rows" and explicit.vote.training_rows == "/runs/p/prepare/training_rows"
    assert {s.name: s.deps for s in build_steps(explicit)}["synth"] == []


def test_a_change_reruns_exactly_the_steps_downstream_of_it():
    base = steps_by_name()
    assert base["vote"].deps == ["prepare", "synth"] and base["eval"].deps == ["train"]
    changed_train = steps_by_name("train.optim.lr=0.002")
    differs = {n for n in base if base[n].fingerprint != changed_train[n].fingerprint}
    assert differs == {"train", "eval", "train:no-thinking", "eval:no-thinking"}  # the ablation copies train
    changed_prepare = steps_by_name("prepare.mining.count=5")
    differs = {n for n in base if base[n].fingerprint != changed_prepare[n].fingerprint}
    assert differs == {"prepare", "synth", "vote", "train", "eval", "train:no-thinking", "eval:no-thinking"}
    assert not {n for n in differs if n.startswith("baseline:")}  # baselines read none of them
    # Where results go and how many actors share the work change nothing computed; nor does moving the
    # whole pipeline to another root (each chained input is identified by its producer's fingerprint).
    assert steps_by_name("eval.shards=4", "synth.engine.replicas=3")["eval"].fingerprint == base["eval"].fingerprint
    moved = steps_by_name("output=s3://bucket/elsewhere")
    assert all(moved[n].fingerprint == base[n].fingerprint for n in base)


def test_window_selects_stages_and_rejects_unknown_ones():
    steps = list(steps_by_name().values())
    chosen = [s.name for s in window(steps, "train", "eval")]  # baselines before the ablation's training
    assert chosen[:2] == ["train", "eval"] and chosen[-2:] == ["train:no-thinking", "eval:no-thinking"]
    assert {s.stage for s in window(steps, "train", "eval")} == {"train", "eval"}
    assert [s.name for s in window(steps, None, "vote")] == ["prepare", "synth", "vote"]
    with pytest.raises(ValueError, match="unknown stage 'trian'"):
        window(steps, "trian", None)
    with pytest.raises(ValueError, match="comes after"):
        window(steps, "eval", "synth")


def test_an_ablation_is_the_train_section_with_its_overrides_evaluated_as_eval():
    """The demo's no-thinking model: train's every key but the two it overrides, on the same rows, under
    its own root; evaluated with eval's settings and its own k."""
    cfg = load_config(PipelineConfig, os.path.join(CONFIGS, "demo.yaml"), ["output=/runs/p", "train.optim.lr=0.003"])
    ablation = cfg.ablations["no-thinking"]
    assert ablation.train.data == cfg.train.data == "/runs/p/vote/training"
    assert ablation.train.output == "/runs/p/ablations/no-thinking/train"
    assert ablation.train.sequence.thought_dropout == 1.0 and ablation.train.loss.contrastive_weight == 1.0
    assert ablation.train.optim == cfg.train.optim and ablation.train.optim.lr == 0.003
    assert ablation.train.model == cfg.train.model and ablation.train.lora == cfg.train.lora
    assert ablation.eval.retriever.model == "/runs/p/ablations/no-thinking/train/model"
    assert ablation.eval.output == "/runs/p/ablations/no-thinking/eval"
    assert ablation.eval.thoughts.variants() == [0] and not ablation.eval.needs_thoughts
    assert ablation.eval.dataset == cfg.eval.dataset
    steps = {s.name: s for s in build_steps(cfg)}
    assert steps["train:no-thinking"].deps == ["vote"] and steps["eval:no-thinking"].deps == ["train:no-thinking"]
    # A change to the ablation alone reruns the ablation alone.
    changed = {s.name: s for s in build_steps(load_config(
        PipelineConfig, os.path.join(CONFIGS, "demo.yaml"),
        ["output=/runs/p", "train.optim.lr=0.003", "ablations.no-thinking.train.loss.temperature=0.05"]))}
    assert {n for n in steps if steps[n].fingerprint != changed[n].fingerprint} == {"train:no-thinking",
                                                                                    "eval:no-thinking"}
    with pytest.raises(ValueError, match="ablations.x: only train and eval sections may be given, not .'synth'."):
        load_config(PipelineConfig, None, ["ablations={x: {synth: {seed: 1}}}"])


def test_the_paper_pipeline_config_resolves(tmp_path):
    cfg = load_config(PipelineConfig, os.path.join(CONFIGS, "paper.yaml"))
    assert cfg.synth.engine.tensor_parallel_size == 8 and cfg.synth.engine.model.endswith("Llama-3.1-70B-Instruct")
    assert [m.name for m in cfg.vote.members] == ["bge-large-en-v1.5", "stella_en_1.5B_v5", "gte-large-en-v1.5", "bm25"]
    assert cfg.train.num_workers == 8 and cfg.train.deepspeed.zero_stage == 1 and cfg.train.lora.enabled
    assert cfg.eval.retriever.kind == "o1" and cfg.eval.thoughts.n == 3
    assert cfg.eval.retriever.model == storage.join(cfg.train.output, "model")


def test_lineage_follows_parents_from_any_dataset(tmp_path):
    rows = pa.table({"query_id": ["q"], "query": ["x"], "positives": [["p"]], "positive_ids": [["d1"]],
                     "negatives": [["n"]], "negative_ids": [["d2"]]})
    first = str(tmp_path / "rows")
    storage.write_table(first, rows, "training_rows", config={"dataset": {"path": "/beir"}, "mining": {"method": "bm25"}},
                        config_fingerprint="aaa", parents=[{"url": "/beir", "split": "train"}])
    second = str(tmp_path / "scores")
    from o1e import schemas

    storage.write_table(second, schemas.COMMITTEE_SCORES.empty(), "committee_scores",
                        config={"members": [{"name": "bm25"}, {"name": "minilm"}], "vote": "soft"},
                        config_fingerprint="bbb", parents=[storage.dataset_ref(first)])
    nodes = lineage.walk(second)
    assert [(n.kind, n.fingerprint) for n in nodes] == [("committee_scores", "bbb"), ("training_rows", "aaa")]
    summary = lineage.summarise(nodes)
    assert summary["committee"] == ["bm25", "minilm"] and summary["mining"] == "bm25"
    assert [c["url"] for c in summary["chain"]] == [second, first]
    with pytest.raises(storage.StorageError, match="no lineage record"):
        lineage.read_node(str(tmp_path))
