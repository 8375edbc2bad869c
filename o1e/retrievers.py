"""Every retriever behind one registry: ``kind`` -> (config class, implementation).

- ``bm25``: a lexical index (``o1e.bm25``); ranks documents for query texts.
- ``dense``: a sentence-transformers / Hugging Face encoder (``o1e.encoders``).
- ``o1``: an O1 model (``o1e.o1model``, what ``o1e train`` saves): writes thoughts and embeds
  ``<query>q</query><thought>t<eos><emb>``; documents ``passage<emb>`` (PAPER.md §4).
- ``expand``: a frozen ``dense`` or ``bm25`` retriever whose queries are extended by thoughts from any
  LLM (HyDE / Query2doc, PAPER.md §5).

Vector retrievers (everything but ``bm25``) share one interface, ``VectorRetriever``: documents to
vectors, and (query, thought) pairs to vectors. A pair whose thought is empty is the query without
thinking: the O1 model's empty thought (what training's thought dropout builds), the plain query for
``expand``. Averaging the pairs of a query into its vector is ``average_thoughts``. Adding a retriever is
one config class plus one implementation class registered in ``RETRIEVERS``.

Search, for every stage that retrieves (eval, hard-negative mining), is here too: a corpus encoded batch by
batch, exact flat inner-product top-k, a ranking without excluded documents (the query's own, its
positives), and shards' hits merged into one ranking in trec_eval's order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from operator import itemgetter
from typing import Callable, Collection, Literal, Mapping, Sequence, TypeVar

import numpy as np
from pydantic import Field

from o1e.bm25 import BM25Config
from o1e.config import Section, kind_union
from o1e.encoders import DenseEncoderConfig, encode, folder_max_length, load_encoder, pick_device
from o1e.provenance import directory_fingerprint, fingerprint

# ---------------------------------------------------------------------------------------------------
# Configs


class BM25RetrieverConfig(BM25Config):
    kind: Literal["bm25"] = "bm25"


class DenseRetrieverConfig(DenseEncoderConfig):
    kind: Literal["dense"] = "dense"


class O1RetrieverConfig(Section):
    """A model saved by ``o1e train`` (or any causal LM folder holding the O1 tokens)."""

    kind: Literal["o1"] = "o1"
    model: str = ""
    """Local folder or ``s3://`` prefix of the O1 model."""
    add_special_tokens: bool = False
    """Add the O1 tokens to a model that lacks them (an untrained baseline); otherwise such a model is an
    error before any work."""
    backend: Literal["transformers", "vllm"] = "transformers"
    """How documents and queries are embedded: transformers, or vLLM's pooling runner (last-token pooling,
    the ``<emb>`` position)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: int = Field(32, ge=1)
    device: str = "auto"
    """``auto``: CUDA when available, else CPU (transformers backend)."""
    doc_max_tokens: int | None = Field(None, ge=1)
    """Documents cut to this many tokens here; ``None``: the length the model was trained with
    (``o1e_model.json``; the defaults for a folder without it, e.g. an untrained base model)."""
    query_max_tokens: int | None = Field(None, ge=1)
    """The query cut inside ``<query>…</query>``, in thought prompts and embeddings; ``None``: as trained."""

    def sequence(self, model_dir: str):
        """The model's sequence settings with this evaluation's lengths."""
        from o1e.o1model import read_sequence_config

        seq = read_sequence_config(model_dir)
        update = {k: v for k, v in (("doc_max_tokens", self.doc_max_tokens),
                                    ("query_max_tokens", self.query_max_tokens)) if v is not None}
        return seq.model_copy(update=update) if update else seq


class ExpandRetrieverConfig(Section):
    """A frozen retriever whose query is extended by LLM-written thoughts (HyDE / Query2doc)."""

    kind: Literal["expand"] = "expand"
    base: kind_union("dense", dense=DenseRetrieverConfig, bm25=BM25RetrieverConfig) = DenseRetrieverConfig()
    """The frozen retriever: ``dense`` (each ``template`` text encoded, vectors averaged) or ``bm25``
    (the query text followed by its thoughts)."""
    template: str = "{query} {thought}"
    """How a dense retriever sees one (query, thought) pair."""

    @property
    def model(self) -> str | None:
        return getattr(self.base, "model", None)


RetrieverConfig = kind_union("bm25", bm25=BM25RetrieverConfig, dense=DenseRetrieverConfig, o1=O1RetrieverConfig,
                             expand=ExpandRetrieverConfig)

THINKING_KINDS = ("o1", "expand")
"""Retrievers that take thoughts at query time."""


def model_of(config) -> str | None:
    """The model folder a retriever loads (None for BM25)."""
    if config.kind == "expand":
        return config.model
    return getattr(config, "model", None)


def is_vector(config) -> bool:
    return config.kind in ("dense", "o1") or (config.kind == "expand" and config.base.kind == "dense")


def describe(config) -> str:
    if config.kind == "bm25":
        return config.describe()
    if config.kind == "dense":
        return (f"dense {config.model} (pooling={config.pooling}, normalize={config.normalize}, "
                f"max_length={config.max_length or 'model default'})")
    if config.kind == "o1":
        return f"o1 {config.model} (<emb> last-token embedding, {config.backend}, {config.dtype})"
    if config.base.kind == "bm25":
        return f"expand {describe(config.base)}; the query text followed by its thoughts"
    return f"expand {describe(config.base)}; each (query, thought) as {config.template!r}, vectors averaged"


def embedding_fingerprint(config, model_dir: str) -> str:
    """Identifies the vectors a config produces: the model's files and every setting that changes them."""
    if config.kind == "expand":
        return embedding_fingerprint(config.base, model_dir)
    settings = config.fingerprint_data(exclude=("model", "batch_size", "device", "trust_remote_code"))
    if config.kind == "o1":
        settings.pop("add_special_tokens")
    if config.kind == "dense" and config.max_length is None and config.pooling != "auto":
        # the folder's own length, which an explicit pooling once replaced with the tokenizer's limit:
        # vectors cached under that rule must not be taken for these
        settings["max_length"] = folder_max_length(model_dir)
    return fingerprint({"files": directory_fingerprint(model_dir), "settings": settings})


