"""Object-storage faults through a fault-injecting proxy in front of the loopback S3 server: transient
faults (503 SlowDown, 500, dropped connections, delays) are retried and change nothing; a server gone
mid-run fails the stage with one line, and a rerun completes without duplicates. Stages covered here:
prepare, the committee, eval and synth run; train's S3 run goes through the proxy in test_train_e2e."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from bad_inputs import run
from conftest import eval_run_rows as rows, upload_dir
from faulty_s3 import FaultyProxy
from o1e import storage
from o1e.config import load_config


@pytest.fixture()
def upstream_port(s3_server) -> int:
    return int(s3_server.rsplit(":", 1)[1])


def test_datasets_written_and_read_through_transient_faults(s3_bucket, upstream_port, monkeypatch):
    # 20% of requests fail: with 8 attempts a request fails for good with odds 0.2**8 (about 3e-6)
    with FaultyProxy(upstream_port, fault_rate=0.2, seed=1) as proxy:
        monkeypatch.setenv("O1E_S3_ENDPOINT", proxy.url)
        url = s3_bucket + "/faulty/ds"
        writer = storage.DatasetWriter(url, "eval_run", config_fingerprint="fp")
        for shard in range(6):
            writer.commit_shard(f"{shard:05d}", rows(50, 50 * shard))
        writer.finalize()
        back = storage.read_table(url, checksum=True)
        problems = storage.verify_dataset(url)
    assert back.column("query_id").to_pylist() == [str(i) for i in range(300)] and problems == []
    assert min(proxy.counts[f] for f in ("slow_down", "internal", "drop", "delay")) > 0, proxy.counts


def prepare_rows(tmp_path, bucket: str) -> str:
    lines = "".join(json.dumps({"query_id": f"q{i}", "query": f"question {i}", "pos": [f"passage {i}"],
                                "neg": [f"other {i}"]}) + "\n" for i in range(400))
    (tmp_path / "rows.jsonl").write_text(lines)
    storage.write_bytes(f"{bucket}/in/rows.jsonl", lines.encode())
    return f"{bucket}/in/rows.jsonl"


def test_stages_on_s3_through_faults_equal_a_clean_run(s3_bucket, upstream_port, monkeypatch, demo_data, tmp_path):
    from o1e.committee.oracle import write_oracle_inputs

    source = prepare_rows(tmp_path, s3_bucket)
    upload_dir(demo_data, f"{s3_bucket}/beir")
    write_oracle_inputs(demo_data, f"{s3_bucket}/oracle")  # training rows + candidates for the committee
    prepare = ["synth", "prepare", "-d", source, "--mining", "none", "shard_rows=50"]
    vote = ["vote", "-t", f"{s3_bucket}/oracle/training_rows", "-i", f"{s3_bucket}/oracle/candidates",
            "--executor", "local", "--shard-size", "20", "members=[{kind: bm25}]", "progress=false"]
    evaluate = ["eval", "-d", f"{s3_bucket}/beir", "-k", "10"]
    for command, name in ((prepare, "prep"), (vote, "vote"), (evaluate, "eval")):
        assert run(command + ["-o", f"{s3_bucket}/clean/{name}"])[0] == 0
    with FaultyProxy(upstream_port, fault_rate=0.15, delay_s=0.1, seed=2) as proxy:
        monkeypatch.setenv("O1E_S3_ENDPOINT", proxy.url)
        for command, name in ((prepare, "prep"), (vote, "vote"), (evaluate, "eval")):
            assert run(command + ["-o", f"{s3_bucket}/faulty/{name}"])[0] == 0
    monkeypatch.undo()
    monkeypatch.setenv("O1E_S3_ENDPOINT", f"http://127.0.0.1:{upstream_port}")
    assert min(proxy.counts[f] for f in ("slow_down", "internal", "drop", "delay")) > 2, proxy.counts
    for a, b in [("clean/prep/training_rows", "faulty/prep/training_rows"), ("clean/eval/run", "faulty/eval/run"),
                 ("clean/vote/training", "faulty/vote/training")]:
        assert storage.read_table(f"{s3_bucket}/{a}").equals(storage.read_table(f"{s3_bucket}/{b}"))
    clean = storage.read_json(f"{s3_bucket}/clean/eval/metrics.json")
    faulty = storage.read_json(f"{s3_bucket}/faulty/eval/metrics.json")
    assert clean["ndcg@10"] == faulty["ndcg@10"]


def test_server_gone_mid_run_fails_with_one_line_and_a_rerun_completes(s3_bucket, upstream_port, monkeypatch,
                                                                         tmp_path):
    source = prepare_rows(tmp_path, s3_bucket)
    out = f"{s3_bucket}/gone/prep"
    argv = ["synth", "prepare", "-d", source, "--mining", "none", "shard_rows=50", "-o", out]
    with FaultyProxy(upstream_port, fault_rate=0.0) as counting:
        monkeypatch.setenv("O1E_S3_ENDPOINT", counting.url)
        assert run(argv[:-1] + [f"{s3_bucket}/counted/prep"])[0] == 0
    requests = sum(counting.counts.values())
    # 3 attempts a request, not 8: the same failure after 3 s of back-off instead of 45 s.
    monkeypatch.setenv("O1E_S3_MAX_ATTEMPTS", "3")
    with FaultyProxy(upstream_port, fault_rate=0.0, down_after=requests // 2) as proxy:
        monkeypatch.setenv("O1E_S3_ENDPOINT", proxy.url)
        code, _, err = run(argv)
        assert code == 1, err
        lines = [x for x in err.splitlines() if x.startswith("o1e ")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "the object store failed after retries" in lines[0] and "rerun the same command" in lines[0]
        proxy.up()
        assert not storage.is_dataset(out + "/training_rows")  # nothing half-committed
        assert run(argv)[0] == 0
        ids = storage.read_table(out + "/training_rows").column("query_id").to_pylist()
        assert storage.verify_dataset(out + "/training_rows") == []
    assert ids == [f"q{i}" for i in range(400)]  # none lost, none twice
    print(f"\nserver gone after {requests // 2} of {requests} requests: {lines[0]}\ncounts: {proxy.counts}")


def test_synth_run_on_s3_through_faults_and_a_server_gone_mid_run(s3_bucket, upstream_port, monkeypatch, ray_cluster,
                                                                  tmp_path):
    """``synth run`` (the transformers engine, a tiny random chat model) reading its rows from and writing its
    candidates to S3: a clean run, one through transient faults, and one whose server goes away half-way
    and is rerun. One engine serves the four runs, as a long-lived service would."""
    from o1e.errors import describe
    from o1e.llm.ray_engine import RayEngine
    from o1e.synth.config import SynthConfig
    from o1e.synth.driver import run_synth
    from o1e.synth.prompts import ExplorationPrompts
    from o1e.synth.tiny import make_tiny_chat_model
    from synth_helpers import training_rows

    rows = f"{s3_bucket}/synth/rows"
    table = training_rows(num_good=4, passage_chars=80)  # 4 good rows and the bad ones but the long query
    storage.write_table(rows, table.filter(pc.not_equal(table["query_id"], "bad-long")), "training_rows")
    model = make_tiny_chat_model(str(tmp_path / "model"), hidden=64, max_positions=1024)

    def config(output: str) -> SynthConfig:
        return load_config(SynthConfig, None, [
            f"input={rows}", f"output={s3_bucket}/synth/{output}", "engine.kind=transformers", f"engine.model={model}",
            "engine.num_cpus_per_replica=1", "num_candidates=2", "sampling.max_tokens=8", "shard_size=2",
            "progress=false"])

    def outputs(output: str) -> tuple:
        url = f"{s3_bucket}/synth/{output}"
        return (storage.read_table(f"{url}/candidates").sort_by([("query_id", "ascending"),
                                                                 ("candidate_index", "ascending")]),
                storage.read_table(f"{url}/rejects").sort_by([("row", "ascending"), ("reason", "ascending")]))

    cfg = config("clean")
    engine = RayEngine(cfg.engine, ExplorationPrompts(cfg.prompt), cfg.sampling, cfg.ray, show=False)
    engine.start()
    try:
        with FaultyProxy(upstream_port, fault_rate=0.0) as counting:
            monkeypatch.setenv("O1E_S3_ENDPOINT", counting.url)
            run_synth(cfg, show=False, engine=engine)
        with FaultyProxy(upstream_port, fault_rate=0.15, delay_s=0.1, seed=3) as faulty:
            monkeypatch.setenv("O1E_S3_ENDPOINT", faulty.url)
            run_synth(config("faulty"), show=False, engine=engine)
        requests = sum(counting.counts.values())
        monkeypatch.setenv("O1E_S3_MAX_ATTEMPTS", "3")  # fail after 3 s of back-off instead of 45 s
        with FaultyProxy(upstream_port, fault_rate=0.0, down_after=requests // 2) as gone:
            monkeypatch.setenv("O1E_S3_ENDPOINT", gone.url)
            with pytest.raises(Exception) as failed:
                run_synth(config("gone"), show=False, engine=engine)
            code, line = describe(failed.value)
            gone.up()
            assert not storage.is_dataset(f"{s3_bucket}/synth/gone/candidates")  # nothing half-committed
            resumed = run_synth(config("gone"), show=False, engine=engine)
    finally:
        engine.close()
    monkeypatch.setenv("O1E_S3_ENDPOINT", f"http://127.0.0.1:{upstream_port}")
    assert min(faulty.counts[f] for f in ("slow_down", "internal", "drop", "delay")) > 0, faulty.counts
    assert code == 1 and "\n" not in line and "the object store failed after retries" in line, line
    clean = outputs("clean")
    keys = [(r["query_id"], r["candidate_index"]) for r in clean[0].to_pylist()]
    assert len(keys) == len(set(keys)) == 4 * 2 and clean[1].num_rows > 0
    assert outputs("faulty") == clean and outputs("gone") == clean  # none lost, none twice, the same thoughts
    assert 0 < resumed["rows_resumed"] < resumed["rows_in"], resumed  # it kept what was committed before
    print(f"\nsynth: server gone after {requests // 2} of {requests} requests: {line}\nfaulty: {faulty.counts}")
