"""Stages as command-line subcommands, built from their declarations (``o1e.stage.Stage``).

Every stage takes ``--config FILE`` (YAML, local or s3://), ``dotted.key=value`` overrides for any field, and
its short flags; ``--print-config`` shows the resolved config and exits. The ``o1e`` command
(``o1e.pipeline.cli``) holds every stage; ``python -m o1e.synth`` and the other stage packages hold their own
(the entry points of ``ray job submit``). Errors a user meets become one line (``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, Iterable

from o1e.config import load_config
from o1e.progress import Show
from o1e.provenance import code_version
from o1e.stage import Stage

GLOBAL_FLAGS = ("--debug", "--verbose")
"""Taken from anywhere on the command line, before parsing."""


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {code_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
    parser.add_argument("--verbose", action="store_true",
                        help="let vLLM, transformers and Ray log as they do by default (anywhere on the line)")
    return parser


def add_config_parser(sub, name: str, help: str, flags=(), example: str = "") -> argparse.ArgumentParser:
    """A subcommand that builds a config: ``-c FILE``, the flags, ``--print-config`` and ``key=value``."""
    p = sub.add_parser(name, help=help, description=help,
                       epilog=f"example:\n  {example}" if example else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="YAML config file (local or s3://)")
    for flag in flags:
        p.add_argument(*flag.names, dest=flag.key, default=None, choices=flag.choices,
                       metavar=None if flag.choices else flag.key.split(".")[-1].upper(),
                       help=f"{flag.help} [{flag.key}]")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field")
    return p


def add_stage_commands(sub, stages: Iterable[Stage], groups: dict[str, str]) -> None:
    """One subcommand per stage; stages sharing a first word become steps under it (``o1e synth prepare``),
    ``groups`` giving that word's help."""
    steps_of: dict[str, argparse._SubParsersAction] = {}
    for stage in stages:
        target = sub
        if len(stage.command) == 2:
            group = stage.command[0]
            if group not in steps_of:
                parser = sub.add_parser(group, help=groups[group], description=groups[group])
                steps_of[group] = parser.add_subparsers(dest="step", required=True)
            target = steps_of[group]
        add_config_parser(target, stage.command[-1], stage.help, stage.flags, stage.example)


def chosen_stage(stages: Iterable[Stage], args: argparse.Namespace) -> Stage | None:
    words = (args.command, getattr(args, "step", None))
    return next((s for s in stages if s.command == words[:len(s.command)]), None)


def config_from_args(config_class: type, flags, args: argparse.Namespace):
    """The config: the file, then each flag given (with what it implies unless set), then ``key=value``."""
    overrides = list(args.overrides)
    implied: dict[str, str] = {}
    for flag in flags:
        value = getattr(args, flag.key)
        if value is not None:
            overrides.append(f"{flag.key}={value}")
            implied.update(flag.implies)
    explicit = {o.partition("=")[0].strip() for o in overrides}
    overrides = [f"{k}={v}" for k, v in implied.items() if k not in explicit] + overrides
    return load_config(config_class, args.config, overrides)


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse takes one run of positionals, so ``key=value`` overrides after a flag
    (``-o out overwrite=true``) would be refused; they join the overrides wherever they stand.
    Usage errors exit 2 (argparse)."""
    args, extra = parser.parse_known_args([a for a in argv if a not in GLOBAL_FLAGS])
    unknown = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    args.debug = "--debug" in argv
    if "--verbose" in argv:
        from o1e.ray_utils import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    return args


def run_stage(stage: Stage, args: argparse.Namespace) -> int:
    cfg = config_from_args(stage.config, stage.flags, args)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    stage.run(cfg, Show.ALL)
    return 0


def guarded(name: str, action: Callable[[], int], debug: bool) -> int:
    """Run a command; an error becomes one line on stderr and an exit code (``o1e.errors``)."""
    from o1e import errors

    try:
        return action()
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"o1e {name}: interrupted; committed shards are kept: rerun the same command to resume", file=sys.stderr)
        return errors.INTERRUPTED
    except Exception as err:  # noqa: BLE001 - every error a user meets becomes one line (--debug: traceback)
        if debug:
            traceback.print_exc()
        code, message = errors.describe(err)
        from o1e.ray_utils import VERBOSE_ENV, framework_logs_dir

        logs = framework_logs_dir()
        if logs and not os.environ.get(VERBOSE_ENV):  # above the error line, which stays the last
            print(f"(Ray's and its workers' own logs: {logs}; --verbose shows them here)", file=sys.stderr)
        print(f"o1e {name}: {message}", file=sys.stderr)
        return code


def stage_main(stages: list[Stage], argv: list[str], groups: dict[str, str] | None = None) -> int:
    """``python -m o1e.<package> ARGS``: that package's stages as ``o1e <first word> ARGS`` runs them."""
    parser = new_parser("o1e", "; ".join(s.help for s in stages))
    add_stage_commands(parser.add_subparsers(dest="command", required=True), stages, groups or {})
    args = parse_args(parser, [stages[0].command[0], *argv])
    stage = chosen_stage(stages, args)
    return guarded(args.command, lambda: run_stage(stage, args), args.debug)