# ---------------------------------------------------------------------------------------------------
# Implementations


class VectorRetriever(ABC):
    @abstractmethod
    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """float32 (documents, dim)."""

    @abstractmethod
    def encode_pairs(self, queries: Sequence[str], thoughts: Sequence[str]) -> np.ndarray:
        """float32 (pairs, dim): one vector per (query, thought); an empty thought means no thinking."""


class DenseRetriever(VectorRetriever):
    def __init__(self, config: DenseRetrieverConfig, model_dir: str, threads: int = 1) -> None:
        self.config = config
        self.model = load_encoder(config, model_dir)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return encode(self.model, texts, self.config, self.config.document_prefix)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return encode(self.model, list(texts), self.config, self.config.query_prefix)

    def encode_pairs(self, queries: Sequence[str], thoughts: Sequence[str]) -> np.ndarray:
        if any(thoughts):
            raise ValueError("a dense retriever takes no thoughts: use kind=expand with it as the base")
        return self.encode_queries(queries)


class ExpandRetriever(VectorRetriever):
    """Dense expansion: each (query, thought) becomes ``template`` text for the frozen base encoder."""

    def __init__(self, config: ExpandRetrieverConfig, model_dir: str, threads: int = 1) -> None:
        if config.base.kind != "dense":
            raise ValueError("vectors need a dense base; BM25 expansion extends the query text instead")
        self.config = config
        self.base = DenseRetriever(config.base, model_dir, threads)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self.base.encode_documents(texts)

    def encode_pairs(self, queries: Sequence[str], thoughts: Sequence[str]) -> np.ndarray:
        texts = [self.config.template.format(query=q, thought=t) if t else q for q, t in zip(queries, thoughts)]
        return self.base.encode_queries(texts)


class O1Retriever(VectorRetriever):
    def __init__(self, config: O1RetrieverConfig, model_dir: str, threads: int = 1) -> None:
        import torch

        from o1e.o1model import O1Model

        self.config = config
        self.model = O1Model.load_for_inference(model_dir, add_special_tokens=config.add_special_tokens,
                                                dtype=getattr(torch, config.dtype))
        self.model.lm.to(pick_device(config.device)).eval()
        self.model.seq = config.sequence(model_dir)
        self.vllm = None
        if config.backend == "vllm":
            from o1e.llm.pooling import VllmPooler

            seq = self.model.seq
            longest = max(seq.max_length, seq.doc_max_tokens + 2)  # a query side or a document with <emb>
            positions = getattr(self.model.lm.config, "max_position_embeddings", None) or longest
            self.vllm = VllmPooler(model_dir, dtype=config.dtype, max_model_len=min(longest, positions))

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        if self.vllm is not None:
            return self.vllm.embed(self.model.document_ids(texts))
        return self.model.embed_documents(texts, self.config.batch_size).numpy().astype(np.float32)

    def encode_pairs(self, queries: Sequence[str], thoughts: Sequence[str]) -> np.ndarray:
        if self.vllm is not None:
            return self.vllm.embed(self.model.query_ids(queries, thoughts))
        vectors = self.model.embed_queries(list(queries), list(thoughts), self.config.batch_size)
        return vectors.numpy().astype(np.float32)


RETRIEVERS: dict[str, type[VectorRetriever]] = {"dense": DenseRetriever, "o1": O1Retriever, "expand": ExpandRetriever}


