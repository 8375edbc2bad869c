"""What every stage leaves beside its datasets, written one way.

- Every dataset a stage writes carries the run's lineage: its config, config fingerprint and parents.
- A ``rejects`` dataset: one row per input row that could not be used, with the reason (``o1e.schemas.Reject``:
  one of ``REJECT_REASONS``).
- ``config.yaml``: the resolved config.
- ``README.md``: a Hugging Face dataset card for the datasets in the output (``o1e.cards``).
- ``summary.json``, written last: its presence means the run finished. It holds the stage's own figures
  plus the stage name, the fingerprint and the rule it follows (``o1e.config.FINGERPRINT_RULE``), the code
  version, the finishing time, ``throughput`` (rows handled, rows/s over the run and the driver process's
  peak resident memory), ``actor_seconds`` (the CPU- and GPU-seconds its Ray actors and tasks held, counted
  where it placed them: ``o1e.costs``) and ``framework_logs`` (the folder where Ray keeps the worker and
  framework logs of the driver's node; ``None`` for a run without Ray).
- Views of the summary, for the readers that expect other files: eval's ``metrics.json``, a trained model's
  ``lineage.json`` (``View``, written from the summary just before it) and the pipeline's record of a finished
  step (``step_record``, from the summary the stage wrote). Their fields are copied from the summary, so
  the files cannot disagree with it or with each other.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from o1e import costs, schemas, storage
from o1e import config as o1e_config
from o1e.config import StageConfig
from o1e.provenance import code_version
from o1e.ray_utils import framework_logs_dir

SUMMARY = "summary.json"
CONFIG = "config.yaml"
REJECTS = "rejects"


def driver_peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB. On Linux it is the ``VmHWM`` of
    /proc/self/status: ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a stage started by a large
    process (a benchmark, a notebook) would report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


@dataclass(frozen=True)
class View:
    """A file in a run's output that holds part of its summary, for the readers that expect that file: the
    summary's fields ``keys`` and, at its top level, the fields of its dict ``section``. The run writes it from
    the summary (``RunRecord.write``), so the two cannot disagree."""

    name: str
    keys: tuple[str, ...] = ()
    section: str | None = None
    folder: str = ""
    """The folder under the output that holds it (empty: the output itself)."""

    def of(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {**(summary[self.section] if self.section else {}), **{key: summary[key] for key in self.keys}}

    def url(self, output: str) -> str:
        return storage.join(output, self.folder, self.name)

    def read(self, output: str) -> dict[str, Any] | None:
        """The view in ``output``; None where the run has not written it."""
        url = self.url(output)
        return storage.read_json(url) if storage.exists(url) else None


EVAL_METRICS = View("metrics.json", keys=("config_fingerprint", "code_version"), section="metrics")
"""eval's figures (the summary's ``metrics``: means, variants, dataset, retriever, counts, timings, the
model's lineage) with the run's fingerprint and code version."""
MODEL_LINEAGE = View("lineage.json", folder="model", keys=(
    "training_dataset", "base_model", "config", "config_fingerprint", "code_version", "checkpoint", "ray_run",
    "final_metrics", "rows"))
"""What a trained model was made from and how, beside its weights: the summary of the train run."""
STEP_FIELDS = ("config_fingerprint", "fingerprint_rule", "actor_seconds", "finished_at", "code_version")
"""The fields of a pipeline's step record that come from the stage's summary as they are."""


def step_record(summary: dict[str, Any], **step: Any) -> dict[str, Any]:
    """The pipeline's record of a finished step: what the pipeline knows of the step (``step``: its name,
    stage, fingerprint, upstream steps, output and rows) and, from the summary the stage wrote, its time,
    its actors' seconds, its config fingerprint, code version and finishing time."""
    return {**step, "elapsed_s": summary["throughput"]["elapsed_s"], **{key: summary[key] for key in STEP_FIELDS}}


def read_summary(output: str) -> dict[str, Any] | None:
    """The summary of the run that wrote ``output``; None while it has not finished."""
    url = storage.join(output, SUMMARY)
    return storage.read_json(url) if storage.exists(url) else None


