"""The eval stage's config (``o1e eval``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from o1e.bm25 import BM25Config
from o1e.config import Section, StageConfig, kind_union
from o1e.encoders import DenseEncoderConfig
from o1e.paths import DEFAULT_CACHE, DEMO_DATA
from o1e.ray_utils import RayConfig


class DatasetSource(Section):
    path: str = DEMO_DATA
    """BEIR-format folder or ``s3://bucket/prefix``: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    split: str = "test"
    on_bad_line: Literal["error", "skip"] = "error"
    """A malformed line: stop with its file and line (``error``), or reject it and go on (``skip``)."""


class BM25Retriever(BM25Config):
    kind: Literal["bm25"] = "bm25"


class DenseRetriever(DenseEncoderConfig):
    kind: Literal["dense"] = "dense"


Retriever = kind_union("bm25", bm25=BM25Retriever, dense=DenseRetriever)


class EvalConfig(StageConfig):
    """Evaluate one retriever on one split of a BEIR-format dataset."""

    # Shard count and cache location change where work runs, not what it computes.
    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("shards", "cache_dir")

    dataset: DatasetSource = DatasetSource()
    retriever: Retriever = BM25Retriever()
    shards: int = Field(1, ge=1)
    """Dense corpus encoding and search run on this many Ray actors, one shard each."""
    top_k: int = Field(1000, ge=1, le=10_000)
    drop_self_hits: bool = True
    """BEIR's convention: drop a retrieved document whose id equals the query id."""
    cache_dir: str | None = DEFAULT_CACHE
    """Where document embeddings are cached (local or s3://), keyed by model and corpus; ``null``: no cache."""
    output: str = "outputs/eval"
    ray: RayConfig = RayConfig()
