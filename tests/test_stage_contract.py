"""The stage contract: each stage declares itself once (``o1e.stage.Stage``), the registry lists them, and the
command line, the pipeline's chaining and its plan are derived from it; the packages keep their layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from o1e.config import StageConfig, load_config
from o1e.pipeline.cli import build_parser
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.plan import build_steps
from o1e.pipeline.stages import ORDER, STAGES
from o1e.stage import get_dotted

ROOT = Path(__file__).resolve().parents[1]
STAGE_PACKAGES = ("synth", "committee", "train", "eval")


def _imported_o1e_packages(folder: Path) -> set[str]:
    """The ``o1e.<name>`` packages the modules of a folder import (``o1e.x.y`` counts as ``o1e.x``)."""
    found = set()
    for path in folder.glob("**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found |= {n.split(".")[1] for n in names if n.startswith("o1e.") and n.count(".") >= 1}
    return found


def test_the_stages_never_import_each_other_and_the_shared_package_no_stage():
    for package in STAGE_PACKAGES:
        others = (set(STAGE_PACKAGES) | {"pipeline"}) - {package}
        assert not _imported_o1e_packages(ROOT / package) & others, package
    assert not _imported_o1e_packages(ROOT / "o1e") & {*STAGE_PACKAGES, "pipeline"}


def test_every_stage_declares_what_the_pipeline_and_the_command_need():
    commands = build_parser()._subparsers._group_actions[0].choices
    for position, (name, stage) in enumerate(STAGES.items()):
        assert stage.name == name and issubclass(stage.config, StageConfig)
        parser = commands[stage.command[0]]
        if len(stage.command) == 2:
            parser = parser._subparsers._group_actions[0].choices[stage.command[1]]
        dests = {a.dest for a in parser._actions}
        assert {f.key for f in stage.flags} <= dests, name
        config = stage.config()
        for key in stage.path_keys:
            assert key.split(".")[0] in stage.config.model_fields, (name, key)
        for read in stage.inputs:  # read from an earlier stage's declared output
            assert ORDER.index(read.stage) < position and STAGES[read.stage].output == read.name, (name, read)
        assert isinstance(stage.requests(config, _one_node()), list)


def _one_node():
    from o1e.placement import Cluster, NodeType

    return Cluster((NodeType("node", 8, 1, 1),))


def test_the_pipeline_chains_each_declared_input_to_its_producer(tmp_path):
    cfg = load_config(PipelineConfig, None, [f"output={tmp_path}", "train.model=/m/base"])
    steps = {s.name: s for s in build_steps(cfg)}
    for name, stage in STAGES.items():
        config = cfg.stage(name)
        assert config.output == str(tmp_path / name)
        for read in stage.inputs:
            assert get_dotted(config, read.key) == str(tmp_path / read.stage / read.name)
            assert read.stage in steps[name].deps
    # An input that does not apply is not chained: a BM25 evaluation reads no trained model.
    bm25 = load_config(PipelineConfig, None, [f"output={tmp_path}", "eval.retriever.kind=bm25"])
    assert "train" not in {s.name: s for s in build_steps(bm25)}["eval"].deps


def test_each_stage_package_runs_as_a_module_as_the_o1e_command_does():
    for module, args, line in (("o1e.synth", ["prepare", "--negatives", "7"], "\n  count: 7\n"),
                               ("o1e.committee", ["-v", "hard"], "\nvote: hard\n"),
                               ("o1e.train", ["-n", "3"], "\nnum_workers: 3\n"),
                               ("o1e.eval", ["-r", "bm25"], "\n  kind: bm25\n")):
        proc = subprocess.run([sys.executable, "-m", module, *args, "--print-config"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert line in proc.stdout, (module, proc.stdout[:500])
    bad = subprocess.run([sys.executable, "-m", "o1e.train", "optim.lr=-1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and bad.stderr.startswith("o1e train: ") and "optim.lr" in bad.stderr
