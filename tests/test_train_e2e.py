"""``o1e train`` end to end: 2 Ray Train workers on CPU (gloo) running DeepSpeed ZeRO-2 with LoRA on a
tiny randomly initialised Llama, trained on a small overfitting set built from the bundled SciFact slice
(for the main run: MS MARCO-style rows with teacher scores through ``synth prepare`` and ``o1e vote``).

The model is random at the start; a rise in accuracy here shows the training loop learns, nothing about
the quality of a real O1 Embedder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import pyarrow as pa
import pytest
import torch

from o1e.committee.config import BM25Member, CommitteeConfig
from o1e.committee.driver import run_committee
from o1e import schemas, storage
from o1e.config import ConfigError, load_config
from o1e.o1model import O1Model
from o1e.provenance import fingerprint
from o1e.tiny import make_random_lm
from o1e.synth.config import PrepareConfig
from o1e.synth.prepare import run_prepare
from o1e.train.config import TrainConfig
from o1e.train.data import collate, epoch_steps, training_steps
from o1e.train.driver import run_train
from o1e.train.losses import distillation
from o1e.train.tiny import scifact_training_table

os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/o1e/torch_extensions"))

COMMON = [
    "deepspeed.zero_stage=2", "deepspeed.precision=fp32", "optim.batch_size_per_worker=4", "loss.group_size=4",
    "optim.lr=3e-3", "optim.warmup_ratio=0", "ray.num_cpus_per_worker=0.5", "num_workers=2",
    "lora.r=8", "lora.alpha=16", "lora.modules_to_save=[lm_head]",
]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> str:
    return make_random_lm(str(tmp_path_factory.mktemp("base") / "llama"), hidden=64, layers=2)


def training_data(path: str) -> pa.Table:
    table = scifact_training_table(num_queries=16, negatives=7)
    storage.write_table(path, table, "training")
    return table


def voted_training_data(root, path: str) -> pa.Table:
    """MS MARCO-style JSONL rows with teacher scores -> ``synth prepare`` -> ``o1e vote`` (BM25 member, three
    candidates a query) -> the ``training`` dataset, plus bad rows the trainer must skip or cut."""
    lines = []
    for row in scifact_training_table(num_queries=16, negatives=7).to_pylist():
        lines.append({"query_id": row["query_id"], "query": row["query"], "pos": row["positives"],
                      "pos_id": row["positive_ids"], "neg": row["negatives"], "neg_id": row["negative_ids"],
                      "pos_scores": [4.0] * len(row["positives"]),
                      "neg_scores": [float(j % 3) for j in range(len(row["negatives"]))]})
        lines[-1]["thoughts"] = [row["thought"], "Completely unrelated words about the weather today.",
                                 "Another generic sentence with no bearing on it."]
    jsonl = root / "rows.jsonl"
    jsonl.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "thoughts"}) + "\n"
                             for line in lines))
    run_prepare(PrepareConfig(dataset={"path": str(jsonl)}, mining={"method": "none"}, output=str(root / "prep")),
                show=False)
    candidates = [{"query_id": line["query_id"], "candidate_index": c, "thought": t, "finish_reason": "stop",
                   "prompt_tokens": 0, "completion_tokens": len(t.split()), "model": "hand-written",
                   "prompt_fingerprint": ""} for line in lines for c, t in enumerate(line["thoughts"])]
    storage.write_table(str(root / "candidates"), pa.Table.from_pylist(candidates), "candidates")
    run_committee(CommitteeConfig(training_rows=str(root / "prep" / "training_rows"),
                                  candidates=str(root / "candidates"), members=[BM25Member()], executor="local",
                                  output=str(root / "committee")), show=False)
    rows = storage.read_table(str(root / "committee" / "training")).to_pylist()
    sent = {line["query_id"]: line["pos_scores"] + line["neg_scores"] for line in lines}
    assert len(rows) == 16 and all(r["teacher_scores"] == sent[r["query_id"]] for r in rows)
    rows[1]["thought"] = ""  # kept: an empty thought is what thought dropout produces
    rows[2]["thought"] = "long " * 2000  # kept, cut to fit 256 tokens
    rows.append({**rows[3], "query_id": "no-positive", "positives": []})  # skipped, sent to rejects
    table = pa.Table.from_pylist(rows, schema=schemas.TRAINING.arrow)
    storage.write_table(path, table, "training")
    return table


def accuracy(model: O1Model, table: pa.Table) -> float:
    """Top-1 retrieval accuracy of each query (with its thought) among every row's positive passage."""
    rows = [r for r in table.to_pylist() if r["positives"]]
    q = model.embed_queries([r["query"] for r in rows], [r["thought"] for r in rows])
    d = model.embed_documents([r["positives"][0] for r in rows])
    return float(((q @ d.T).argmax(dim=1) == torch.arange(len(rows))).float().mean())


