"""Which steps of a pipeline run and which are skipped: pure logic over the config and the stage records.

A step's fingerprint is its own config's fingerprint plus the fingerprints of the steps whose outputs it
reads, so a change anywhere reruns exactly that step and every step downstream of it. When a step
finishes, the pipeline writes ``<output>/_pipeline/<step>.json`` (its fingerprint and rows, and from the
stage's summary its time and config fingerprint: ``o1e.runs.step_record``); a step whose record carries the
current fingerprint, and whose output is still there, is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o1e import runs, storage
from o1e.provenance import fingerprint
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.stages import ORDER, STAGES
from o1e.stage import count_rows, get_dotted

RECORDS = "_pipeline"


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


def build_steps(cfg: PipelineConfig) -> list[Step]:
    """Every step in order, each with the steps it reads from and its fingerprint: the stages, then the
    baselines, then each ablation's training and evaluation, so that the trained model's figures and those it
    is compared with come before the long ablation trainings."""
    steps = [Step(name, name, cfg.stage(name)) for name in ORDER]
    steps += [Step(f"baseline:{name}", "eval", b) for name, b in cfg.baselines.items()]
    for name, ablation in cfg.ablations.items():
        steps += [Step(f"train:{name}", "train", ablation.train), Step(f"eval:{name}", "eval", ablation.eval)]
    producers = {storage.join(s.output, STAGES[s.stage].output): s.name for s in steps if STAGES[s.stage].output}
    by_name: dict[str, Step] = {}
    for step in steps:
        step.deps = [producers[u] for u in STAGES[step.stage].input_urls(step.config) if u in producers]
        step.fingerprint = fingerprint({
            "config": _without_chained_paths(step, producers).fingerprint(),
            "upstream": {d: by_name[d].fingerprint for d in step.deps},
        })
        by_name[step.name] = step
    return steps


def _without_chained_paths(step: Step, producers: dict[str, str]):
    """The step's config with every input read from another step replaced by a placeholder: that step's
    fingerprint identifies the input, so a pipeline copied to another root stays current."""
    config = step.config
    for read in STAGES[step.stage].inputs:
        if get_dotted(config, read.key) in producers:
            config = _replace(config, read.key.split("."), "<chained>")
    return config


def _replace(section, keys: list[str], value):
    """A copy of a config section with field ``keys`` (a path) set to ``value``."""
    head, *rest = keys
    return section.model_copy(update={head: _replace(getattr(section, head), rest, value) if rest else value})


def window(steps: list[Step], start: str | None, until: str | None) -> list[Step]:
    """The steps from stage ``start`` through stage ``until`` (ablations belong to train and eval, baselines
    to eval)."""
    for name in (start, until):
        if name is not None and name not in STAGES:
            raise ValueError(f"unknown stage {name!r}: one of {', '.join(ORDER)}")
    first = ORDER.index(start) if start else 0
    last = ORDER.index(until) if until else len(ORDER) - 1
    if first > last:
        raise ValueError(f"--from {start} comes after --until {until}")
    return [s for s in steps if first <= ORDER.index(s.stage) <= last]


def record_url(cfg: PipelineConfig, step: Step) -> str:
    return storage.join(cfg.output, RECORDS, f"{step.name.replace(':', '-')}.json")


def read_record(cfg: PipelineConfig, step: Step) -> dict | None:
    url = record_url(cfg, step)
    return storage.read_json(url) if storage.exists(url) else None


def is_current(step: Step, record: dict | None) -> bool:
    """The step finished with this fingerprint and its output is still there."""
    return bool(record) and record.get("fingerprint") == step.fingerprint and storage.exists(step.done_marker)


def step_rows(step: Step) -> dict[str, int | None]:
    """Rows in, rows out and rejects of a finished step (the stage counts its own rows)."""
    rows_in, rows_out = STAGES[step.stage].row_counts(step.config)
    return {"rows_in": rows_in, "rows_out": rows_out, "rejects": count_rows(storage.join(step.output, runs.REJECTS)) or 0}
