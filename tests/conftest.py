"""Shared fixtures: a real local Ray cluster, a real S3 endpoint on loopback, the real datasets."""

from __future__ import annotations

import os
import re
import socket

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_SCIFACT = os.path.join(REPO, "..", "shared", "data", "beir", "scifact")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def scifact() -> str:
    """The full BEIR SciFact set beside the checkout (../shared); tests using it skip where it is absent."""
    if not os.path.isfile(os.path.join(SHARED_SCIFACT, "corpus.jsonl")):
        pytest.skip(f"full SciFact not found at {SHARED_SCIFACT} (../shared is absent on a user's fresh clone)")
    return os.path.abspath(SHARED_SCIFACT)


@pytest.fixture(scope="session")
def scifact_cache(tmp_path_factory) -> str:
    """One embedding cache for every full-SciFact test, so a corpus encoded once serves them all."""
    return str(tmp_path_factory.mktemp("scifact-cache"))


@pytest.fixture(scope="session")
def demo_data() -> str:
    from o1e.paths import DEMO_DATA

    return DEMO_DATA


@pytest.fixture(scope="session")
def minilm() -> str:
    from o1e.models import resolve_model_dir

    return resolve_model_dir("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray cluster (2 CPUs) for the whole session, shut down at the end.

    It starts after the S3 server, as on a real cluster whose nodes already hold the object-store
    endpoint and credentials in their environment when Ray starts."""
    import ray

    from o1e.ray_utils import RayConfig, init_ray

    init_ray(RayConfig(num_cpus=2))
    yield ray
    ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 HTTP endpoint on loopback (moto's server); sets the endpoint and dummy credentials."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in
             ("O1E_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    os.environ.update({
        "O1E_S3_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "o1e-test-secret-5f2c",  # distinctive, so tests can check it never leaks
        "AWS_REGION": "us-east-1",
    })
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture()
def s3_bucket(s3_server, request) -> str:
    """A fresh bucket on the loopback S3 server; returns its ``s3://`` URL."""
    import boto3

    name = ("o1e-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()))[:50].strip("-")
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


def upload_dir(local: str, url: str) -> None:
    """Copy a local folder to an s3:// prefix, through the project's own storage layer."""
    from o1e import storage

    for root, _, files in os.walk(local):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, local).replace(os.sep, "/")
            with open(path, "rb") as f:
                storage.write_bytes(storage.join(url, rel), f.read())


@pytest.fixture(scope="session")
def pipeline_demo(tmp_path_factory, small_beir) -> dict:
    """``o1e demo`` as a user runs it (SmolLM2-135M-Instruct, the real model), on 8 train and 8 test queries,
    killed during vote and run again: the one real-model pipeline run that the pipeline and cluster tests
    share. Returns the output root and the second run's output."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path_factory.mktemp("pipeline") / "demo"
    o1e = os.path.join(os.path.dirname(sys.executable), "o1e")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Its own home (embedding cache, vLLM cache), but DeepSpeed's compiled CPU op from the usual place.
    env.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/o1e/torch_extensions"))
    env["HOME"] = str(root.parent / "home")
    # Lighter than the documented demo, for CI time: a few queries (vote in two shards of 4), 24-token expert
    # thoughts and 16-token query-time ones, and no HyDE or MiniLM baselines (test_eval_expand and
    # test_eval_ray check those).
    overrides = [f"prepare.dataset.path={small_beir}", "synth.sampling.max_tokens=24", "vote.shard_size=4",
                 "eval.thoughts.sampling.max_tokens=16",
                 "baselines={bm25: {retriever: {kind: bm25}}, before-training: {retriever: {kind: o1, "
                 "add_special_tokens: true, query_max_tokens: 32, doc_max_tokens: 128}, thoughts: {k: [0]}}}"]
    command = [o1e, "demo", "-o", str(root), *overrides]
    started = time.time()
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    markers, record = root / "vote" / "training" / "_shards", root / "_pipeline" / "vote.json"
    deadline = time.time() + 900
    while not (markers.is_dir() and any(n.suffix == ".json" for n in markers.iterdir())):
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "vote committed no shard in time"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the driver dies during vote
    first.wait()
    killed = {"vote_shards_committed": len(list(markers.glob("*.json"))), "vote_record": record.exists(),
              "elapsed_s": time.time() - started}
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    (root.parent / "second_run.out").write_text(second.stdout + second.stderr)  # what a user saw, to read later
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return {"root": str(root), "env": env, "command": command, "overrides": overrides, "killed": killed,
            "stdout": second.stdout, "stderr": second.stderr,
            "elapsed_s": time.time() - started}


def outside_counts(url: str) -> dict[str, int]:
    """Row counts seen by DuckDB, Polars and pandas reading a local dataset folder the way other teams do."""
    import glob

    import duckdb
    import pandas as pd
    import polars as pl

    pattern = os.path.join(url, "*.parquet")
    if not glob.glob(pattern):
        return {"duckdb": 0, "polars": 0, "pandas": 0}
    return {
        "duckdb": duckdb.sql(f"select count(*) from read_parquet('{pattern}')").fetchall()[0][0],
        "polars": pl.read_parquet(pattern).height,
        "pandas": len(pd.read_parquet(url)),
    }


def eval_run_rows(n: int, start: int = 0, prefix: str = ""):
    """``n`` rows of an ``eval_run`` dataset, query ids ``<prefix><start>...``: the storage tests' sample data."""
    import pyarrow as pa

    return pa.table({"k": [0] * n, "query_id": [f"{prefix}{i}" for i in range(start, start + n)],
                     "doc_id": [f"d{i}" for i in range(start, start + n)],
                     "rank": list(range(1, n + 1)), "score": [float(i) for i in range(n)]})


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    """A storage root, once on a local disk and once in the S3 test bucket."""
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_bucket") + "/store"


@pytest.fixture(scope="session")
def small_beir(tmp_path_factory) -> str:
    """A BEIR folder cut from the bundled slice for the real-model pipeline run: its first 8 train and 8 test
    queries (qrels order), their judged documents and the corpus's first documents besides, 48 in all."""
    import csv
    import json
    import shutil

    from o1e.paths import DEMO_DATA

    root = tmp_path_factory.mktemp("small-beir")
    (root / "qrels").mkdir()
    judged: list[str] = []
    kept_queries: set[str] = set()
    for split in ("train", "test"):
        with open(os.path.join(DEMO_DATA, "qrels", f"{split}.tsv")) as f:
            rows = list(csv.reader(f, delimiter="\t"))
        header, rows = rows[0], rows[1:]
        queries = list(dict.fromkeys(r[0] for r in rows))[:8]
        kept = [r for r in rows if r[0] in queries]
        kept_queries.update(queries)
        judged += [r[1] for r in kept]
        with open(root / "qrels" / f"{split}.tsv", "w", newline="") as f:
            csv.writer(f, delimiter="\t").writerows([header, *kept])
    with open(os.path.join(DEMO_DATA, "corpus.jsonl")) as f:
        corpus = [json.loads(line) for line in f]
    keep = set(judged)
    keep.update(d["_id"] for d in corpus if d["_id"] not in keep and len(keep) < 48)
    with open(root / "corpus.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in corpus if d["_id"] in keep)
    with open(os.path.join(DEMO_DATA, "queries.jsonl")) as f, open(root / "queries.jsonl", "w") as out:
        out.writelines(line for line in f if json.loads(line)["_id"] in kept_queries)
    for name in ("README.md", "LICENSE"):  # a cut of the same data, under the same licence
        shutil.copy(os.path.join(DEMO_DATA, name), root / name)
    return str(root)
