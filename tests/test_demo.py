"""The README's main job: `o1e demo` on the bundled data, as a user runs it."""

import json
import os
import subprocess
import sys

O1E = os.path.join(os.path.dirname(sys.executable), "o1e")


def test_demo_runs_end_to_end(tmp_path):
    command = [O1E] if os.path.exists(O1E) else [sys.executable, "-m", "o1e.cli"]
    proc = subprocess.run(command + ["demo", "-o", str(tmp_path / "demo")], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, HOME=str(tmp_path)))  # own embedding cache
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "demo summary" in proc.stdout
    for retriever in ("bm25", "dense"):
        metrics = json.load(open(tmp_path / "demo" / retriever / "metrics.json"))
        assert metrics["num_queries"] == 100
        assert metrics["ndcg@10"] > 0.8, (retriever, metrics["ndcg@10"])
