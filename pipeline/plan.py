"""Which steps of a pipeline run and which are skipped: pure logic over the config and the stage records.

A step's fingerprint is its own config's fingerprint plus the fingerprints of the steps whose outputs it
reads, so a change anywhere reruns exactly that step and every step downstream of it. When a step
finishes, the pipeline writes ``<output>/_pipeline/<step>.json`` (its fingerprint, rows, time); a step
whose record carries the current fingerprint, and whose output is still there, is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o1e import runs, storage
from o1e.provenance import fingerprint
from o1e.pipeline.config import STAGES, PipelineConfig

RECORDS = "_pipeline"

# Per stage, the main output dataset under the stage's output (every stage also writes rejects/ and, last,
# summary.json: o1e.runs).
MAIN_DATASET = {"prepare": "training_rows", "synth": "candidates", "vote": "training", "train": None, "eval": None}


@dataclass
class Step:
    name: str
    """A stage name, ``train:<name>`` / ``eval:<name>`` for an ablation, ``baseline:<name>`` for an extra
    evaluation."""
    stage: str
    config: Any
    deps: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def output(self) -> str:
        return self.config.output

    @property
    def done_marker(self) -> str:
        return storage.join(self.output, runs.SUMMARY)


def _reads(step: "Step") -> list[str]:
    """The datasets and models a step reads."""
    config = step.config
    if step.stage == "eval":
        model = getattr(config.retriever, "model", None)
        return [model] if model else []
    keys = {"prepare": (), "synth": ("input",), "vote": ("training_rows", "candidates"), "train": ("data",)}
    return [getattr(config, key) for key in keys[step.stage]]


def build_steps(cfg: PipelineConfig) -> list[Step]:
    """Every step in order, each with the steps it reads from and its fingerprint."""
    steps = [Step(name, name, cfg.stage(name)) for name in STAGES]
    after_train = STAGES.index("train") + 1
    steps[after_train:after_train] = [Step(f"train:{name}", "train", a.train) for name, a in cfg.ablations.items()]
    steps += [Step(f"eval:{name}", "eval", a.eval) for name, a in cfg.ablations.items()]
    steps += [Step(f"baseline:{name}", "eval", b) for name, b in cfg.baselines.items()]
    producers = {storage.join(s.output, MAIN_DATASET[s.stage] or "model"): s.name
                 for s in steps if s.stage != "eval"}
    by_name: dict[str, Step] = {}
    for step in steps:
        step.deps = [producers[u] for u in _reads(step) if u in producers]
        step.fingerprint = fingerprint({
            "config": _without_chained_paths(step.config, producers).fingerprint(),
            "upstream": {d: by_name[d].fingerprint for d in step.deps},
        })
        by_name[step.name] = step
    return steps


def _without_chained_paths(config, producers: dict[str, str]):
    """The config with every input read from another step replaced by a placeholder: that step's
    fingerprint identifies the input, so a pipeline copied to another root stays current."""
    update = {key: "<chained>" for key in ("input", "training_rows", "candidates", "data")
              if getattr(config, key, None) in producers}
    retriever = getattr(config, "retriever", None)
    if getattr(retriever, "model", None) in producers:
        update["retriever"] = retriever.model_copy(update={"model": "<chained>"})
    return config.model_copy(update=update) if update else config


def window(steps: list[Step], start: str | None, until: str | None) -> list[Step]:
    """The steps from stage ``start`` through stage ``until`` (ablations belong to train and eval, baselines
    to eval)."""
    for name in (start, until):
        if name is not None and name not in STAGES:
            raise ValueError(f"unknown stage {name!r}: one of {', '.join(STAGES)}")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    if first > last:
        raise ValueError(f"--from {start} comes after --until {until}")
    return [s for s in steps if first <= STAGES.index(s.stage) <= last]


def record_url(cfg: PipelineConfig, step: Step) -> str:
    return storage.join(cfg.output, RECORDS, f"{step.name.replace(':', '-')}.json")


def read_record(cfg: PipelineConfig, step: Step) -> dict | None:
    url = record_url(cfg, step)
    return storage.read_json(url) if storage.exists(url) else None


def is_current(step: Step, record: dict | None) -> bool:
    """The step finished with this fingerprint and its output is still there."""
    return bool(record) and record.get("fingerprint") == step.fingerprint and storage.exists(step.done_marker)


def count_rows(url: str | None) -> int | None:
    return storage.read_manifest(url).num_rows if url and storage.is_dataset(url) else None


def step_rows(step: Step) -> dict[str, int | None]:
    """Rows in, rows out and rejects of a finished step, read from its datasets' manifests."""
    main = MAIN_DATASET[step.stage]
    out = count_rows(storage.join(step.output, main)) if main else None
    if step.stage == "prepare":
        rows_in = None
    elif step.stage == "synth":
        rows_in = count_rows(step.config.input)
    elif step.stage == "vote":
        rows_in = count_rows(step.config.candidates)
    elif step.stage == "train":
        rows_in = count_rows(step.config.data)
        lineage = storage.join(step.output, "model", "lineage.json")
        out = storage.read_json(lineage)["rows"]["usable"] if storage.exists(lineage) else None
    else:  # queries in, queries scored out (each for every k)
        metrics = storage.join(step.output, "metrics.json")
        rows_in = out = storage.read_json(metrics).get("num_queries") if storage.exists(metrics) else None
    return {"rows_in": rows_in, "rows_out": out, "rejects": count_rows(storage.join(step.output, runs.REJECTS)) or 0}