def rejects_table(stage: str, rejects: list[schemas.Reject]) -> pa.Table:
    """The rows of a ``rejects`` dataset (or of one of its shards)."""
    return pa.Table.from_pylist([r.as_row(stage) for r in rejects], schema=schemas.REJECTS.arrow)


@dataclass
class RunRecord:
    stage: str
    config: StageConfig
    parents: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str | None = None
    """The run's identity when it is more than the config's (for example the inputs' identities too)."""
    started: float = field(default_factory=time.perf_counter)
    """When the run started (``time.perf_counter``); a stage that makes its record late passes its own."""
    views: tuple[View, ...] = ()
    """Files written from the summary, just before it."""

    @property
    def output(self) -> str:
        return self.config.output

    @property
    def lineage(self) -> dict[str, Any]:
        return {"config": self.config.model_dump(mode="json"),
                "config_fingerprint": self.fingerprint or self.config.fingerprint(), "parents": self.parents}

    def url(self, name: str) -> str:
        return storage.join(self.output, name)

    def check_rerun(self, *names: str) -> None:
        """Refuse, before any work, output that another config made (unless ``overwrite``)."""
        for name in names:
            storage.check_rerun(self.url(name), self.lineage["config_fingerprint"], self.config.overwrite)

    def writer(self, name: str, schema: str | None = None) -> storage.DatasetWriter:
        """A dataset written shard by shard under ``<output>/<name>``, resumable, with the run's lineage."""
        return storage.DatasetWriter(self.url(name), schema or name, overwrite=self.config.overwrite, **self.lineage)

    def write_table(self, name: str, table: pa.Table, schema: str | None = None,
                    extra: dict[str, Any] | None = None) -> storage.Manifest:
        """A whole dataset at once under ``<output>/<name>``, with the run's lineage."""
        return storage.write_table(self.url(name), table, schema or name, overwrite=self.config.overwrite,
                                   extra=extra, **self.lineage)

    def write_rejects(self, rejects: list[schemas.Reject]) -> storage.Manifest:
        return self.write_table(REJECTS, rejects_table(self.stage, rejects))

    def finish(self, figures: dict[str, Any], rows: int, unit: str) -> dict[str, Any]:
        """Write the run's summary of the stage's ``figures`` and its views (``write``); returns the summary."""
        summary = self.summary(figures, rows, unit)
        self.write(summary)
        return summary

    def summary(self, figures: dict[str, Any], rows: int, unit: str) -> dict[str, Any]:
        """The stage's ``figures`` and what every run records. ``rows`` counts what the run worked through, in
        ``unit`` (a query, a document, a training row)."""
        elapsed = time.perf_counter() - self.started
        throughput = {"unit": unit, "rows": rows, "elapsed_s": round(elapsed, 3),
                      "rows_per_s": round(rows / elapsed, 2) if elapsed > 0 else None,
                      "driver_peak_rss_mb": driver_peak_rss_mb()}
        return {"stage": self.stage, **figures, "throughput": throughput,
                "actor_seconds": costs.actor_seconds(self.started), "framework_logs": framework_logs_dir(),
                "config_fingerprint": self.lineage["config_fingerprint"],
                "fingerprint_rule": o1e_config.FINGERPRINT_RULE, "code_version": code_version(),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def write(self, summary: dict[str, Any]) -> None:
        """Write ``config.yaml``, the datasets' card, the views, then ``summary.json`` (last: the run finished)."""
        storage.write_text(self.url(CONFIG), self.config.to_yaml())
        self.write_card()
        for view in self.views:
            storage.write_json(view.url(self.output), view.of(summary))
        storage.write_json(self.url(SUMMARY), summary)

    def write_card(self) -> None:
        """The Hugging Face card of every dataset directly under the output."""
        from o1e import cards

        manifests = {name: storage.read_manifest(self.url(name)) for name in sorted(storage.listdir(self.output))
                     if storage.is_dataset(self.url(name))}
        if manifests:
            storage.write_text(self.url(cards.CARD), cards.datasets_card(self.stage, manifests))
