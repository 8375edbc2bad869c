"""The ``o1e`` command: one subcommand per stage.

Every stage takes ``--config FILE`` (YAML, local or s3://), ``dotted.key=value`` overrides for any
field, and short flags for the common fields. ``--print-config`` shows the resolved config and exits.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from dataclasses import dataclass, field

from o1e.config import load_config


@dataclass
class Flag:
    names: tuple[str, ...]
    key: str
    help: str
    implies: dict[str, str] = field(default_factory=dict)
    """Overrides this flag adds unless the command line sets those keys itself."""


@dataclass
class Stage:
    name: str
    help: str
    config: str  # "module:Class"
    runner: str  # "module:function"
    flags: list[Flag]


@dataclass
class StageGroup:
    """A stage with several steps, each its own subcommand (``o1e synth prepare``, ``o1e synth run``)."""

    name: str
    help: str
    steps: dict[str, Stage]


STAGES: dict[str, Stage | StageGroup] = {
    "eval": Stage(
        "eval", "evaluate a retriever on a BEIR-format dataset (nDCG@10, MRR@10, Recall@100/1000)",
        "eval.config:EvalConfig", "eval.driver:run_eval",
        [
            Flag(("-d", "--dataset"), "dataset.path", "BEIR folder or s3:// prefix (default: bundled demo data)"),
            Flag(("-s", "--split"), "dataset.split", "qrels split (default: test)"),
            Flag(("-r", "--retriever"), "retriever.kind", "bm25, dense, o1 (a model saved by o1e train) or expand"),
            Flag(("-m", "--model"), "retriever.model", "model folder, s3:// prefix or packaged name",
                 implies={"retriever.kind": "dense"}),
            Flag(("-n", "--shards"), "shards", "Ray actors encoding and searching the corpus"),
            Flag(("-k", "--top-k"), "top_k", "documents retrieved per query (default: 1000)"),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            Flag(("--cache-dir",), "cache_dir", "embedding cache (local or s3://; 'null' disables)"),
        ],
    ),
    "vote": Stage(
        "vote", "let the retrieval committee score every candidate thought against its gold document and vote",
        "committee.config:CommitteeConfig", "committee.driver:run_committee",
        [
            Flag(("-t", "--training-rows"), "training_rows", "training_rows dataset (folder or s3:// prefix)"),
            Flag(("-i", "--candidates"), "candidates", "candidates dataset written by o1e synth"),
            Flag(("-v", "--vote"), "vote", "soft (default), hard or median"),
            Flag(("-b", "--batch-size"), "batch_size", "queries per scoring call of a member"),
            Flag(("-s", "--shard-size"), "shard_size", "queries per committed shard (the unit of resume)"),
            Flag(("-e", "--executor"), "executor", "ray (member actor pools) or local (one process)"),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
        ],
    ),
    "synth": StageGroup("synth", "synthesise candidate thoughts with an expert LLM", {
        "prepare": Stage(
            "prepare", "training rows (query, positives, hard negatives) from a BEIR train split or JSONL rows",
            "synth.config:PrepareConfig", "synth.prepare:run_prepare",
            [
                Flag(("-d", "--dataset"), "dataset.path", "BEIR folder, JSONL rows file, or s3:// (default: bundled demo)"),
                Flag(("-s", "--split"), "dataset.split", "qrels split (default: train)"),
                Flag(("-m", "--mining"), "mining.method", "hard negatives by bm25, dense, o1 or none"),
                Flag(("-k", "--negatives"), "mining.count", "hard negatives per row (default: 15)"),
                Flag(("--depth",), "mining.depth", "mine from the top DEPTH passages (default: 100)"),
                Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            ],
        ),
        "run": Stage(
            "run", "write N candidate thoughts per training query (vLLM on Ray, or an OpenAI-compatible endpoint)",
            "synth.config:SynthConfig", "synth.driver:run_synth",
            [
                Flag(("-i", "--input"), "input", "training_rows dataset (folder or s3://)"),
                Flag(("-m", "--model"), "engine.model", "expert model directory (vllm) or served name (openai)"),
                Flag(("-e", "--engine"), "engine.kind", "vllm or openai"),
                Flag(("--base-url",), "engine.base_url", "OpenAI-compatible endpoint",
                     implies={"engine.kind": "openai"}),
                Flag(("-n", "--candidates"), "num_candidates", "thoughts per query (default: 3)"),
                Flag(("-r", "--replicas"), "engine.replicas", "vLLM replicas (Ray actors)"),
                Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            ],
        ),
    }),
    "train": Stage(
        "train", "jointly fine-tune a causal LM to think (generate) and embed (Ray Train + DeepSpeed)",
        "train.config:TrainConfig", "train.driver:run_train",
        [
            Flag(("-d", "--data"), "data", "the `training` dataset (folder or s3:// prefix)"),
            Flag(("-m", "--model"), "model", "base causal LM folder (local or s3://)"),
            Flag(("-w", "--workers"), "num_workers", "Ray Train workers (one per GPU)"),
            Flag(("-z", "--zero"), "deepspeed.zero_stage", "DeepSpeed ZeRO stage: 1, 2 or 3"),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix (model/, metrics.jsonl, rejects/)"),
            Flag(("--storage",), "storage_path", "Ray Train checkpoint storage (local or s3://)"),
        ],
    ),
}


def _add_stage_parser(sub, stage: Stage) -> None:
    p = sub.add_parser(stage.name, help=stage.help, description=stage.help)
    p.add_argument("-c", "--config", help="YAML config file (local or s3://)")
    for flag in stage.flags:
        p.add_argument(*flag.names, dest=flag.key, default=None, metavar=flag.key.split(".")[-1].upper(),
                       help=f"{flag.help} [{flag.key}]")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field")


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o1e", description="O1 Embedder: synthesise, vote, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES.values():
        if isinstance(stage, StageGroup):
            group = sub.add_parser(stage.name, help=stage.help, description=stage.help)
            steps = group.add_subparsers(dest="step", required=True)
            for step in stage.steps.values():
                _add_stage_parser(steps, step)
        else:
            _add_stage_parser(sub, stage)
    demo = sub.add_parser("demo", help="the main job on the embedded local default: bundled data, local Ray")
    demo.add_argument("-o", "--output", default="outputs/demo")
    verify = sub.add_parser("verify", help="check datasets against their manifests (rows, sizes, checksums)",
                            description="Check every dataset at or under each PATH (a dataset folder or a stage's "
                                        "output) against its manifest; exit 1 when anything is wrong.")
    verify.add_argument("paths", nargs="+", metavar="PATH", help="dataset folder, stage output, or s3:// prefix")
    verify.add_argument("--no-checksum", action="store_true", help="check rows and sizes only (no full read)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])  # usage errors: argparse exits 2
    from o1e import errors

    try:
        if args.command == "demo":
            from o1e.demo import run_demo

            run_demo(args.output)
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
        print(f"o1e {args.command}: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
