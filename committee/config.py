"""The committee stage's config (``o1e vote``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from o1e.bm25 import PAPER_TOKENIZER, BM25Config, TokenizerConfig
from o1e.config import Section, StageConfig, kind_union
from o1e.encoders import DenseEncoderConfig
from o1e.provenance import fingerprint
from o1e.ray_utils import RayConfig


class Placement(Section):
    """Where a member's actors run. Changes where work happens, not what it computes."""

    replicas: int = Field(1, ge=1)
    """Actors in this member's pool."""
    num_cpus: float = Field(1.0, ge=0)
    """CPUs reserved per actor; also the actor's torch threads (at least 1)."""
    num_gpus: float | None = Field(None, ge=0)
    """GPUs per actor; ``None``: one per dense-member actor when the cluster has GPUs, else none."""


class BM25Member(BM25Config):
    """The paper's sparse member: the candidates form the corpus, the gold document is the query."""

    kind: Literal["bm25"] = "bm25"
    name: str = "bm25"
    weight: float = Field(1.0, ge=0)
    tokenizer: TokenizerConfig = PAPER_TOKENIZER
    placement: Placement = Placement()


class DenseMember(DenseEncoderConfig):
    """A dense member: cosine(gold document, thought) x 100 on normalised embeddings.

    The gold document takes ``query_prefix`` and the thoughts ``document_prefix``; both are empty by
    default, as the reference code encodes both sides without a prompt."""

    kind: Literal["dense"] = "dense"
    name: str = "all-MiniLM-L6-v2"
    weight: float = Field(1.0, ge=0)
    max_length: int | None = 512
    placement: Placement = Placement()

    @field_validator("normalize")
    @classmethod
    def _cosine_needs_normalised(cls, value: bool) -> bool:
        if not value:
            raise ValueError("a committee member scores cosine similarity: normalize must stay true")
        return value


Member = kind_union("dense", bm25=BM25Member, dense=DenseMember)


class CommitteeConfig(StageConfig):
    """Score every query's candidate thoughts against its gold document and vote for one."""

    # The executor changes where members run, not what they compute: a local run and a Ray run of the
    # same config write the same rows and may resume each other.
    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("executor", "shards_in_flight")

    training_rows: str = ""
    """``training_rows`` dataset (query, positives, negatives); the first positive is the gold document."""
    candidates: str = ""
    """``candidates`` dataset written by ``o1e synth``."""
    members: list[Member] = Field(default_factory=lambda: [BM25Member(), DenseMember()], min_length=1)
    vote: Literal["soft", "hard", "median"] = "soft"
    batch_size: int = Field(64, ge=1)
    """Queries (groups of one gold document and its candidates) per scoring call of a member."""
    shard_size: int = Field(2048, ge=1)
    """Queries per committed shard: the unit of resume after a crash."""
    shards_in_flight: int = Field(2, ge=1)
    """Shards scored at once, so that every member's pool has work queued while a shard is voted."""
    executor: Literal["ray", "local"] = "ray"
    """``ray``: every member as its own actor pool; ``local``: every member in this process (same rows)."""
    output: str = "outputs/committee"
    progress: bool = True
    ray: RayConfig = RayConfig()

    def fingerprint(self) -> str:
        # A member's placement (replicas, CPUs, GPUs) says where it runs, not what it computes: a rerun on
        # a cluster of another shape resumes the same shards.
        data = self.model_dump(mode="json", exclude={"members": {"__all__": {"placement"}}})
        for name in self.not_fingerprinted:
            data.pop(name, None)
        return fingerprint(data)

    @model_validator(mode="after")
    def _check(self) -> "CommitteeConfig":
        names = [m.name for m in self.members]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"member names must be unique; repeated: {duplicates}")
        if not any(m.weight > 0 for m in self.members):
            raise ValueError("at least one member needs a weight above 0")
        return self
