"""Hugging Face cards (``o1e.cards``): a stage output's datasets card and a trained model's card, read back
with ``huggingface_hub`` and ``datasets`` as the Hub and its users read them. The demo pipeline's real cards
are checked in tests/test_pipeline.py."""

from __future__ import annotations

import pyarrow as pa
import pytest

from o1e import cards, runs, storage
from o1e.schemas import Reject
from o1e.synth.config import PrepareConfig
from o1e.train.config import TrainConfig


def rows(n: int) -> pa.Table:
    return pa.Table.from_pylist([{"query_id": f"q{i}", "query": f"question {i}", "positive_ids": [f"d{i}"],
                                  "positives": [f"passage {i}"], "negative_ids": [], "negatives": []}
                                 for i in range(n)])


def test_a_stage_output_card_makes_each_dataset_a_config_that_datasets_loads(tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    out = str(tmp_path / "prepare")
    source = {"url": "/data/beir/scifact", "split": "train", "licence": "CC BY-NC 2.0 (abstracts from S2ORC, ODC-By)"}
    record = runs.RunRecord("synth", PrepareConfig(output=out), parents=[source])
    record.write_table("training_rows", rows(7), "training_rows")
    record.write_rejects([Reject("/data/q.jsonl", "3", "empty_query", "line 3: empty query")])
    record.finish({}, rows=8, unit="query")

    card = DatasetCard.load(str(tmp_path / "prepare" / "README.md"))
    assert card.data.license == "cc-by-nc-2.0" and "o1e" in card.data.tags
    assert [c["config_name"] for c in card.data.configs] == ["rejects", "training_rows"]
    assert "## `training_rows`: training_rows (schema version 2)" in card.text and "7 rows in 1 part(s)" in card.text
    assert "CC BY-NC 2.0" in card.text and "`/data/beir/scifact`" in card.text
    cache = str(tmp_path / "hf-cache")  # datasets' cache keys a local folder by its name: keep tests apart
    loaded = load_dataset(out, "training_rows", split="train", cache_dir=cache)
    assert loaded.num_rows == storage.read_manifest(out + "/training_rows").num_rows == 7
    rejected = load_dataset("parquet", data_files=f"{out}/rejects/part-*.parquet", split="train", cache_dir=cache)
    assert rejected["reason"] == ["empty_query"]
    # The card sits beside the datasets: pandas still reads a dataset folder whole.
    import pandas as pd

    assert len(pd.read_parquet(out + "/training_rows")) == 7


def test_licences_flow_from_the_source_to_every_dataset_made_from_it(tmp_path):
    first = str(tmp_path / "a")
    storage.write_table(first, rows(2), "training_rows", parents=[{"url": "/beir", "licence": "CC BY-NC 2.0"}])
    assert storage.dataset_ref(first)["licence"] == "CC BY-NC 2.0"
    assert cards.hub_licence(["CC BY-NC 2.0 (abstracts from S2ORC, ODC-By)"]) == "cc-by-nc-2.0"
    assert cards.hub_licence([]) == cards.hub_licence(["CC BY 4.0", "MIT"]) == "other"


def lineage(model: str) -> dict:
    cfg = TrainConfig(data="/runs/vote/training", model=model, output="/runs/train")
    return {"config": cfg.model_dump(mode="json"), "base_model": {"path": model, "fingerprint": "f"},
            "training_dataset": {"url": "/runs/vote/training", "schema": "training", "licence": "CC BY-NC 2.0"},
            "config_fingerprint": cfg.fingerprint(), "code_version": "0.1.0", "rows": {"total": 10, "usable": 9},
            "final_metrics": {"step": 5, "loss": 1.25, "contrastive_loss": 1.5, "generation_loss": 0.25}}


@pytest.mark.parametrize("model,hub_id,licence", [("SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                                   "apache-2.0"), ("/models/my-llm", "/models/my-llm", None)])
def test_a_model_card_names_its_base_model_and_gains_results_when_evaluated(tmp_path, model, hub_id, licence):
    from huggingface_hub import ModelCard

    from o1e.provenance import directory_fingerprint

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    before = directory_fingerprint(str(folder))
    (folder / "README.md").write_text(cards.model_card(lineage(model), "m-o1e"))
    card = ModelCard.load(str(folder / "README.md"))
    assert (card.data.base_model, card.data.library_name, card.data.license) == (hub_id, "transformers", licence)
    assert card.data.datasets == ["/runs/vote/training"] and {"o1e", "o1-embedder"} <= set(card.data.tags)
    assert "| final step | 5: loss 1.2500, contrastive 1.5000, generation 0.2500 |" in card.text

    def result(k: int, value: float) -> dict:
        return {"dataset": "/data/beir/scifact", "dataset_name": "scifact test", "split": "test",
                "metric_type": "ndcg_at_10", "metric_name": f"nDCG@10 (k = {k} thoughts)", "value": value}

    assert cards.add_results(str(folder), [result(0, 0.31), result(3, 0.33)])
    assert cards.add_results(str(folder), [result(3, 0.35)])  # a new evaluation replaces its own entry
    results = ModelCard.load(str(folder / "README.md")).data.eval_results
    assert [(r.dataset_type, r.metric_name, r.metric_value) for r in results] == [
        ("BeIR/scifact", "nDCG@10 (k = 0 thoughts)", 0.31), ("BeIR/scifact", "nDCG@10 (k = 3 thoughts)", 0.35)]
    assert not cards.add_results(str(tmp_path / "no-card"), [result(0, 0.3)])
    # The card documents the model: writing it, or results into it, leaves the model's fingerprint (what
    # thought and embedding caches are keyed by) as it was.
    assert directory_fingerprint(str(folder)) == before
    (folder / "model.safetensors").write_bytes(b"other weights")
    assert directory_fingerprint(str(folder)) != before
