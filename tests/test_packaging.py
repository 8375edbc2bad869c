"""What ``pip install`` puts in site-packages: one package, ``o1e``, with every stage under it, its configs and
the bundled data; a stage runs from the installed wheel with no checkout on the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synth", "committee", "train", "eval", "pipeline")


def test_the_wheel_installs_one_package_and_a_stage_runs_from_it(tmp_path):
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("o1e", *STAGES):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("o1e-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"o1e"}
    for path in ("o1e/train/step.py", "o1e/pipeline/configs/demo.yaml", "o1e/train/configs/ds_zero1.json",
                 "o1e/eval/configs/scifact_bm25.yaml", "o1e/data/scifact-mini/corpus.jsonl"):
        assert path in names, path

    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("RAY_ADDRESS", None)
    probe = subprocess.run([sys.executable, "-c", (
        "import importlib.util, o1e, o1e.train.step, o1e.pipeline.demo as d, os\n"
        "print(o1e.__file__); print(o1e.train.step.__file__); print(os.path.isfile(d.CONFIG))\n"
        "print([s for s in ('synth', 'committee', 'train', 'eval', 'pipeline') if importlib.util.find_spec(s)])")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    init, step, config_found, top_level = probe.stdout.strip().splitlines()
    assert init.startswith(str(site)) and step.startswith(str(site)) and config_found == "True"
    assert top_level == "[]"  # no generic top-level package
    # A stage from the wheel: BM25 on the bundled data, as `python -m o1e.eval` in a Ray job would run it.
    out = tmp_path / "bm25"
    run = subprocess.run([sys.executable, "-m", "o1e.eval", "-r", "bm25", "-k", "100", "-o", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert (out / "summary.json").is_file()