def build_retriever(config, model_dir: str, threads: int = 1) -> VectorRetriever:
    """The vector retriever a config names, its model loaded from ``model_dir``."""
    return RETRIEVERS[config.kind](config, model_dir, threads)


def average_thoughts(pair_vectors: np.ndarray, num_thoughts: list[int], k: int) -> np.ndarray:
    """Query vectors from pair vectors laid out query by query as [no thought, thought 1, ..., thought n_q].

    ``k == 0``: the no-thought vector. ``k > 0``: the mean of the first ``min(k, n_q)`` thought vectors
    (normalised vectors averaged, not re-normalised, PAPER.md §4); a query with no thought at all falls
    back to its no-thought vector.
    """
    out = np.empty((len(num_thoughts), pair_vectors.shape[1]), dtype=np.float32)
    start = 0
    for row, n in enumerate(num_thoughts):
        use = min(k, n)
        out[row] = pair_vectors[start] if use == 0 else pair_vectors[start + 1:start + 1 + use].mean(axis=0)
        start += n + 1
    return out


def expand_query_text(query: str, thoughts: Sequence[str], k: int) -> str:
    """BM25 expansion: the query followed by its first ``k`` thoughts."""
    return " ".join([query, *[t for t in thoughts[:k] if t]])


def flat_ip_index(vectors: np.ndarray):
    """An exact inner-product FAISS index over ``vectors`` (PAPER.md §4: flat IP), spread over every GPU
    this process sees when faiss has GPU support (faiss-gpu on clusters), else on the CPU (faiss-cpu)."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index



def flat_ip_search(index, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``k`` (at most the index's size) of each query: scores and row numbers, best first."""
    return index.search(query_vectors, min(k, index.ntotal))


def encode_in_batches(encode: Callable[[list[str]], np.ndarray], texts: list[str], sizes: Sequence[int],
                      progress: Callable[[int], object] | None = None) -> np.ndarray:
    """``encode`` (a retriever's ``encode_documents``) over consecutive batches of ``texts`` of ``sizes``;
    ``progress`` is called with each batch's size. The caller fixes the batches: they can change the last
    bits of a vector."""
    parts, start = [], 0
    for size in sizes:
        parts.append(encode(texts[start:start + size]))
        start += size
        if progress is not None:
            progress(size)
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


# ---------------------------------------------------------------------------------------------------
# Rankings

Ranking = dict[str, list[tuple[str, float]]]
"""query id -> [(doc id, score)], best first."""

Hit = TypeVar("Hit")


def trec_order(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """trec_eval's own order: score descending, ties by document id descending."""
    return sorted(hits, key=lambda hit: (hit[1], hit[0]), reverse=True)


def search_depth(k: int, drop_self_hits: bool) -> int:
    """Documents to retrieve for a top ``k`` that may lose the query's own document."""
    return k + (1 if drop_self_hits else 0)


def drop_hits(ranked: Sequence[Hit], exclude: Collection[str], k: int, id_of: Callable[[Hit], str]) -> list[Hit]:
    """The first ``k`` of ``ranked`` whose document id is not in ``exclude`` (a query's own document, its
    positives); retrieving ``k + len(exclude)`` is enough, document ids being unique in a corpus."""
    return [hit for hit in ranked if id_of(hit) not in exclude][:k]


def rank_hits(query_id: str, hits: list[tuple[str, float]], k: int, drop_self_hits: bool) -> list[tuple[str, float]]:
    """A query's top ``k`` of ``hits`` (doc id, score) in trec_eval's order; with ``drop_self_hits`` the
    document whose id is the query's is dropped (BEIR's convention)."""
    return drop_hits(trec_order(hits), {query_id} if drop_self_hits else (), k, itemgetter(0))


def merge_shards(
    shard_hits: list[tuple[np.ndarray, np.ndarray]],
    doc_ids: Sequence[str] | Mapping[int, str],
    query_ids: list[str],
    k: int,
    drop_self_hits: bool = True,
) -> Ranking:
    """Merge per-shard hits (scores, global document numbers; -1 pads) into each query's top ``k``
    (``rank_hits``); ``doc_ids`` maps a document number to its id (the whole corpus's list, or just the
    numbers hit). Ties are ordered as trec_eval orders them, so the ranking does not depend on how the
    corpus was sharded; shards search ``search_depth`` to make up for a dropped self-hit."""
    scores = np.concatenate([s for s, _ in shard_hits], axis=1)
    numbers = np.concatenate([n for _, n in shard_hits], axis=1)
    return {query_id: rank_hits(query_id, [(doc_ids[n], float(s)) for n, s in zip(numbers[row], scores[row]) if n >= 0],
                                k, drop_self_hits)
            for row, query_id in enumerate(query_ids)}
