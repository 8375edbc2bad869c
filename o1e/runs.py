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

    def finish(self, summary: dict[str, Any], rows: int, unit: str) -> dict[str, Any]:
        """Write ``config.yaml``, then ``summary.json`` (last: the run finished); returns the summary.
        ``rows`` counts what the run worked through, in ``unit`` (a query, a document, a training row)."""
        elapsed = time.perf_counter() - self.started
        throughput = {"unit": unit, "rows": rows, "elapsed_s": round(elapsed, 3),
                      "rows_per_s": round(rows / elapsed, 2) if elapsed > 0 else None,
                      "driver_peak_rss_mb": driver_peak_rss_mb()}
        summary = {"stage": self.stage, **summary, "throughput": throughput,
                   "actor_seconds": costs.actor_seconds(self.started), "framework_logs": framework_logs_dir(),
                   "config_fingerprint": self.lineage["config_fingerprint"],
                   "fingerprint_rule": o1e_config.FINGERPRINT_RULE, "code_version": code_version(),
                   "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        storage.write_text(self.url(CONFIG), self.config.to_yaml())
        self.write_card()
        storage.write_json(self.url(SUMMARY), summary)
        return summary

    def write_card(self) -> None:
        """The Hugging Face card of every dataset directly under the output."""
        from o1e import cards

        manifests = {name: storage.read_manifest(self.url(name)) for name in sorted(storage.listdir(self.output))
                     if storage.is_dataset(self.url(name))}
        if manifests:
            storage.write_text(self.url(cards.CARD), cards.datasets_card(self.stage, manifests))
