"""What a stage is: its name and command, its config, where it reads and writes, how it runs, what it asks Ray
for and how its rows are counted.

Each stage declares itself once, in its package's ``stage.py`` (``o1e.synth.stage`` declares prepare and synth,
``o1e.committee.stage`` vote, ``o1e.train.stage`` train, ``o1e.eval.stage`` eval). The pipeline's registry
(``o1e.pipeline.stages``) lists them in order, and everything that needs to know the stages derives from it:
the ``o1e`` command's subcommands and flags, the pipeline's chaining of paths, its skipping, its dry run and
its row counts. The shared package describes what a stage is; it never imports one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from o1e import storage
from o1e.placement import Cluster, Request
from o1e.progress import Show


@dataclass(frozen=True)
class Flag:
    """A short command-line flag for one config field; each short flag means one thing in every subcommand
    (-c config, -o output, -d a BEIR dataset, -s its split, -i the input dataset the previous stage wrote,
    -m the model, -n how many Ray actors share the work)."""

    names: tuple[str, ...]
    key: str
    help: str
    implies: dict[str, str] = field(default_factory=dict)
    """Overrides this flag adds unless the command line sets those keys itself."""
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Input:
    """A location a stage reads that another stage writes: the pipeline fills config field ``key`` (dotted)
    with ``<that stage's output>/<name>`` unless the config sets it."""

    key: str
    stage: str
    name: str
    when: tuple[str, Any] | None = None
    """Read only when config field ``when[0]`` (dotted) has the value ``when[1]``."""

    def applies(self, section: Any) -> bool:
        """Whether a config, or its section as a dict, reads this input."""
        if self.when is None:
            return True
        key, value = self.when
        return get_dotted(section, key) == value


def no_requests(config: Any, cluster: Cluster) -> list[list[Request]]:
    return []


@dataclass(frozen=True)
class Stage:
    name: str
    """The pipeline's name for the stage (its output folder and ``--from`` / ``--until`` value)."""
    command: tuple[str, ...]
    """Its words on the command line: ``("synth", "prepare")`` is ``o1e synth prepare``."""
    help: str
    config: type
    """Its config class (an ``o1e.config.StageConfig``)."""
    run: Callable[[Any, Show], Any]
    """``run(config, show)``: the stage's driver; ``show`` says what it draws (``o1e.progress.Show``)."""
    output: str | None = None
    """Its main result under its output folder (a dataset, or ``model``), which later stages read."""
    inputs: tuple[Input, ...] = ()
    rows_in: str | None = None
    """The config field of the dataset whose rows count as its rows in (``row_counts``)."""
    rows: Callable[[Any], tuple[int | None, int | None]] | None = None
    """Rows in and rows out of a finished run, for a stage that counts them otherwise than ``row_counts``."""
    extra_paths: tuple[str, ...] = ()
    """Further config fields that locate data (never taken from a stage file included by the pipeline)."""
    requests: Callable[[Any, Cluster], list[list[Request]]] = no_requests
    """What a run of this config asks Ray for on a cluster: phases (actors alive at the same time), each a
    list of requests."""
    flags: tuple[Flag, ...] = ()
    example: str = ""

    @property
    def path_keys(self) -> tuple[str, ...]:
        return ("output", *(i.key for i in self.inputs), *self.extra_paths)

    def row_counts(self, config: Any) -> tuple[int | None, int | None]:
        """Rows in and rows out of a finished run of this config, read from what it wrote: by default the
        manifests of the ``rows_in`` dataset and of its output dataset."""
        if self.rows is not None:
            return self.rows(config)
        rows_in = count_rows(get_dotted(config, self.rows_in)) if self.rows_in else None
        return rows_in, count_rows(storage.join(config.output, self.output))

    def input_urls(self, config: Any) -> list[str]:
        """The locations this config reads that other stages write (unset optional ones left out)."""
        return [url for url in (get_dotted(config, i.key) for i in self.inputs if i.applies(config)) if url]


def get_dotted(obj: Any, key: str) -> Any:
    """Field ``a.b.c`` of a config, or of its sections as dicts; None where a part is missing."""
    for part in key.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


def count_rows(url: str | None) -> int | None:
    """Rows of the dataset at ``url`` by its manifest; None where there is none."""
    return storage.read_manifest(url).num_rows if url and storage.is_dataset(url) else None
