"""The ``o1e`` command: one subcommand per stage.

Every stage takes ``--config FILE`` (YAML, local or s3://), ``dotted.key=value`` overrides for any
field, and short flags for the common fields. ``--print-config`` shows the resolved config and exits.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, field

from o1e.config import ConfigError, load_config


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


STAGES = {
    "eval": Stage(
        "eval", "evaluate a retriever on a BEIR-format dataset (nDCG@10, MRR@10, Recall@100/1000)",
        "eval.config:EvalConfig", "eval.driver:run_eval",
        [
            Flag(("-d", "--dataset"), "dataset.path", "BEIR folder or s3:// prefix (default: bundled demo data)"),
            Flag(("-s", "--split"), "dataset.split", "qrels split (default: test)"),
            Flag(("-r", "--retriever"), "retriever.kind", "bm25 or dense"),
            Flag(("-m", "--model"), "retriever.model", "dense model folder, s3:// prefix or packaged name",
                 implies={"retriever.kind": "dense"}),
            Flag(("-n", "--shards"), "shards", "Ray actors encoding and searching the corpus"),
            Flag(("-k", "--top-k"), "top_k", "documents retrieved per query (default: 1000)"),
            Flag(("-o", "--output"), "output", "output folder or s3:// prefix"),
            Flag(("--cache-dir",), "cache_dir", "embedding cache (local or s3://; 'null' disables)"),
        ],
    ),
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


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o1e", description="O1 Embedder: synthesise, vote, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES.values():
        p = sub.add_parser(stage.name, help=stage.help, description=stage.help)
        p.add_argument("-c", "--config", help="YAML config file (local or s3://)")
        for flag in stage.flags:
            p.add_argument(*flag.names, dest=flag.key, default=None, metavar=flag.key.split(".")[-1].upper(),
                           help=f"{flag.help} [{flag.key}]")
        p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field")
    demo = sub.add_parser("demo", help="the main job on the embedded local default: bundled data, local Ray")
    demo.add_argument("-o", "--output", default="outputs/demo")
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
    args = build_parser().parse_args(argv)
    # Errors a user can fix (config, data, paths) are one clear line, not a traceback.
    from o1e.beir import DatasetError
    from o1e.storage import StorageError

    try:
        if args.command == "demo":
            from o1e.demo import run_demo

            run_demo(args.output)
            return 0
        stage = STAGES[args.command]
        cfg = stage_config(stage, args)
        if args.print_config:
            print(cfg.to_yaml(), end="")
            return 0
        _load(stage.runner)(cfg)
        return 0
    except ConfigError as err:
        print(f"o1e {args.command}: {err}", file=sys.stderr)
        return 2
    except (DatasetError, StorageError, FileNotFoundError) as err:
        print(f"o1e {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