def test_train_overfits_and_reloads(ray_cluster, base_model, tmp_path, capfd):
    data = str(tmp_path / "data")
    table = voted_training_data(tmp_path, data)
    out = str(tmp_path / "run")
    cfg = load_config(TrainConfig, None, [f"data={data}", f"model={base_model}", f"output={out}",
                                          "optim.epochs=8", "checkpoint_every=8", *COMMON])
    lineage = run_train(cfg)

    # Quiet: Ray Train's and DeepSpeed's lines stay off the terminal (o1e's bar and table show).
    printed = "".join(capfd.readouterr())
    noise = ["Reporting training result", "PlacementGroupCleaner", "PreemptionWatcher", "built successfully"]
    assert [n for n in noise if n in printed] == []
    assert not [line for line in printed.splitlines() if "RayTrainWorker" in line and "Setting accelerator" in line]
    held = storage.read_json(f"{out}/summary.json")["actor_seconds"]
    assert held["CPU"] > 0 and held["GPU"] == 0  # 2 workers x 0.5 CPU for as long as they trained

    history = [json.loads(line) for line in storage.read_text(f"{out}/metrics.jsonl").splitlines()]
    assert [m["step"] for m in history] == list(range(1, 17))
    first, last = history[:2], history[-6:]
    mean = lambda ms, k: sum(m[k] for m in ms) / len(ms)  # noqa: E731
    assert mean(last, "generation_loss") < mean(first, "generation_loss") - 0.3
    assert mean(last, "contrastive_loss") < 0.5 * mean(first, "contrastive_loss")
    assert mean(last, "contrastive_accuracy") > 0.6  # chance: 1 in 32 passages per worker batch
    assert all(m["tokens_per_s"] > 0 for m in history)
    assert history[0]["batch_rows"] != history[2]["batch_rows"]  # epoch 2 is another seeded order

    # Distillation ran on the teacher scores the rows carried from prepare through the vote. Its first value
    # by hand: rank 0's first batch (the same seeded order and sampling), embedded by the model as it was
    # before the first update (LoRA starts as a no-op; the same seed resizes the embeddings alike).
    assert all("distill_loss" in m for m in history)
    usable = pa.Table.from_pylist([r for r in table.to_pylist() if r["positives"]], schema=table.schema)
    positions = epoch_steps(usable.num_rows, cfg.optim.seed, 0, cfg.num_workers, cfg.optim.batch_size_per_worker)[0][0]
    tb = collate(usable.take(positions).to_pylist(), O1Model.from_pretrained(base_model).tokenizer, cfg.sequence,
                 cfg.loss.group_size, random.Random(hash((cfg.optim.seed, 0, 0))))
    torch.manual_seed(cfg.optim.seed)
    before = O1Model.from_pretrained(base_model, seq=cfg.sequence)
    before.eval()
    with torch.no_grad():
        _, q = before.query_pass(tb.query)
        d = before.doc_pass(tb.docs)
    own = torch.einsum("qd,qgd->qg", q[0], d.view(tb.num_queries, tb.group_size, -1)) / cfg.loss.temperature
    by_hand = -(torch.softmax(tb.teacher, -1) * torch.log_softmax(own, -1)).sum(-1).mean()
    torch.testing.assert_close(distillation(own, tb.teacher, 1.0), by_hand)
    print(f"\nstep 1 distill_loss: logged {history[0]['distill_loss']:.6f}, by hand {by_hand.item():.6f}; "
          f"step 16: {history[-1]['distill_loss']:.6f}")
    assert history[0]["distill_loss"] == pytest.approx(by_hand.item(), rel=1e-4, abs=1e-5)
    assert history[0]["batch_rows"] == fingerprint([r["query_id"] for r in usable.take(positions).to_pylist()], 12)

    # Bad input was skipped or cut, counted, and the run went on.
    rejects = storage.read_table(f"{out}/rejects").to_pylist()
    assert [(r["row"], r["reason"]) for r in rejects] == [("no-positive", "missing_positive")]
    stats = storage.read_json(f"{out}/data_stats.json")
    assert stats["thought_truncated"] > 0 and stats["empty_thought"] > 0
    assert lineage["rows"] == {"total": 17, "usable": 16, "rejected": 1}

    # The merged model is a plain Hugging Face folder with its lineage.
    model_dir = f"{out}/model"
    assert not os.path.exists(f"{model_dir}/adapter_config.json")
    saved = storage.read_json(f"{model_dir}/lineage.json")
    assert saved["training_dataset"]["url"] == data and saved["config_fingerprint"] == cfg.fingerprint()
    assert saved["base_model"]["fingerprint"] and saved["checkpoint"]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    assert "<emb>" in tok.get_vocab()
    assert AutoModelForCausalLM.from_pretrained(model_dir).get_input_embeddings().num_embeddings == len(tok)

    # Reloaded, it embeds as the trained in-memory model did, and retrieves its training set.
    trained = O1Model.from_pretrained(model_dir)
    trained.eval()
    probe = storage.read_json(f"{model_dir}/probe_embeddings.json")
    got_q = trained.embed_queries(probe["probe"]["queries"], probe["probe"]["thoughts"])
    got_d = trained.embed_documents(probe["probe"]["documents"])
    torch.testing.assert_close(got_q, torch.tensor(probe["queries"]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_d, torch.tensor(probe["documents"]), atol=1e-4, rtol=1e-4)
    base = O1Model.from_pretrained(base_model)
    base.eval()
    assert accuracy(trained, table) > max(0.5, accuracy(base, table) + 0.25)


def test_killed_worker_resumes_from_checkpoint(ray_cluster, base_model, tmp_path):
    data = str(tmp_path / "data")
    training_data(data)
    out = str(tmp_path / "run")
    pid_file = str(tmp_path / "worker.pid")
    cfg = load_config(TrainConfig, None, [f"data={data}", f"model={base_model}", f"output={out}",
                                          "optim.epochs=5", "checkpoint_every=3", "max_failures=1", *COMMON])
    killed: list[int] = []

    def kill_after_second_checkpoint():
        deadline = time.time() + 300
        while time.time() < deadline:
            runs = [d for d in storage.listdir(f"{out}/ray") if d.startswith("o1e-train-")]
            ckpts = [c for r in runs for c in storage.listdir(f"{out}/ray/{r}") if c.startswith("checkpoint_")]
            # Kill once the second checkpoint is written: the first one is registered with the controller
            # by then however loaded the machine is, so the run must resume from a checkpoint.
            if len(ckpts) >= 2 and os.path.exists(pid_file):
                time.sleep(0.5)
                pid = int(open(pid_file).read())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_after_second_checkpoint, daemon=True)
    watcher.start()
    lineage = run_train(cfg, pid_file=pid_file)
    watcher.join(timeout=5)
    assert killed, "the worker was never killed"

    final = lineage["final_metrics"]
    assert final["step"] == 10
    assert final["resumed_from_step"] in (3, 6, 9)  # restarted from a checkpoint, not from scratch
    history = [json.loads(line) for line in storage.read_text(f"{out}/metrics.jsonl").splitlines()]
    assert [m["step"] for m in history] == list(range(1, 11))  # every step once: none redone, none skipped
    assert history[-1]["resumed_from_step"] == final["resumed_from_step"]
    assert final["rows_seen"] == 5 * 8  # 5 epochs of this worker's 8 rows: no data skipped or repeated
    # The resumed run trained on exactly the batches an uninterrupted run would have: the seeded order of
    # every epoch, picked up at the checkpoint's step.
    rows = storage.read_table(data).to_pylist()
    planned = [fingerprint([rows[p]["query_id"] for p in positions[0]], 12)
               for _, _, positions in training_steps(16, cfg.optim.seed, 2, 4, 5)]
    assert [m["batch_rows"] for m in history] == planned
    assert int(open(pid_file).read()) != killed[0]


