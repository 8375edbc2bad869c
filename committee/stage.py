"""The committee's stage, as the pipeline and the ``o1e`` command know it (``o1e.stage.Stage``): ``vote``."""

from __future__ import annotations

from o1e.committee.config import CommitteeConfig
from o1e.placement import Cluster, Request
from o1e.progress import Show
from o1e.stage import Flag, Input, Stage


def _run(cfg: CommitteeConfig, show: Show):
    from o1e.committee.driver import run_committee

    return run_committee(cfg, show=show)


def _requests(cfg: CommitteeConfig, cluster: Cluster):
    placements = cfg.placements(cluster.cpus, cluster.gpus)
    return [[Request(f"member {m.name}", p.num_cpus, p.num_gpus, p.replicas) for m, p in zip(cfg.members, placements)]]


VOTE = Stage(
    name="vote", command=("vote",),
    help="let the retrieval committee score every candidate thought against its gold document and vote",
    config=CommitteeConfig, run=_run, output="training",
    inputs=(Input("training_rows", "prepare", "training_rows"), Input("candidates", "synth", "candidates")),
    rows_in="candidates",
    requests=_requests,
    flags=(
        Flag(("-t", "--training-rows"), "training_rows", "training_rows dataset (folder or s3:// prefix)"),
        Flag(("-i", "--candidates"), "candidates", "candidates dataset written by o1e synth run"),
        Flag(("-v", "--vote"), "vote", "how the members' scores combine (default: soft)",
             choices=("soft", "hard", "median")),
        Flag(("-b", "--batch-size"), "batch_size", "queries per scoring call of a member"),
        Flag(("--shard-size",), "shard_size", "queries per committed shard (the unit of resume)"),
        Flag(("--executor",), "executor", "member actor pools on Ray, or one local process", choices=("ray", "local")),
        Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
    ),
    example="o1e vote -t runs/prepare/training_rows -i runs/synth/candidates -o runs/vote",
)
