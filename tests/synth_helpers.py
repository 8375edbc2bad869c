"""Shared pieces of the synth tests: vLLM-on-CPU environment, tiny training rows, /dev/shm hygiene."""

from __future__ import annotations

import contextlib
import glob
import os
from typing import Iterator

import pyarrow as pa
import pytest

VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

MAX_MODEL_LEN = 1024
MAX_TOKENS = 24


@contextlib.contextmanager
def vllm_env(tmp_dir: str) -> Iterator[dict[str, str]]:
    """The environment vLLM needs on this machine, with temp and cache dirs the test owns, set for the block
    (the Ray engine forwards it to its replicas) and undone after it, so that a Ray cluster started later in
    the session does not put its sockets under ``tmp_dir`` (beyond the 107-byte AF_UNIX path limit)."""
    os.makedirs(os.path.join(tmp_dir, "tmp"), exist_ok=True)
    env = dict(VLLM_ENV, TMPDIR=os.path.join(tmp_dir, "tmp"), VLLM_CACHE_ROOT=os.path.join(tmp_dir, "vllm-cache"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


def shm_segments() -> set[str]:
    return set(glob.glob("/dev/shm/psm_*"))


def _mapped_segments() -> set[str]:
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as f:
                mapped.update(line.split()[-1] for line in f if "/dev/shm/psm_" in line)
        except OSError:
            continue
    return mapped


def remove_leaked_segments(before: set[str]) -> list[str]:
    """Remove psm_* segments created since ``before`` that no live process maps (left by killed engines)."""
    leaked = sorted(shm_segments() - before - _mapped_segments())
    for path in leaked:
        try:
            os.unlink(path)
        except OSError:
            pass
    return leaked


def training_rows(num_good: int = 12, passage_chars: int = 160, bad: bool = True) -> pa.Table:
    """Real SciFact queries and gold passages (bundled slice, cut short so prompts stay small), followed by
    one row of each bad kind when ``bad``: empty query, no positive, a query too long for the model, and a
    repeated query id."""
    from o1e import beir
    from o1e.paths import DEMO_DATA

    data = beir.load(DEMO_DATA, "train")
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    rows = []
    for query_id, judged in list(data.qrels.items())[:num_good]:
        gold = [d for d, s in judged.items() if s > 0]
        rows.append({"query_id": query_id, "query": data.queries[query_id], "positive_ids": gold,
                     "positives": [passages[d][:passage_chars] for d in gold], "negative_ids": [], "negatives": []})
    if bad:
        first = rows[0]
        rows[4:4] = [
            {**first, "query_id": "bad-empty", "query": "   "},
            {**first, "query_id": "bad-nopos", "positive_ids": [], "positives": []},
            {**first, "query_id": "bad-long", "query": " ".join(["protein"] * (MAX_MODEL_LEN + 50))},
            {**first, "query": "a second row under an id already used"},
        ]
    return pa.Table.from_pylist(rows)


BAD_REASONS = {"bad-empty": "empty_query", "bad-nopos": "missing_positive", "bad-long": "query_too_long"}