def test_wrong_config_fails_before_workers_start(tmp_path, base_model):
    data = str(tmp_path / "data")
    training_data(data)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TrainConfig, None, ["loss.temprature=0.1"])
    with pytest.raises(ConfigError, match="deepspeed.zero_stage"):
        load_config(TrainConfig, None, ["deepspeed.zero_stage=4"])
    with pytest.raises(ConfigError, match="not 'training'"):
        storage.write_table(str(tmp_path / "rej"), pa.Table.from_pylist(
            [{"stage": "x", "source": "y", "row": "1", "reason": "r", "detail": "d"}]), "rejects")
        run_train(load_config(TrainConfig, None, [f"data={tmp_path / 'rej'}", f"model={base_model}"]))
    with pytest.raises(ConfigError, match="no config.json"):
        run_train(load_config(TrainConfig, None, [f"data={data}", f"model={tmp_path}"]))
    with pytest.raises(ConfigError, match="DeepSpeed JSON"):
        run_train(load_config(TrainConfig, None, [f"data={data}", f"model={base_model}",
                                                  f"deepspeed.config={tmp_path / 'missing.json'}"]))


def test_full_finetune_zero3_bf16_with_s3(ray_cluster, base_model, s3_server, s3_bucket, tmp_path, monkeypatch):
    """Full fine-tuning under ZeRO-3 and bf16, with the data, the Ray Train checkpoints and the model in S3,
    the driver and Ray Train's checkpoint storage going through a proxy that fails one request in ten
    (503, 500, dropped connection or delay). The workers' own writes (the model) use the endpoint the
    cluster started with, as on a real cluster."""
    from faulty_s3 import FaultyProxy

    data = f"{s3_bucket}/data"
    storage.write_table(data, scifact_training_table(num_queries=8, negatives=3), "training")
    out = f"{s3_bucket}/run"
    common = [o for o in COMMON if not o.startswith("ray.num_cpus_per_worker")]  # the default split
    cfg = load_config(TrainConfig, None, [f"data={data}", f"model={base_model}", f"output={out}",
                                          "optim.epochs=2", "checkpoint_every=1", *common,
                                          "deepspeed.zero_stage=3", "deepspeed.precision=bf16", "lora.enabled=false"])
    with FaultyProxy(int(s3_server.rsplit(":", 1)[1]), fault_rate=0.1, delay_s=0.05, seed=4) as proxy:
        monkeypatch.setenv("O1E_S3_ENDPOINT", proxy.url)
        lineage = run_train(cfg)
    monkeypatch.setenv("O1E_S3_ENDPOINT", s3_server)
    assert min(proxy.counts[f] for f in ("slow_down", "internal", "drop", "delay")) > 0, proxy.counts
    assert lineage["final_metrics"]["step"] == 2
    assert lineage["checkpoint"].startswith(f"{s3_bucket}/run/ray/o1e-train-")
    assert any(name.startswith("checkpoint_") for name in storage.listdir(lineage["ray_run"]))
    local = storage.download_dir(f"{out}/model", str(tmp_path / "model"))
    trained = O1Model.from_pretrained(local)
    trained.eval()
    probe = storage.read_json(f"{out}/model/probe_embeddings.json")
    got = trained.embed_documents(probe["probe"]["documents"])
    # Trained in bf16, reloaded in fp32: equal to bf16 precision.
    torch.testing.assert_close(got, torch.tensor(probe["documents"]), atol=3e-2, rtol=0)
