"""The eval stage's config (``o1e eval``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from o1e.config import Section, StageConfig
from o1e.corpus import PART_ROWS
from o1e.llm.config import EngineConfig, SamplingConfig, VllmEngineConfig
from o1e.paths import DEFAULT_CACHE, DEMO_DATA
from o1e.ray_utils import RayConfig
from o1e.retrievers import THINKING_KINDS, BM25RetrieverConfig, RetrieverConfig


class DatasetSource(Section):
    path: str = DEMO_DATA
    """BEIR-format folder or ``s3://bucket/prefix``: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    split: str = "test"
    on_bad_line: Literal["error", "skip"] = "error"
    """A malformed line: stop with its file and line (``error``), or reject it and go on (``skip``)."""
    max_queries: int | None = Field(None, ge=1)
    """Score only the split's first N judged queries (in the qrels file's order; the corpus stays whole): a
    stated subset for small machines. ``None``: every query."""
    drop_unknown_docs: bool = False
    """Drop qrels naming a document missing from the corpus. By default they stay in the judgments (the
    document is never retrieved), as BEIR and MTEB count them; either way they are counted in rejects/."""


class ThoughtSampling(SamplingConfig):
    """Query-time sampling, PAPER.md §4: 128 new tokens, temperature 0.1, top-p 0.9."""

    max_tokens: int = Field(128, ge=1)
    temperature: float | None = 0.1
    top_p: float | None = 0.9


class ExpansionPrompt(Section):
    """The chat prompt an external LLM gets for ``-r expand`` (HyDE / Query2doc); ``{query}`` is filled in."""

    system: str = "You are a helpful assistant. Answer directly, without asking for clarification."
    template: str = "Write a passage that answers the query.\nQuery: {query}\nPassage:"


class ThoughtsConfig(Section):
    """Thoughts at query time, for the retrievers that think (``o1``, ``expand``)."""

    n: int = Field(3, ge=1)
    """Thoughts per query (PAPER.md §4: 3)."""
    k: list[int] | None = None
    """Variants evaluated in one run, each averaging the first k thoughts (0: no thinking, the same model
    with the empty thought); ``None``: ``[0, n]``."""
    source: str | None = None
    """Take thoughts from a ``thoughts`` dataset or any Parquet file with columns query_id, thought_index,
    thought (local or s3://) instead of generating them."""
    engine: EngineConfig = VllmEngineConfig()
    """What generates them: vLLM replicas on Ray, transformers ``generate`` replicas, or (``expand``) an
    OpenAI-compatible endpoint. ``engine.model`` empty: the retriever's own model (``o1``); vLLM's
    ``max_model_len`` unset: the model's own context."""
    fallback_to_transformers: bool = True
    """Where vLLM is not installed, an ``engine.kind=vllm`` config generates with transformers instead."""
    sampling: ThoughtSampling = ThoughtSampling()
    prompt: ExpansionPrompt = ExpansionPrompt()
    """``expand`` only; the O1 model's prompt is its own token format (``<query>q</query><thought>``)."""
    seed: int = 0
    """Request (query id, thought index) is sampled with a seed drawn from (seed, query id, thought index)."""
    shard_size: int = Field(256, ge=1)
    """Queries per committed shard of the ``thoughts`` dataset (the unit of resume)."""

    def variants(self) -> list[int]:
        return sorted(set(self.k if self.k is not None else [0, self.n]))

    @model_validator(mode="after")
    def _check(self) -> "ThoughtsConfig":
        if self.k is not None and (not self.k or min(self.k) < 0 or max(self.k) > self.n):
            raise ValueError(f"thoughts.k must list values between 0 and thoughts.n={self.n}; got {self.k}")
        return self


class EvalConfig(StageConfig):
    """Evaluate one retriever on one split of a BEIR-format dataset."""

    # Shard count, cache location and part size change where work runs, not what it computes.
    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("shards", "cache_dir",
                                                                                    "corpus_part_rows")

    dataset: DatasetSource = DatasetSource()
    retriever: RetrieverConfig = BM25RetrieverConfig()
    thoughts: ThoughtsConfig = ThoughtsConfig()
    """Used by the retrievers that think (``o1``, ``expand``); ignored by ``bm25`` and ``dense``."""
    shards: int = Field(1, ge=1)
    """Dense corpus encoding and search run on this many Ray actors, one shard each."""
    top_k: int = Field(1000, ge=1, le=10_000)
    drop_self_hits: bool = True
    """BEIR's convention: drop a retrieved document whose id equals the query id."""
    cache_dir: str | None = DEFAULT_CACHE
    """Where document embeddings are cached (local or s3://), keyed by model and corpus, and where the corpus
    is kept converted to Parquet (``corpus/<key>``, keyed by the file's content; converted once, reused by
    later runs); ``null``: no embedding cache, and the converted corpus goes under the output instead."""
    corpus_part_rows: int = Field(PART_ROWS, ge=1)
    """Documents per Parquet part when the corpus is converted: what the conversion holds in memory at once."""
    output: str = "outputs/eval"
    ray: RayConfig = RayConfig()

    @property
    def thinks(self) -> bool:
        return self.retriever.kind in THINKING_KINDS

    @property
    def needs_thoughts(self) -> bool:
        """A retriever that thinks, scored with at least one thought (``k = [0]`` alone needs none)."""
        return self.thinks and max(self.thoughts.variants()) > 0

    def fingerprint_data(self, exclude=()) -> dict:
        """Thoughts count only for a retriever that thinks."""
        return super().fingerprint_data(exclude=(*exclude, *(() if self.thinks else ("thoughts",))))
