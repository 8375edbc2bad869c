"""The registry of stages, in pipeline order: the one list the ``o1e`` command, the pipeline's chaining,
plan, dry run and row counts derive from. Each stage declares itself in its own package (``o1e.stage``)."""

from __future__ import annotations

from o1e.committee.stage import VOTE
from o1e.eval.stage import EVAL
from o1e.stage import Stage
from o1e.synth.stage import GROUP_HELP as SYNTH_GROUP_HELP, PREPARE, SYNTH
from o1e.train.stage import TRAIN

STAGES: dict[str, Stage] = {stage.name: stage for stage in (PREPARE, SYNTH, VOTE, TRAIN, EVAL)}
ORDER = tuple(STAGES)
GROUPS = {"synth": SYNTH_GROUP_HELP}
"""Help of each command word that holds several stages (``o1e synth prepare|run``)."""
