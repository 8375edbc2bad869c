"""``bench/gpu_check.py`` (the device check a bare GPU machine runs) at toy sizes on the CPU, so it cannot
rot; and the move of a whole training batch to the model's device, which its GPU run relies on."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

from o1e.train import data as train_data

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_small_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--small",
                          "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    print("\n" + run.stdout)
    assert [line.split(":")[0] for line in lines] == [
        "device", "model", "train single pass", "train two pass", "single pass against two passes",
        "document encoding", "thought generation (transformers generate, 2 queries x 3, up to 8 tokens)",
        "gpu_check"]
    figures = json.loads(out.read_text())
    for label in ("single_pass", "two_pass"):
        f = figures[label]
        assert len(f["losses"]) == figures["steps"] + 1
        assert all(math.isfinite(v) for step in f["losses"] for v in step.values())
        assert f["step_s"] > 0 and f["tokens_per_s"] > 0 and f["peak_gib"] is None  # no CUDA memory on a CPU
        assert f["query_tokens"] == 2 * 32  # the thought fills the query side to its 32 tokens
    assert figures["encode"]["docs_per_s"] > 0 and figures["generate"]["thoughts"] == 6


def test_training_batch_moves_every_tensor():
    """Inputs, labels, passage keys, positive keys and teacher scores all go where the model is."""
    from transformers import AutoTokenizer

    from o1e.models import resolve_model_dir
    from o1e.sequences import SequenceConfig, add_special_tokens
    from o1e.train.tiny import scifact_training_table

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir("all-MiniLM-L6-v2"))
    tokenizer.eos_token = tokenizer.sep_token
    add_special_tokens(tokenizer)
    rows = scifact_training_table(num_queries=3).to_pylist()
    for row in rows:
        row["teacher_scores"] = [1.0] * (len(row["positives"]) + len(row["negatives"]))
    batch = train_data.collate(rows, tokenizer, SequenceConfig(), 4, random.Random(0))
    moved = batch.to("meta")
    tensors = [*moved.query.values(), *moved.docs.values(), moved.doc_keys, moved.positive_keys, moved.teacher]
    assert len(tensors) == 8 and all(t.device.type == "meta" for t in tensors)
    assert batch.doc_keys.device.type == "cpu" and moved.group_size == batch.group_size == 4
    assert moved.num_queries == 3 and moved.stats == batch.stats
