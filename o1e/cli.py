"""The ``o1e`` command: one subcommand per stage, ``run`` for the pipeline, ``demo``, ``lineage``, ``report``,
``verify``.

Every stage takes ``--config FILE`` (YAML, local or s3://), ``dotted.key=value`` overrides for any
field, and short flags for the common fields, each meaning one thing in every subcommand.
``--print-config`` shows the resolved config and exits. Stages and the pipeline are named by module
path and imported only when run: the shared package imports no stage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field

from o1e.config import load_config
from o1e.provenance import code_version


@dataclass
class Flag:
    names: tuple[str, ...]
    key: str
    help: str
    implies: dict[str, str] = field(default_factory=dict)
    """Overrides this flag adds unless the command line sets those keys itself."""
    choices: tuple[str, ...] | None = None


@dataclass
class Stage:
    name: str
    help: str
    config: str  # "module:Class"
    runner: str  # "module:function"
    flags: list[Flag]
    example: str = ""


@dataclass
class StageGroup:
    """A stage with several steps, each its own subcommand (``o1e synth prepare``, ``o1e synth run``)."""

    name: str
    help: str
    steps: dict[str, Stage]


# One meaning per short flag in every subcommand: -c config, -o output, -d a BEIR dataset, -s its split,
# -i the input dataset the previous stage wrote, -m the model, -n how many Ray actors share the work.
STAGES: dict[str, Stage | StageGroup] = {
    "eval": Stage(
        "eval", "evaluate a retriever on a BEIR-format dataset (nDCG@10, MRR@10, Recall@100/1000)",
        "o1e.eval.config:EvalConfig", "o1e.eval.driver:run_eval",
        [
            Flag(("-d", "--dataset"), "dataset.path", "BEIR folder or s3:// prefix (default: bundled demo data)"),
            Flag(("-s", "--split"), "dataset.split", "qrels split (default: test)"),
            Flag(("-r", "--retriever"), "retriever.kind", "o1: a model saved by o1e train, thinking first",
                 choices=("bm25", "dense", "o1", "expand")),
            Flag(("-m", "--model"), "retriever.model", "model folder, s3:// prefix or packaged name",
                 implies={"retriever.kind": "dense"}),
            Flag(("-n", "--shards"), "shards", "Ray actors encoding and searching the corpus"),
            Flag(("-k", "--top-k"), "top_k", "documents retrieved per query (default: 1000)"),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            Flag(("--cache-dir",), "cache_dir", "embedding cache (local or s3://; 'null' disables)"),
        ],
        example="o1e eval -r o1 -m outputs/train/model -n 2 'thoughts.k=[0,1,3]'",
    ),
    "vote": Stage(
        "vote", "let the retrieval committee score every candidate thought against its gold document and vote",
        "o1e.committee.config:CommitteeConfig", "o1e.committee.driver:run_committee",
        [
            Flag(("-t", "--training-rows"), "training_rows", "training_rows dataset (folder or s3:// prefix)"),
            Flag(("-i", "--candidates"), "candidates", "candidates dataset written by o1e synth run"),
            Flag(("-v", "--vote"), "vote", "how the members' scores combine (default: soft)",
                 choices=("soft", "hard", "median")),
            Flag(("-b", "--batch-size"), "batch_size", "queries per scoring call of a member"),
            Flag(("--shard-size",), "shard_size", "queries per committed shard (the unit of resume)"),
            Flag(("--executor",), "executor", "member actor pools on Ray, or one local process",
                 choices=("ray", "local")),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
        ],
        example="o1e vote -t runs/prepare/training_rows -i runs/synth/candidates -o runs/vote",
    ),
    "synth": StageGroup("synth", "synthesise candidate thoughts with an expert LLM", {
        "prepare": Stage(
            "prepare", "training rows (query, positives, hard negatives) from a BEIR train split or JSONL rows",
            "o1e.synth.config:PrepareConfig", "o1e.synth.prepare:run_prepare",
            [
                Flag(("-d", "--dataset"), "dataset.path", "BEIR folder, JSONL rows file, or s3:// (default: bundled demo)"),
                Flag(("-s", "--split"), "dataset.split", "qrels split (default: train)"),
                Flag(("--mining",), "mining.method", "how hard negatives are mined",
                     choices=("bm25", "dense", "o1", "none")),
                Flag(("--negatives",), "mining.count", "hard negatives per row (default: 15)"),
                Flag(("--depth",), "mining.depth", "mine from the top DEPTH passages (default: 100)"),
                Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            ],
            example="o1e synth prepare -d ../shared/data/beir/scifact --negatives 15 -o runs/prepare",
        ),
        "run": Stage(
            "run", "write N candidate thoughts per training query (vLLM on Ray, or an OpenAI-compatible endpoint)",
            "o1e.synth.config:SynthConfig", "o1e.synth.driver:run_synth",
            [
                Flag(("-i", "--input"), "input", "training_rows dataset (folder or s3://)"),
                Flag(("-m", "--model"), "engine.model", "expert model directory (vllm) or served name (openai)"),
                Flag(("-e", "--engine"), "engine.kind", "what generates (default: vllm)",
                     choices=("vllm", "openai", "transformers")),
                Flag(("--base-url",), "engine.base_url", "OpenAI-compatible endpoint",
                     implies={"engine.kind": "openai"}),
                Flag(("--num-candidates",), "num_candidates", "thoughts per query (default: 3)"),
                Flag(("-n", "--replicas"), "engine.replicas", "engine replicas (Ray actors)"),
                Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            ],
            example="o1e synth run -i runs/prepare/training_rows -m /models/Llama-3.1-70B-Instruct -n 4 -o runs/synth",
        ),
    }),
    "train": Stage(
        "train", "jointly fine-tune a causal LM to think (generate) and embed (Ray Train + DeepSpeed)",
        "o1e.train.config:TrainConfig", "o1e.train.driver:run_train",
        [
            Flag(("-i", "--input"), "data", "the `training` dataset written by o1e vote (folder or s3://)"),
            Flag(("-m", "--model"), "model", "base causal LM folder (local or s3://)"),
            Flag(("-n", "--workers"), "num_workers", "Ray Train workers (one per GPU)"),
            Flag(("-z", "--zero"), "deepspeed.zero_stage", "DeepSpeed ZeRO stage", choices=("1", "2", "3")),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix (model/, metrics.jsonl, rejects/)"),
            Flag(("--storage",), "storage_path", "Ray Train checkpoint storage (local or s3://)"),
        ],
        example="o1e train -c train/configs/tiny_cpu.yaml -i runs/vote/training -m runs/base -o runs/train",
    ),
    "run": Stage(
        "run", "the whole pipeline: prepare, synth, vote, train, eval (each skipped when its output is current)",
        "o1e.pipeline.config:PipelineConfig", "o1e.pipeline.driver:run_pipeline",
        [Flag(("-o", "--output"), "output", "output root of every stage (local or s3://)")],
        example="o1e run -c pipeline/configs/demo.yaml train.optim.lr=1e-4 --from train",
    ),
}


def _add_stage_parser(sub, stage: Stage) -> argparse.ArgumentParser:
    p = sub.add_parser(stage.name, help=stage.help, description=stage.help,
                       epilog=f"example:\n  {stage.example}" if stage.example else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="YAML config file (local or s3://)")
    for flag in stage.flags:
        p.add_argument(*flag.names, dest=flag.key, default=None, choices=flag.choices,
                       metavar=None if flag.choices else flag.key.split(".")[-1].upper(),
                       help=f"{flag.help} [{flag.key}]")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field")
    return p


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o1e", description="O1 Embedder: synthesise, vote, train, evaluate.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {code_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES.values():
        if isinstance(stage, StageGroup):
            group = sub.add_parser(stage.name, help=stage.help, description=stage.help)
            steps = group.add_subparsers(dest="step", required=True)
            for step in stage.steps.values():
                _add_stage_parser(steps, step)
        else:
            p = _add_stage_parser(sub, stage)
            if stage.name == "run":
                p.add_argument("--from", dest="start", metavar="STAGE",
                               help="first stage to run: prepare, synth, vote, train or eval")
                p.add_argument("--until", dest="until", metavar="STAGE", help="last stage to run")
                p.add_argument("--dry-run", action="store_true",
                               help="show what would run or be skipped, and with --cluster whether it fits; start nothing")
                p.add_argument("--cluster", metavar="FILE",
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
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
    parser.add_argument("--verbose", action="store_true",
                        help="let vLLM, transformers and Ray log as they do by default (anywhere on the line)")
    return parser


def stage_config(stage: Stage, args: argparse.Namespace):
    overrides = list(args.overrides)
    implied: dict[str, str] = {}
    for flag in stage.flags:
        value = getattr(args, flag.key)
        if value is not None:
            overrides.append(f"{flag.key}={value}")
            implied.update(flag.implies)
    explicit = {o.partition("=")[0].strip() for o in overrides}
    overrides = [f"{k}={v}" for k, v in implied.items() if k not in explicit] + overrides
    return load_config(_load(stage.config), args.config, overrides)


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


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse takes one run of positionals, so ``key=value`` overrides after a flag
    (``-o out overwrite=true``) would be refused; they join the overrides wherever they stand.
    Usage errors exit 2 (argparse)."""
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if "--verbose" in argv:
        from o1e.ray_utils import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    args = parse_args(build_parser(), [a for a in argv if a not in ("--debug", "--verbose")])
    from o1e import errors

    try:
        if args.command == "demo":
            _load("o1e.pipeline.demo:run_demo")(args.output, args.overrides)
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
        stage = STAGES[args.command]
        if isinstance(stage, StageGroup):
            stage = stage.steps[args.step]
        cfg = stage_config(stage, args)
        if args.print_config:
            print(cfg.to_yaml(), end="")
            return 0
        if args.command == "run" and args.dry_run:
            problems = _load("o1e.pipeline.driver:dry_run")(cfg, args.cluster, args.start, args.until)
            return 1 if problems else 0
        if args.command == "run":
            _load(stage.runner)(cfg, start=args.start, until=args.until)
        else:
            _load(stage.runner)(cfg)
        return 0
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"o1e {args.command}: interrupted; committed shards are kept: rerun the same command to resume",
              file=sys.stderr)
        return errors.INTERRUPTED
    except Exception as err:  # noqa: BLE001 - every error a user meets becomes one line (--debug: traceback)
        if debug:
            traceback.print_exc()
        code, message = errors.describe(err)
        from o1e.ray_utils import VERBOSE_ENV, framework_logs_dir

        logs = framework_logs_dir()
        if logs and not os.environ.get(VERBOSE_ENV):  # above the error line, which stays the last
            print(f"(Ray's and its workers' own logs: {logs}; --verbose shows them here)", file=sys.stderr)
        print(f"o1e {args.command}: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
