"""Dense text encoders from a local sentence-transformers or Hugging Face directory.

Models are loaded from local folders (or copied from an ``s3://`` prefix first), never from a hub:
clusters and CI run offline. A folder saved by sentence-transformers keeps its own modules (pooling,
normalisation, max length); any of these can be overridden, and a plain Hugging Face folder gets the
pooling named in config.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import numpy as np

from o1e.config import ConfigError, Section

class DenseEncoderConfig(Section):
    model: str = "all-MiniLM-L6-v2"
    """Local folder, ``s3://`` prefix, or a packaged model's name (``o1e.models.PACKAGED_MODELS``)."""
    pooling: Literal["auto", "mean", "cls", "lasttoken", "max"] = "auto"
    """``auto``: the folder's own sentence-transformers pooling (mean for a plain Hugging Face folder)."""
    normalize: bool = True
    """L2-normalise embeddings, so that inner product is cosine similarity."""
    max_length: int | None = None
    """Tokens per text; ``None``: the model's own limit (``max_seq_length`` of a sentence-transformers
    folder, else its tokenizer's)."""
    query_prefix: str = ""
    document_prefix: str = ""
    batch_size: int = 32
    device: str = "auto"
    """``auto``: CUDA when available, else CPU."""
    trust_remote_code: bool = False
    """Run modelling code shipped inside the model folder (needed by e.g. stella and gte-v1.5)."""


def check_model_dir(model_dir: str, key: str) -> None:
    """Load a model folder's config and tokenizer (not its weights), so that a folder that cannot work
    fails once, here, before workers or engines start and fail in each of them."""
    from transformers import AutoConfig, AutoTokenizer

    from o1e.errors import one_line

    try:
        AutoConfig.from_pretrained(model_dir)
        AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{key}: {model_dir} is not a usable model folder ({one_line(str(err))[:300]}): "
                          "give a Hugging Face folder with its config.json and tokenizer files") from None


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def folder_max_length(model_dir: str) -> int | None:
    """The ``max_seq_length`` a sentence-transformers folder was saved with (``None`` for a plain Hugging
    Face folder): the length the model was trained at, often below its tokenizer's limit."""
    path = os.path.join(model_dir, "sentence_bert_config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("max_seq_length")


def load_encoder(config: DenseEncoderConfig, model_dir: str):
    """A ``SentenceTransformer`` for ``model_dir`` with the config's pooling and length applied."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from sentence_transformers import SentenceTransformer, models

    transformers.logging.disable_progress_bar()

    device = pick_device(config.device)
    max_length = config.max_length or folder_max_length(model_dir)
    if config.pooling == "auto":
        model = SentenceTransformer(model_dir, device=device, local_files_only=True,
                                    trust_remote_code=config.trust_remote_code)
    else:
        remote = {"trust_remote_code": True} if config.trust_remote_code else {}
        transformer = models.Transformer(model_dir, max_seq_length=max_length, model_kwargs=remote,
                                         processor_kwargs=remote, config_kwargs=remote)
        pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode=config.pooling)
        model = SentenceTransformer(modules=[transformer, pooling], device=device)
    if max_length is not None:
        model.max_seq_length = max_length
    model.eval()
    return model


def encode(model, texts: list[str], config: DenseEncoderConfig, prefix: str = "") -> np.ndarray:
    """Embeddings of ``texts`` (one batch or many) as a float32 matrix."""
    if prefix:
        texts = [prefix + t for t in texts]
    vectors = model.encode(
        texts,
        batch_size=config.batch_size,
        normalize_embeddings=config.normalize,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)
