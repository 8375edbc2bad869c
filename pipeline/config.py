"""The pipeline's config (``o1e run``): one section per stage, each taking every key of that stage's config.

Stages chain under one output root unless a section names its own paths::

    <output>/prepare/training_rows   ->  synth.input, vote.training_rows
    <output>/synth/candidates        ->  vote.candidates
    <output>/vote/training           ->  train.data
    <output>/train/model             ->  eval.retriever.model (eval.retriever.kind defaults to o1)
    prepare.dataset.path             ->  eval.dataset.path (a BEIR folder: train split in, test split out)

``ablations`` are further trainings on the same training rows, each a copy of the ``train`` section with its
own overrides (``train:`` keys) and evaluated as ``eval`` is (``eval:`` keys override), under
``<output>/ablations/<name>/``: the paper's "no thinking" model is ``train: {sequence: {thought_dropout:
1.0}, loss: {contrastive_weight: 1.0}}``. ``baselines`` are further evaluations on the same dataset, each
printed beside the trained model (BM25, a dense encoder, the O1 model before training). A baseline ``o1``
retriever without a model evaluates the base model ``train.model``. The top-level ``ray`` section and
``overwrite`` are every stage's unless the stage sets its own.

A stage section may start from that stage's own config file (``train: {config: train/configs/paper_qwen2.5-7b.yaml}``):
the file gives what the stage computes, the section's keys override it, and the paths still chain.
"""

from __future__ import annotations

import copy
import os
from typing import Any, ClassVar

import yaml
from pydantic import model_validator

from o1e.committee.config import CommitteeConfig
from o1e.eval.config import EvalConfig
from o1e import storage
from o1e.config import Section, StageConfig
from o1e.pipeline.stages import STAGES
from o1e.ray_utils import RayConfig
from o1e.synth.config import PrepareConfig, SynthConfig
from o1e.train.config import TrainConfig

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _section(data: dict[str, Any], *path: str) -> dict[str, Any]:
    node = data
    for key in path:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        node = child
    return node


def _absolute(url: str) -> str:
    return url if storage.is_s3(url) else storage.resolve(url)[1]


def _find_file(path: str) -> str:
    """A stage config file, relative to the working directory or else to the project's own folder."""
    if storage.is_s3(path) or os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(PROJECT_DIR, path)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _include_stage_file(stage: str, section: dict[str, Any]) -> dict[str, Any]:
    """``config: FILE`` in a stage section: that stage's YAML is the base and the section's keys override
    it; the file's own input and output paths (the stage's ``path_keys``) are dropped, so the stage still chains."""
    section = dict(section)
    path = section.pop("config", None)
    if path is None:
        return section
    try:
        loaded = yaml.safe_load(storage.read_text(_find_file(path))) or {}
    except (storage.StorageError, yaml.YAMLError) as err:
        raise ValueError(f"{stage}.config: cannot read {path}: {err}") from None
    for dotted in STAGES[stage].path_keys:
        *parents, last = dotted.split(".")
        node = loaded
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return _merge(loaded, section)


def chain_paths(data: dict[str, Any]) -> dict[str, Any]:
    """Fill every stage path the config leaves unset from the output root and the previous stage."""
    data = dict(data)
    for stage in STAGES:
        if isinstance(data.get(stage), dict):
            data[stage] = _include_stage_file(stage, data[stage])
    root = _absolute(data.get("output") or PipelineConfig.model_fields["output"].default)
    data["output"] = root
    at = lambda *parts: storage.join(root, *parts)  # noqa: E731
    sections = {name: _section(data, name) for name in STAGES}
    prepare, train, evaluate = sections["prepare"], sections["train"], sections["eval"]
    _section(evaluate, "retriever").setdefault("kind", "o1")  # the pipeline evaluates the model it trained
    for name, stage in STAGES.items():
        sections[name].setdefault("output", at(name))
        for read in stage.inputs:
            if read.applies(sections[name]):
                *parents, last = read.key.split(".")
                _section(sections[name], *parents).setdefault(last, storage.join(sections[read.stage]["output"], read.name))
    source = _section(prepare, "dataset")
    if source.get("path") and source.get("format", "auto") in ("auto", "beir"):
        _section(evaluate, "dataset").setdefault("path", source["path"])
    data["ablations"] = {name: _ablation(name, ablation or {}, train, evaluate, at)
                         for name, ablation in (data.get("ablations") or {}).items()}
    baselines = data.get("baselines") or {}
    data["baselines"] = {name: dict(b or {}) for name, b in baselines.items()}
    for name, baseline in data["baselines"].items():
        dataset = _section(baseline, "dataset")
        for key, value in _section(evaluate, "dataset").items():
            dataset.setdefault(key, value)
        b_retriever = _section(baseline, "retriever")
        if b_retriever.get("kind") == "o1" and train.get("model"):
            b_retriever.setdefault("model", train["model"])
        baseline.setdefault("output", at("baselines", name))
    for key in ("ray", "overwrite"):  # pipeline-wide settings, unless a stage sets its own
        if data.get(key):
            ablation_sections = [s for a in data["ablations"].values() for s in (a["train"], a["eval"])]
            for section in (*sections.values(), *ablation_sections, *data["baselines"].values()):
                section.setdefault(key, data[key])
    return data


def _ablation(name: str, overrides: dict[str, Any], train: dict[str, Any], evaluate: dict[str, Any], at
              ) -> dict[str, Any]:
    """An ablation's full train and eval sections: the pipeline's own, its overrides on top, its own paths."""
    unknown = set(overrides) - {"train", "eval"}
    if unknown:
        raise ValueError(f"ablations.{name}: only train and eval sections may be given, not {sorted(unknown)}")
    a_train = _merge(copy.deepcopy(train), overrides.get("train") or {})
    a_train["output"] = at("ablations", name, "train")
    a_train.pop("storage_path", None)
    a_eval = _merge(copy.deepcopy(evaluate), overrides.get("eval") or {})
    a_eval["output"] = at("ablations", name, "eval")
    a_eval["retriever"] = {**a_eval["retriever"], "model": storage.join(a_train["output"], "model")}
    return {"train": a_train, "eval": a_eval}


class AblationConfig(Section):
    """Another training on the pipeline's training rows, and its evaluation."""

    train: TrainConfig
    eval: EvalConfig


class PipelineConfig(StageConfig):
    """Every stage, from training data to thought-augmented metrics; see the module docstring for chaining."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("ablations", "baselines")

    output: str = "outputs/pipeline"
    """Root under which every stage writes (local or s3://); ``_pipeline/`` there records each finished stage."""
    prepare: PrepareConfig = PrepareConfig()
    synth: SynthConfig = SynthConfig()
    vote: CommitteeConfig = CommitteeConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    ablations: dict[str, AblationConfig] = {}
    """Name -> another training (``train`` overrides) and its evaluation, printed beside the trained model."""
    baselines: dict[str, EvalConfig] = {}
    """Name -> another evaluation on eval's dataset, printed beside the trained model."""
    ray: RayConfig = RayConfig()

    @model_validator(mode="before")
    @classmethod
    def _chain(cls, data: Any) -> Any:
        return chain_paths(data) if isinstance(data, dict) else data

    def stage(self, name: str):
        return getattr(self, name)
