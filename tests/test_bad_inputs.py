"""Every bad input of ``tests/bad_inputs.py`` through the real ``o1e`` command: the exit code, and one
line saying what is wrong and what to do (never a traceback)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from bad_inputs import CASES, run, seen_line


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, s3_server, tmp_path):
    code, out, err = run(case.argv(str(tmp_path)), case.env)
    line = seen_line(code, out, err, case.message)
    assert (code, bool(re.search(case.message, line))) == (case.code, True), (line, out[-2000:], err[-2000:])
    assert "Traceback" not in err
    if code and not line.startswith("BAD "):
        assert len([x for x in err.splitlines() if x.startswith("o1e")]) == 1


def test_debug_shows_the_traceback(tmp_path):
    code, _, err = run(["eval", "-d", "/nowhere", "-o", str(tmp_path), "--debug"])
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("o1e eval: error: dataset")


def test_ctrl_c_is_exit_130_with_one_line(tmp_path, minilm):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(f'{{"query": "question {i}", "pos": ["passage number {i}"]}}\n' for i in range(20_000)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "o1e.pipeline.cli", "synth", "prepare", "-d", str(rows), "--mining", "dense",
                             f"mining.dense.model={minilm}", "-o", str(tmp_path / "out")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    seen = ""
    deadline = time.time() + 120
    while "encode corpus" not in seen and time.time() < deadline:  # the work has started
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, seen + rest
    # the line may follow a progress bar's last redraw on the same terminal line
    assert re.findall(r"o1e .*", seen + rest) == [
        "o1e synth: interrupted; committed shards are kept: rerun the same command to resume"]
    assert "Traceback" not in rest
