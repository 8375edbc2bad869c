"""The ``o1e`` command: one subcommand per registered stage (``o1e.pipeline.stages``), ``run`` for the
pipeline, ``demo``, ``lineage``, ``report`` and ``verify``.

Every stage takes ``--config FILE`` (YAML, local or s3://), ``dotted.key=value`` overrides for any field, and
the short flags its declaration lists, each meaning one thing in every subcommand (``o1e.stage.Flag``).
``--print-config`` shows the resolved config and exits.
"""

from __future__ import annotations

import argparse
import sys

from o1e.command import (add_config_parser, add_stage_commands, chosen_stage, config_from_args, guarded,
                         new_parser, parse_args, run_stage)
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.stages import GROUPS, ORDER, STAGES
from o1e.stage import Flag

RUN_FLAGS = (Flag(("-o", "--output"), "output", "output root of every stage (local or s3://)"),)


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("o1e", "O1 Embedder: synthesise, vote, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_stage_commands(sub, STAGES.values(), GROUPS)
    run = add_config_parser(sub, "run", f"the whole pipeline: {', '.join(ORDER)} (each skipped when its output "
                                        "is current)", RUN_FLAGS,
                            example="o1e run -c pipeline/configs/demo.yaml train.optim.lr=1e-4 --from train")
    run.add_argument("--from", dest="start", metavar="STAGE", help=f"first stage to run: {', '.join(ORDER)}")
    run.add_argument("--until", dest="until", metavar="STAGE", help="last stage to run")
    run.add_argument("--dry-run", action="store_true",
                     help="show what would run or be skipped, and with --cluster whether it fits; start nothing")
    run.add_argument("--cluster", metavar="FILE",
                     help="a ray up file or KubeRay manifest to check the resource requests against")
    demo = sub.add_parser("demo", help="the main job: the whole pipeline on bundled data with SmolLM2-135M-Instruct, local Ray",
                          epilog="example:\n  o1e demo -o outputs/demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("-o", "--output", default="outputs/demo", help="output root (default: outputs/demo)")
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="override any pipeline config field")
    lineage = sub.add_parser("lineage", help="where a dataset, model or evaluation came from, step by step",
                             epilog="example:\n  o1e lineage outputs/demo/eval",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    lineage.add_argument("path", help="a dataset folder, a model saved by o1e train, or an eval output (or s3://)")
    lineage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report = sub.add_parser("report", help="one self-contained HTML page of a pipeline's or a stage's output",
                            epilog="example:\n  o1e report outputs/demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("path", help="a pipeline's or a stage's output folder (or s3:// prefix)")
    report.add_argument("-o", "--output", help="where to write it (default: PATH/report.html)")
    verify = sub.add_parser("verify", help="check datasets against their manifests (rows, sizes, checksums)",
                            description="Check every dataset at or under each PATH (a dataset folder or a stage's "
                                        "output) against its manifest; exit 1 when anything is wrong.",
                            epilog="example:\n  o1e verify outputs/demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("paths", nargs="+", metavar="PATH", help="dataset folder, stage output, or s3:// prefix")
    verify.add_argument("--no-checksum", action="store_true", help="check rows and sizes only (no full read)")
    return parser


def print_lineage(url: str, as_json: bool) -> None:
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from o1e import lineage

    nodes = lineage.walk(url)
    if not nodes:
        lineage.read_node(url)  # raises the error that says what is missing
    if as_json:
        print(json.dumps({"nodes": [asdict(n) for n in nodes], "summary": lineage.summarise(nodes)}, indent=2))
        return
    table = Table(title=f"lineage of {url}")
    for name in ("step", "location", "fingerprint", "created", "code", "facts"):
        table.add_column(name)
    for node in nodes:
        facts = ", ".join(f"{k}={v}" for k, v in node.facts.items() if v is not None)
        table.add_row(node.kind, node.url, node.fingerprint or "", node.created_at or "", node.code_version or "", facts)
    Console(highlight=False).print(table)


def _run_pipeline(args: argparse.Namespace) -> int:
    cfg = config_from_args(PipelineConfig, RUN_FLAGS, args)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    if args.dry_run:
        from o1e.pipeline.driver import dry_run

        return 1 if dry_run(cfg, args.cluster, args.start, args.until) else 0
    from o1e.pipeline.driver import run_pipeline

    run_pipeline(cfg, start=args.start, until=args.until)
    return 0


def _command(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run_pipeline(args)
    if args.command == "demo":
        from o1e.pipeline.demo import run_demo

        run_demo(args.output, args.overrides)
        return 0
    if args.command == "lineage":
        print_lineage(args.path, args.json)
        return 0
    if args.command == "report":
        from o1e.report import write

        print(f"wrote {write(args.path, args.output)}")
        return 0
    if args.command == "verify":
        from o1e.verify import verify_paths

        return verify_paths(args.paths, checksum=not args.no_checksum)
    return run_stage(chosen_stage(STAGES.values(), args), args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), list(sys.argv[1:] if argv is None else argv))
    return guarded(args.command, lambda: _command(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
