"""The docs cannot drift from the code: every ``o1e`` command line they show parses (its subcommand, flags and
``key=value`` overrides exist), every flag table row names a flag that sets that key, and every dotted config
key they name in code exists in a stage's config model."""

from __future__ import annotations

import importlib
import re
import shlex
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from o1e.pipeline.cli import build_parser
from o1e.pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "clusters" / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
FILE_SUFFIX = re.compile(r"\.(py|json|jsonl|yaml|yml|md|parquet|tsv|txt|trec|gguf|toml|sh|html|png|csv)$")
STAGE_FOLDERS = {"synth", "committee", "train", "eval", "pipeline"}
NOT_CONFIG_KEYS = {"dotted.key", "throughput.driver_peak_rss_mb"}
"""Dotted names in the docs' code spans that are not config keys: a placeholder and a summary field."""
DOTTED = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+(?:=[^\s`]*)?")


def _subparsers(parser) -> dict[str, typing.Any]:
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return dict(actions[0].choices) if actions else {}


PARSER = build_parser()
COMMANDS = _subparsers(PARSER)


def _config_class(path: list[str]):
    if path[0] in ("demo", "run"):
        from o1e.pipeline.config import PipelineConfig

        return PipelineConfig
    return next((s.config for s in STAGES.values() if s.command == tuple(path)), None)


def _models(annotation) -> list[type[BaseModel]]:
    """The config sections a field's annotation can hold (unions, optionals, Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def resolves(cls: type[BaseModel], keys: list[str]) -> bool:
    """Whether ``a.b.c`` names a field of ``cls`` (through sections, section unions and named maps)."""
    field = cls.model_fields.get(keys[0])
    if field is None:
        return False
    rest = keys[1:]
    if not rest:
        return True
    annotation = field.annotation
    if typing.get_origin(annotation) is dict:  # a map of named sections (baselines, ablations)
        value = typing.get_args(annotation)[1]
        rest = rest[1:]
        if not rest:
            return True
        return any(resolves(m, rest) for m in _models(value))
    return any(resolves(m, rest) for m in _models(annotation))


def stage_configs() -> list[type[BaseModel]]:
    from o1e.pipeline.config import PipelineConfig

    return [s.config for s in STAGES.values()] + [PipelineConfig]


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every ``o1e`` command in a code block or a code span."""
    found = []
    for block in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S):
        start = text[: block.start(1)].count("\n") + 1
        lines = block.group(1).split("\n")
        joined, first = "", None
        for offset, line in enumerate(lines):
            first = start + offset if first is None else first
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            joined += line
            match = re.search(r"(?:^|[\s/&;])o1e (\S.*)$", joined.split(" #")[0].rstrip())
            if match:
                found.append((first, "o1e " + match.group(1)))
            joined, first = "", None
    for span in re.finditer(r"`(o1e [^`]+)`", text):
        found.append((text[: span.start()].count("\n") + 1, span.group(1)))
    return found


def problems_of_command(command: str) -> list[str]:
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    path = [tokens[1]] if len(tokens) > 1 else []
    if not path or path[0].endswith(":") or path[0] not in COMMANDS and not re.fullmatch(r"[a-z]+", path[0]):
        return []  # an error message or prose quoting the program name
    if path[0] not in COMMANDS:
        return [f"no subcommand {path[0]!r}"]
    parser = COMMANDS[path[0]]
    rest = tokens[2:]
    steps = _subparsers(parser)
    if steps:
        if not rest or rest[0] not in steps:
            return [] if not rest else [f"no step {rest[0]!r} of o1e {path[0]}"]
        path.append(rest[0])
        parser, rest = steps[rest[0]], rest[1:]
    options = {s for action in parser._actions for s in action.option_strings} | {"--debug"}
    config = _config_class(path)
    problems = []
    for token in rest:
        token = token.strip("[]")
        if token.startswith("-") and len(token) > 1:
            name = token.split("=")[0]
            if name not in options:
                problems.append(f"o1e {' '.join(path)} has no flag {name}")
        elif config is not None and re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*=.*", token):
            key = token.partition("=")[0]
            if not resolves(config, key.split(".")):
                problems.append(f"o1e {' '.join(path)}: {config.__name__} has no key {key}")
    return problems


def is_module_path(dotted: str) -> bool:
    """Whether ``dotted`` names an importable module (or something in one) as users import it: the stages
    install as ``o1e.<stage>``, so their bare folder names do not count."""
    parts = dotted.split(".")
    if parts[0] in STAGE_FOLDERS:
        return False
    for cut in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:cut]))
            return True
        except ImportError:
            continue
    return False


def drift(text: str) -> list[str]:
    problems = [f"line {line}: {command}: {p}" for line, command in command_lines(text)
                for p in problems_of_command(command)]
    # Flag tables: | `-x/--long` | `key` | ... : that flag of some subcommand sets that key.
    for row in re.finditer(r"^\| `(-[^`]+)` \| `([^`]+)` \|", text, re.M):
        names, key = row.group(1).split("/"), row.group(2)
        sets = [action for sub in [*COMMANDS.values(), *[s for c in COMMANDS.values() for s in _subparsers(c).values()]]
                for action in sub._actions if set(names) <= set(action.option_strings) and action.dest == key]
        if not sets:
            problems.append(f"line {text[: row.start()].count(chr(10)) + 1}: no flag {row.group(1)} sets {key}")
    # Dotted config keys named in code spans (``loss.mask_shared_positives``, ``sequence.two_emb=true``).
    configs = stage_configs()
    for span in re.finditer(r"`([^`\s]+)`", text):
        value = span.group(1)
        if not DOTTED.fullmatch(value) or FILE_SUFFIX.search(value.partition("=")[0]):
            continue
        key = value.partition("=")[0].split(".")
        if ".".join(key) in NOT_CONFIG_KEYS or any(resolves(c, key) for c in configs) or is_module_path(".".join(key)):
            continue
        problems.append(f"line {text[: span.start()].count(chr(10)) + 1}: `{value}` is no config key")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_only_flags_and_keys_that_exist(doc):
    assert drift(doc.read_text()) == []


def test_drift_is_caught():
    """Today's wrong spellings (the README once documented each) are reported; the right ones are not."""
    wrong = """
```bash
o1e train --data DATA --model BASE --workers 2
o1e synth run -i rows -n 2 --candidates 3 sampling.temprature=0.6
```
| `-k/--negatives` | `mining.count` | hard negatives |
Set `loss.mask_shared_positivez=false`.
"""
    assert drift(wrong) == [
        "line 3: o1e train --data DATA --model BASE --workers 2: o1e train has no flag --data",
        "line 4: o1e synth run -i rows -n 2 --candidates 3 sampling.temprature=0.6: o1e synth run has no flag "
        "--candidates",
        "line 4: o1e synth run -i rows -n 2 --candidates 3 sampling.temprature=0.6: o1e synth run: SynthConfig "
        "has no key sampling.temprature",
        "line 6: no flag -k/--negatives sets mining.count",
        "line 7: `loss.mask_shared_positivez=false` is no config key",
    ]
    right = """
```bash
o1e train -i DATA -m BASE -n 2 loss.mask_shared_positives=false
o1e synth prepare --negatives 15 mining.depth=100
o1e run -c pipeline/configs/demo.yaml train.optim.lr=1e-4 "baselines.bm25.top_k=100" --from train
```
| `-n/--workers` | `num_workers` | Ray Train workers |
See `o1e.train.step.step_losses` and `retriever.doc_max_tokens`.
"""
    assert drift(right) == []


def test_the_docs_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: every page in the nav, every link between pages resolves."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "train" / "index.html").is_file()


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    linked = set(re.findall(r"\(docs/([\w-]+\.md)", text))
    assert linked == {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
